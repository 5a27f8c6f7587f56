package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// TestFaultSIGKILLPOP3DownloadDelete kills `mailwright task run` with SIGKILL at random
// moments of a long POP3 download-and-delete run (only new messages, one file per UIDL —
// the shipped example task), 20 times in a row, then lets one run finish. The union of the
// saved files is exactly the original mailbox: every message saved once, byte for byte,
// none missing, no duplicate, no partial file under a final name; and the server is empty:
// the final run also deleted the messages whose deletion a killed session had lost (the
// loop records them as pending deletion and sends DELE again).
func TestFaultSIGKILLPOP3DownloadDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := buildBinary(t, []string{"CGO_ENABLED=0"}, "-tags", "nogui")
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	// Big enough that saving one takes several writes, so kills land inside them too.
	const total, size = 300, 40_000
	seeded := dc.SeedN(t, u.Name, "INBOX", total, size)
	dest := t.TempDir()
	taskFile := writeTask(t, map[string]any{
		"version": 1, "name": "POP3 download and delete",
		"steps": []map[string]any{
			{"action": "pop3.open", "params": map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.POP3SPort), "auth": "password",
				"user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}},
			{"action": "pop3.loop", "params": map[string]string{"only_new": "true"}, "body": []map[string]any{
				{"action": "pop3.download", "params": map[string]string{"folder": dest, "file_name": "{MessageUIDL}.eml", "collision": "skip"}},
				{"action": "pop3.delete"},
			}},
			{"action": "pop3.close"},
		},
	})
	env := headlessEnv("MAILWRIGHT_DATA_DIR=" + t.TempDir())
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("random seed %d", seed)

	saved := func() int {
		m, _ := filepath.Glob(filepath.Join(dest, "*.eml"))
		return len(m)
	}
	killedMidWork, finished := 0, 0
	for i := range 20 {
		before := saved()
		cmd := exec.Command(bin, "task", "run", taskFile, "--quiet")
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Kill points are spread over the whole mailbox: mostly once a random number of
		// further messages is saved (plus up to 3 ms, so anywhere in the next message's
		// RETR, write, fsync, rename, checkpoint or DELE), sometimes at a random moment of
		// the start (connecting, logging in, listing).
		what := ""
		if rng.IntN(5) == 0 {
			d := time.Duration(rng.IntN(150)) * time.Millisecond
			what = "at " + d.String()
			select {
			case <-done:
				finished++
				t.Logf("run %d ended by itself before the kill %s", i+1, what)
				continue
			case <-time.After(d):
			}
		} else {
			quota := max(1, (total-before)/(20-i))
			target := before + 1 + rng.IntN(quota)
			what = "after file " + strconv.Itoa(target)
			ended := false
			for !ended && saved() < target {
				select {
				case <-done:
					ended = true
				case <-time.After(time.Millisecond):
				}
			}
			if ended {
				finished++
				t.Logf("run %d ended by itself before the kill %s", i+1, what)
				continue
			}
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond) // a random point in the next message
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
		after := saved()
		if after > before && after < total {
			killedMidWork++
		}
		t.Logf("run %d killed %s: %d files saved so far", i+1, what, after)
	}
	code, _, stderr := runBinary(t, bin, env, "task", "run", taskFile, "--quiet")
	if code != 0 {
		t.Fatalf("the final run: exit %d\n%s", code, stderr)
	}
	t.Logf("20 SIGKILLs: %d landed while messages were being saved, %d runs ended before their kill", killedMidWork, finished)
	if killedMidWork < 10 {
		t.Errorf("only %d kills landed mid-download: the test did not exercise what it should", killedMidWork)
	}

	// The union of saved files is the mailbox: each message exactly once.
	want := map[string]int{}
	for _, m := range seeded {
		want[string(m)]++
	}
	entries, err := os.ReadDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	temps := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") { // a temporary file whose writer was killed
			temps++
			continue
		}
		b, err := os.ReadFile(filepath.Join(dest, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if want[string(b)] == 0 {
			t.Fatalf("%s (%d bytes) is not a message of the mailbox, or a second copy of one", e.Name(), len(b))
		}
		want[string(b)]--
	}
	for m, n := range want {
		if n != 0 {
			t.Fatalf("a message was not saved: %.80q", m)
		}
	}
	if left := dc.Messages(t, u.Name, "INBOX"); len(left) != 0 {
		t.Fatalf("%d messages still on the server after the final run succeeded: deletions lost with killed sessions were not redone", len(left))
	}
	t.Logf("%d files saved, %d temporary files left by kills; the server is empty", len(entries)-temps, temps)
}
