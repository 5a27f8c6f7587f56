package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

// TestTaskRunPOP3DownloadOnlyNew runs a real task headless against the harness Dovecot:
// POP3 Open, a POP3 Mail Loop with only_new whose body downloads and parses each message.
// A second run after two new messages handles exactly those two; the history shows both.
func TestTaskRunPOP3DownloadOnlyNew(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	seeded := dc.SeedN(t, u.Name, "INBOX", 3, 800)
	dir, dest := t.TempDir(), t.TempDir()
	taskFile := filepath.Join(t.TempDir(), "pop.json")
	tk := map[string]any{
		"version": 1, "name": "POP download", "enabled": true,
		"variables": []map[string]string{{"name": "Dest"}},
		"steps": []map[string]any{
			{"action": "pop3.open", "params": map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.POP3SPort), "security": "tls",
				"auth": "password", "user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}},
			{"action": "pop3.loop", "params": map[string]string{"only_new": "true"}, "body": []map[string]any{
				{"action": "pop3.download", "params": map[string]string{"folder": "{Dest}", "file_name": "{MessageUIDL}.eml"}},
				{"action": "email.parse", "params": map[string]string{"file": "{DownloadedFile}"}},
			}},
			{"action": "pop3.close"},
		},
	}
	b, _ := json.Marshal(tk)
	if err := os.WriteFile(taskFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := mw(t, dir, "task", "validate", taskFile); r.code != 0 || !strings.Contains(r.stdout, ": ok") {
		t.Fatalf("validate: %+v", r)
	}
	r := mw(t, dir, "task", "run", taskFile, "--var", "Dest="+dest)
	if r.code != 0 || !strings.Contains(r.stderr, "success") || !strings.Contains(r.stderr, "3 messages") {
		t.Fatalf("run 1: %+v", r)
	}
	files, _ := filepath.Glob(filepath.Join(dest, "*.eml"))
	if len(files) != 3 {
		t.Fatalf("files after run 1: %v", files)
	}
	for i, f := range files {
		got, _ := os.ReadFile(f)
		found := false
		for _, m := range seeded {
			found = found || bytes.Equal(got, m)
		}
		if !found {
			t.Fatalf("file %d is not byte-identical to any seeded message", i)
		}
	}
	dc.SeedN(t, u.Name, "INBOX", 2, 800)
	r = mw(t, dir, "task", "run", taskFile, "--var", "Dest="+dest, "--quiet")
	if r.code != 0 || !strings.Contains(r.stderr, "2 messages") {
		t.Fatalf("run 2: %+v", r)
	}
	if files, _ = filepath.Glob(filepath.Join(dest, "*.eml")); len(files) != 5 {
		t.Fatalf("files after run 2: %v", files)
	}
	r = mw(t, dir, "history", "--json")
	var runs []struct {
		ID, Outcome string
		Items       int
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &runs) != nil || len(runs) != 2 || runs[0].Items != 2 || runs[1].Items != 3 {
		t.Fatalf("history: %+v", r)
	}
	r = mw(t, dir, "history", "show", runs[0].ID)
	if r.code != 0 || !strings.Contains(r.stdout, "success") || strings.Contains(r.stdout, u.Password) {
		t.Fatalf("history show: %+v", r)
	}
	// Import keeps it in the data folder; run by name.
	if r := mw(t, dir, "task", "import", taskFile); r.code != 0 {
		t.Fatalf("import: %+v", r)
	}
	if r := mw(t, dir, "task", "run", "pop download", "--var", "Dest="+dest, "--quiet"); r.code != 0 || !strings.Contains(r.stderr, "0 messages") {
		t.Fatalf("run by name: %+v", r)
	}
}

func TestTaskValidateReportsPaths(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(f, []byte(`{"version":1,"name":"bad","steps":[
		{"action":"imap.open","params":{"host":"h","auth":"oauth","param_set":"x","port":"nine"}},
		{"action":"pop3.loop","body":[{"action":"pop3.download","params":{"folder":"{Nowhere}"}}]}]}`), 0o600)
	r := mw(t, dir, "task", "validate", f)
	if r.code != 1 || !strings.Contains(r.stdout, "steps[0].params.port") || !strings.Contains(r.stdout, "steps[1].body[0].params.folder: unknown variable {Nowhere}") {
		t.Fatalf("%+v", r)
	}
	r = mw(t, dir, "task", "run", f)
	if r.code != 1 || !strings.Contains(r.stderr, "problem") {
		t.Fatalf("run of an invalid task: %+v", r)
	}
}

// TestTaskDryRunChangesNothing: a dry run of a loop that marks, moves and sends lists the
// messages but leaves the mailbox, the outbox and the checkpoint as they were; the real run
// afterwards handles every message.
func TestTaskDryRunChangesNothing(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	smtpSrv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none"})
	u := testmail.DefaultUser()
	dc.SeedN(t, u.Name, "INBOX", 4, 600)
	dc.Seed(t, u.Name, "Archive")
	dir := t.TempDir()
	smtpHost, smtpPort, _ := strings.Cut(smtpSrv.Addr(), ":")
	tk := map[string]any{
		"version": 1, "name": "Archive and notify",
		"steps": []map[string]any{
			{"action": "imap.open", "params": map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.IMAPSPort),
				"auth": "password", "user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}},
			{"action": "imap.select"},
			{"action": "imap.loop", "params": map[string]string{"only_new": "true", "mark_seen": "true"}, "body": []map[string]any{
				{"action": "smtp.send", "params": map[string]string{"host": smtpHost, "port": smtpPort, "security": "none", "auth": "none",
					"from": "robot@example.test", "to": "boss@example.test", "subject": "Archived: {MessageSubject}", "text_body": "done"}},
				{"action": "imap.move", "params": map[string]string{"target_folder": "Archive"}},
			}},
		},
	}
	b, _ := json.Marshal(tk)
	taskFile := filepath.Join(t.TempDir(), "t.json")
	os.WriteFile(taskFile, b, 0o600)
	r := mw(t, dir, "task", "run", taskFile, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stderr, "4 messages") || strings.Count(r.stderr, "dry run: would move") != 4 ||
		strings.Count(r.stderr, "dry run: would send") != 4 {
		t.Fatalf("dry run: %+v", r)
	}
	if n := len(dc.Messages(t, u.Name, "INBOX")); n != 4 {
		t.Fatalf("dry run moved mail: %d left in INBOX", n)
	}
	for _, m := range dc.Messages(t, u.Name, "INBOX") {
		if strings.Contains(m.Flags, "S") {
			t.Fatal("dry run marked a message seen")
		}
	}
	if len(smtpSrv.Messages()) != 0 {
		t.Fatal("dry run sent mail")
	}
	r = mw(t, dir, "task", "run", taskFile, "--quiet")
	if r.code != 0 || !strings.Contains(r.stderr, "4 messages") {
		t.Fatalf("real run after the dry run: %+v", r)
	}
	if len(dc.Messages(t, u.Name, "Archive")) != 4 || len(smtpSrv.Messages()) != 4 {
		t.Fatalf("real run: archive %d, sent %d", len(dc.Messages(t, u.Name, "Archive")), len(smtpSrv.Messages()))
	}
}

// TestTaskTwoFoldersKeepSeparateCheckpoints: two only-new loops in one task, over INBOX
// and Archive, each remember their own folder.
func TestTaskTwoFoldersKeepSeparateCheckpoints(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	dc.SeedN(t, u.Name, "INBOX", 3, 400)
	dc.SeedN(t, u.Name, "Archive", 2, 400)
	dir, dest := t.TempDir(), t.TempDir()
	loop := func(folder string) []map[string]any {
		return []map[string]any{
			{"action": "imap.select", "params": map[string]string{"folder": folder}},
			{"action": "imap.loop", "params": map[string]string{"only_new": "true"}, "body": []map[string]any{
				{"action": "imap.download", "params": map[string]string{"folder": filepath.Join(dest, folder), "file_name": "{MessageUID}.eml"}}}},
		}
	}
	steps := []map[string]any{{"action": "imap.open", "params": map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.IMAPSPort),
		"auth": "password", "user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}}}
	steps = append(append(steps, loop("INBOX")...), loop("Archive")...)
	b, _ := json.Marshal(map[string]any{"version": 1, "name": "Two folders", "steps": steps})
	f := filepath.Join(t.TempDir(), "t.json")
	os.WriteFile(f, b, 0o600)
	for i, want := range []string{"5 messages", "0 messages"} {
		if r := mw(t, dir, "task", "run", f, "--quiet"); r.code != 0 || !strings.Contains(r.stderr, want) {
			t.Fatalf("run %d: want %s: %+v", i+1, want, r)
		}
	}
	dc.SeedN(t, u.Name, "INBOX", 1, 400)
	dc.SeedN(t, u.Name, "Archive", 1, 400)
	if r := mw(t, dir, "task", "run", f, "--quiet"); r.code != 0 || !strings.Contains(r.stderr, "2 messages") {
		t.Fatalf("run 3: %+v", r)
	}
}
