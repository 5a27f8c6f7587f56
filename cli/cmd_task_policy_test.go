package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

// TestTaskErrorPoliciesAgainstServers: retry gets a message through a greylisting SMTP
// server (451 once); continue lets a loop go on past a message whose move fails, sets
// {LastError}, and leaves that message unmarked for the next run; stop ends the run.
func TestTaskErrorPoliciesAgainstServers(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	smtpSrv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none"})
	u := testmail.DefaultUser()
	dc.SeedN(t, u.Name, "INBOX", 3, 400)
	dir := t.TempDir()
	host, port, _ := strings.Cut(smtpSrv.Addr(), ":")
	open := map[string]any{"action": "imap.open", "params": map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.IMAPSPort),
		"auth": "password", "user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}}
	send := func(policy map[string]any) map[string]any {
		return map[string]any{"action": "smtp.send", "on_error": policy, "params": map[string]string{"host": host, "port": port,
			"security": "none", "auth": "none", "from": "robot@example.test", "to": "ops@example.test",
			"subject": "about {MessageSubject}", "text_body": "last error: {LastError}"}}
	}
	write := func(tk map[string]any) string {
		b, _ := json.Marshal(tk)
		f := filepath.Join(t.TempDir(), "t.json")
		os.WriteFile(f, b, 0o600)
		return f
	}

	// retry: the first DATA is greylisted (451), the retry goes through; exactly one message arrives.
	smtpSrv.FailNext(451, "greylisted, try again")
	retry := write(map[string]any{"version": 1, "name": "retry", "steps": []any{open, map[string]any{"action": "imap.select"},
		map[string]any{"action": "imap.loop", "params": map[string]string{"max_messages": "1"}, "body": []any{
			send(map[string]any{"policy": "retry", "retries": 2, "backoff": "10ms"})}}}})
	if r := mw(t, dir, "task", "run", retry); r.code != 0 || !strings.Contains(r.stderr, "retrying") {
		t.Fatalf("retry: %+v", r)
	}
	if n := len(smtpSrv.Messages()); n != 1 {
		t.Fatalf("retry delivered %d messages, want 1", n)
	}

	// continue: moving to a folder that does not exist fails for every message; the loop goes
	// on, the report mail carries {LastError}, no message is marked seen or moved.
	cont := write(map[string]any{"version": 1, "name": "continue", "steps": []any{open, map[string]any{"action": "imap.select"},
		map[string]any{"action": "imap.loop", "params": map[string]string{"mark_seen": "true"}, "body": []any{
			map[string]any{"action": "imap.move", "params": map[string]string{"target_folder": "Nowhere"}, "on_error": map[string]any{"policy": "continue"}},
			send(nil)}}}})
	r := mw(t, dir, "task", "run", cont, "--quiet")
	if r.code != 0 || !strings.Contains(r.stderr, "3 messages, 3 failed steps") {
		t.Fatalf("continue: %+v", r)
	}
	msgs := smtpSrv.Messages()
	if len(msgs) != 4 || !strings.Contains(string(msgs[3].Data), "Nowhere") {
		t.Fatalf("continue: %d messages; last %q", len(msgs), msgs[len(msgs)-1].Data)
	}
	for _, m := range dc.Messages(t, u.Name, "INBOX") {
		if strings.Contains(m.Flags, "S") {
			t.Fatal("a message whose body had a failed step was marked seen")
		}
	}

	// stop (the default): the first failure ends the run with the step's path and exit 1.
	stop := write(map[string]any{"version": 1, "name": "stop", "steps": []any{open, map[string]any{"action": "imap.select"},
		map[string]any{"action": "imap.loop", "body": []any{
			map[string]any{"action": "imap.move", "params": map[string]string{"target_folder": "Nowhere"}}, send(nil)}}}})
	r = mw(t, dir, "task", "run", stop, "--quiet")
	if r.code != 1 || !strings.Contains(r.stderr, "steps[2].body[0] (IMAP Move Message)") || !strings.Contains(r.stderr, "1 messages") {
		t.Fatalf("stop: %+v", r)
	}
	if len(smtpSrv.Messages()) != 4 {
		t.Fatal("stop: a step after the failure ran")
	}
}
