package task

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

// Saving messages and attachments into a folder that cannot take them — a full disk, a
// file-size limit, a read-only folder — fails the step with the path in the message and
// changes nothing on the server: no message is moved, marked read or deleted.

// diskMsgSize is larger than the space the tests leave (1 MiB).
const diskMsgSize = 1500 << 10

// diskUsers: one mailbox per scenario, so each server check sees only its own.
var diskUsers = []testmail.User{
	{Name: "imap@example.test", Password: "imap-password"},
	{Name: "pop3@example.test", Password: "pop3-password"},
	{Name: "attach@example.test", Password: "attach-password"},
}

// diskSpec is what a scenario run needs (passed to the child process as JSON).
type diskSpec struct {
	Host        string
	IMAPS, POP3 int
	CA          string
	Dir         string // the folder that cannot take the files
}

// diskMailbox seeds every scenario's mailbox: two big messages each; the attachment
// mailbox gets messages whose attachment alone is bigger than the space left.
func diskMailbox(t *testing.T, dc *testmail.Dovecot) {
	dc.SeedN(t, diskUsers[0].Name, "INBOX", 2, diskMsgSize)
	dc.SeedN(t, diskUsers[1].Name, "INBOX", 2, diskMsgSize)
	for i := range 2 {
		blob := make([]byte, 1200<<10)
		rand.Read(blob)
		enc := base64.StdEncoding.EncodeToString(blob)
		var b strings.Builder
		fmt.Fprintf(&b, "From: a@example.test\r\nTo: b@example.test\r\nSubject: invoice %d\r\nMessage-ID: <inv-%d@example.test>\r\n", i, i)
		b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n")
		b.WriteString("--XX\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n--XX--\r\n")
		dc.Seed(t, diskUsers[2].Name, "INBOX", []byte(b.String()))
	}
}

// diskRunScenarios runs the three tasks into s.Dir and checks each failed at the saving
// step with the path in its error, leaving no file behind.
func diskRunScenarios(t *testing.T, s diskSpec) {
	login := func(action string, port, user int) Step {
		return Step{Action: action, Params: map[string]string{"host": s.Host, "port": strconv.Itoa(port), "auth": "password",
			"user": diskUsers[user].Name, "password": diskUsers[user].Password, "ca_file": s.CA}}
	}
	move := Step{Action: "imap.move", Params: map[string]string{"target_folder": "Archive", "create_folder": "true"}}
	scenarios := []struct {
		name, failing string
		tk            *Task
	}{
		{"IMAP download then move", "imap.download", &Task{Name: "imap", Steps: []Step{login("imap.open", s.IMAPS, 0), {Action: "imap.select"},
			{Action: "imap.loop", Params: map[string]string{"mark_seen": "true"}, Body: []Step{
				{Action: "imap.download", Params: map[string]string{"folder": filepath.Join(s.Dir, "imap")}}, move}}}}},
		{"POP3 download then delete", "pop3.download", &Task{Name: "pop3", Steps: []Step{login("pop3.open", s.POP3, 1),
			{Action: "pop3.loop", Body: []Step{
				{Action: "pop3.download", Params: map[string]string{"folder": filepath.Join(s.Dir, "pop3")}}, {Action: "pop3.delete"}}},
			{Action: "pop3.close"}}}},
		{"attachments then move", "email.parse", &Task{Name: "attach", Steps: []Step{login("imap.open", s.IMAPS, 2), {Action: "imap.select"},
			{Action: "imap.loop", Params: map[string]string{"mark_seen": "true"}, Body: []Step{
				{Action: "email.parse", Params: map[string]string{"save_attachments": "true", "attachments_folder": filepath.Join(s.Dir, "attach")}}, move}}}}},
	}
	rig := newFaultRig(t, nil)
	for _, sc := range scenarios {
		res := rig.run(sc.tk)
		if res.Outcome != OutcomeFailed || failedStep(res) != sc.failing {
			t.Fatalf("%s: %s at %q (want a failure at %s): %v\n%s", sc.name, res.Outcome, failedStep(res), sc.failing, res.Err, rig.logs)
		}
		if !strings.Contains(res.Err.Error(), s.Dir) {
			t.Fatalf("%s: the error does not name the folder %s: %v", sc.name, s.Dir, res.Err)
		}
		t.Logf("%s: %v", sc.name, res.Err)
	}
	filepath.WalkDir(s.Dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("file left behind: %s", path)
		}
		return nil
	})
}

// diskCheckServer checks that every seeded message is still in INBOX and, for the IMAP
// mailboxes, unread (Dovecot's POP3 server sets \Seen itself on RETR).
func diskCheckServer(t *testing.T, dc *testmail.Dovecot) {
	t.Helper()
	for i, u := range diskUsers {
		msgs := dc.Messages(t, u.Name, "INBOX")
		if len(msgs) != 2 {
			t.Fatalf("%s: %d messages in INBOX, want both (nothing moved or deleted)", u.Name, len(msgs))
		}
		for _, m := range msgs {
			if i != 1 && strings.Contains(m.Flags, "S") {
				t.Fatalf("%s: a message was marked read", u.Name)
			}
		}
	}
}

func diskStart(t *testing.T) (*testmail.Dovecot, diskSpec) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{Users: diskUsers})
	diskMailbox(t, dc)
	return dc, diskSpec{Host: dc.Host, IMAPS: dc.IMAPSPort, POP3: dc.POP3SPort, CA: dc.Certs.CertFile}
}

// mountTmpfs mounts a tmpfs with opts in a temporary folder, or reports why it cannot
// (not root, no mount permission).
func mountTmpfs(t *testing.T, opts string) (string, error) {
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("not root")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mount: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir, nil
}

// TestFaultDiskFull: a disk that fills up while a message or attachment is being saved.
// As root (with mount allowed) a real 1 MiB tmpfs fills up (ENOSPC); in every case a child
// process under RLIMIT_FSIZE = 1 MiB gets EFBIG, as a quota would give.
func TestFaultDiskFull(t *testing.T) {
	dc, spec := diskStart(t)
	t.Run("tmpfs", func(t *testing.T) {
		dir, err := mountTmpfs(t, "size=1m")
		if err != nil {
			t.Skipf("no tmpfs (%v); the RLIMIT_FSIZE case covers a full disk", err)
		}
		spec.Dir = dir
		diskRunScenarios(t, spec)
		diskCheckServer(t, dc)
	})
	t.Run("RLIMIT_FSIZE", func(t *testing.T) {
		spec.Dir = t.TempDir()
		b, _ := json.Marshal(spec)
		cmd := exec.Command(os.Args[0], "-test.run=^TestFaultDiskChild$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "MAILWRIGHT_DISK_FAULT_CHILD="+string(b))
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFaultDiskChild")) || !bytes.Contains(out, []byte("file too large")) {
			t.Fatalf("child under RLIMIT_FSIZE: %v\n%s", err, out)
		}
		diskCheckServer(t, dc)
	})
}

// TestFaultDiskChild is the child process of TestFaultDiskFull: it limits its own file
// size to 1 MiB (ignoring SIGXFSZ, so writes fail with EFBIG) and runs the scenarios.
func TestFaultDiskChild(t *testing.T) {
	raw := os.Getenv("MAILWRIGHT_DISK_FAULT_CHILD")
	if raw == "" {
		return // only as a child
	}
	var spec diskSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	diskRunScenarios(t, spec)
}

// TestFaultUnwritableFolder: the folder to save into cannot be written (a read-only mount
// as root, permissions otherwise).
func TestFaultUnwritableFolder(t *testing.T) {
	dc, spec := diskStart(t)
	if os.Geteuid() == 0 {
		dir, err := mountTmpfs(t, "ro,size=1m")
		if err != nil {
			t.Skipf("root ignores permissions and no read-only mount is possible: %v", err)
		}
		spec.Dir = dir
	} else {
		spec.Dir = t.TempDir()
		if err := os.Chmod(spec.Dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(spec.Dir, 0o755) })
	}
	diskRunScenarios(t, spec)
	diskCheckServer(t, dc)
}
