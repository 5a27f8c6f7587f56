package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

func writeTask(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "task.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestKillMidLoopResumesExactlyOnce kills `mailwright task run` with SIGKILL in the middle
// of an IMAP loop (only_new, download per message), then runs it again: every message ends
// up downloaded byte for byte, and the second run handles exactly the messages the first
// had not recorded as done — at most the one in flight at the kill is done again.
func TestKillMidLoopResumesExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := buildBinary(t, nil)
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	const total = 1500
	seeded := dc.SeedN(t, u.Name, "INBOX", total, 3000)
	dataDir, dest := t.TempDir(), t.TempDir()
	taskFile := writeTask(t, map[string]any{
		"version": 1, "name": "Download all",
		"steps": []map[string]any{
			{"action": "imap.open", "params": map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.IMAPSPort), "auth": "password",
				"user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}},
			{"action": "imap.select", "params": map[string]string{"folder": "INBOX"}},
			{"action": "imap.loop", "params": map[string]string{"only_new": "true"}, "body": []map[string]any{
				{"action": "imap.download", "params": map[string]string{"folder": dest, "file_name": "{MessageUID}.eml", "collision": "overwrite"}},
			}},
		},
	})
	env := headlessEnv("MAILWRIGHT_DATA_DIR=" + dataDir)
	cmd := exec.Command(bin, "task", "run", taskFile, "--quiet")
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		m, _ := filepath.Glob(filepath.Join(dest, "*.eml"))
		return len(m)
	}
	deadline := time.Now().Add(60 * time.Second)
	for count() < total/5 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the loop did not get going: %d files", count())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	before := count()
	if before >= total {
		t.Skipf("the run finished before the kill (%d files); machine too fast for this test", before)
	}
	code, _, stderr := runBinary(t, bin, env, "task", "run", taskFile, "--quiet")
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, stderr)
	}
	m := regexp.MustCompile(`(\d+) messages`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary: %s", stderr)
	}
	second, _ := strconv.Atoi(m[1])
	if second < total-before || second > total-before+1 {
		t.Fatalf("killed with %d of %d downloaded; the second run handled %d (want %d, or one more for the message in flight)", before, total, second, total-before)
	}
	for i, msg := range seeded {
		got, err := os.ReadFile(filepath.Join(dest, strconv.Itoa(i+1)+".eml"))
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message UID %d: not downloaded byte for byte (%v)", i+1, err)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dest, ".*")); len(leftovers) > 0 {
		// A temporary file of the download the kill interrupted may remain; it never has
		// the final name. Report how many for visibility.
		t.Logf("temporary files left by the kill: %d", len(leftovers))
	}
	// The history shows the killed run as still "running" (it never ended) and the second
	// as a success.
	_, out, _ := runBinary(t, bin, env, "history", "--json")
	var runs []struct{ Outcome string }
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) != 2 || runs[0].Outcome != "success" || runs[1].Outcome != "running" {
		t.Fatalf("history: %s", out)
	}
}

// TestServeStopsCleanly runs `mailwright serve` with an interval task against Dovecot,
// waits for runs, sends SIGTERM and expects a clean exit; --status then shows the task.
func TestServeStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := buildBinary(t, []string{"CGO_ENABLED=0"}, "-tags", "nogui")
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	dc.SeedN(t, u.Name, "INBOX", 3, 500)
	dataDir := t.TempDir()
	env := headlessEnv("MAILWRIGHT_DATA_DIR=" + dataDir)
	taskFile := writeTask(t, map[string]any{
		"version": 1, "name": "Poll", "enabled": true,
		"triggers": []map[string]string{{"type": "interval", "every": "1s"}},
		"steps": []map[string]any{{"action": "email.check", "params": map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.IMAPSPort),
			"auth": "password", "user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}}},
	})
	if code, _, e := runBinary(t, bin, env, "task", "import", taskFile); code != 0 {
		t.Fatalf("import: %s", e)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log []string
	succeeded := 0
	timeout := time.After(30 * time.Second)
	for succeeded < 2 {
		select {
		case l := <-lines:
			log = append(log, l)
			if strings.Contains(l, "run succeeded") {
				succeeded++
			}
			if strings.Contains(l, u.Password) {
				t.Fatalf("password in the log: %s", l)
			}
		case <-timeout:
			cmd.Process.Kill()
			t.Fatalf("no two successful runs:\n%s", strings.Join(log, "\n"))
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() {
		for l := range lines {
			log = append(log, l)
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exit: %v\n%s", err, strings.Join(log, "\n"))
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("serve did not stop on SIGTERM")
	}
	if !strings.Contains(strings.Join(log, "\n"), "serve stopped") {
		t.Fatalf("log:\n%s", strings.Join(log, "\n"))
	}
	code, out, _ := runBinary(t, bin, env, "serve", "--status")
	if code != 0 || !strings.Contains(out, "Poll") || !strings.Contains(out, "success") {
		t.Fatalf("status: %d %s", code, out)
	}
}
