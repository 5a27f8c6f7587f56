package task

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/internal/testmail"
)

// The tests in the *_fault_test.go files of this package run real tasks through the
// engine (shipped actions, history and checkpoints in a data folder) against the harness's
// servers, with faults injected by testmail.FaultProxy: what a user's run would meet.

// faultLog is a log buffer safe for concurrent writes.
type faultLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *faultLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *faultLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// faultRig runs tasks the way `mailwright task run` does, with the log in a buffer.
type faultRig struct {
	t    *testing.T
	dir  string
	eng  *Engine
	logs *faultLog
}

func newFaultRig(t *testing.T, tokens actions.TokenProvider) *faultRig {
	t.Helper()
	dir := t.TempDir()
	logs := &faultLog{}
	eng := &Engine{DataDir: dir, Registry: actions.NewDefaultRegistry(), History: openHistory(t, dir), Tokens: tokens,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	return &faultRig{t: t, dir: dir, eng: eng, logs: logs}
}

// run runs tk once; the engine itself must not fail.
func (r *faultRig) run(tk *Task) *Result {
	r.t.Helper()
	res, err := r.eng.Run(context.Background(), tk, RunOptions{})
	if err != nil {
		r.t.Fatalf("engine: %v\n%s", err, r.logs)
	}
	return res
}

// failedStep returns the action ID of the innermost step that failed the run (inside a
// loop's body rather than the loop).
func failedStep(res *Result) string {
	action := ""
	for err := res.Err; err != nil; err = errors.Unwrap(err) {
		if se, ok := err.(*StepError); ok {
			action = se.Action
		}
	}
	return action
}

// savedFiles returns the files in dir by name; hidden names (temporary files) included.
func savedFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// checkOnlyWhole fails unless every file in dir is named <n>.eml and holds exactly
// seeded[n-1] (no partial file under a final name, no temporary file left), and returns
// the numbers saved.
func checkOnlyWhole(t *testing.T, dir string, seeded [][]byte) []int {
	t.Helper()
	var nums []int
	for name, data := range savedFiles(t, dir) {
		n, err := strconv.Atoi(strings.TrimSuffix(name, ".eml"))
		if err != nil || !strings.HasSuffix(name, ".eml") || n < 1 || n > len(seeded) {
			t.Fatalf("unexpected file %q (%d bytes) in the download folder", name, len(data))
		}
		if !bytes.Equal(data, seeded[n-1]) {
			t.Fatalf("%s holds %d bytes that are not message %d (%d bytes): a partial file under its final name", name, len(data), n, len(seeded[n-1]))
		}
		nums = append(nums, n)
	}
	sort.Ints(nums)
	return nums
}

// checkResumed checks two runs' download folders (files named by message number) after a
// cut ended the first: run 1 saved whole messages 1..k; run 2 saved the rest, whole, and
// handled nothing else twice except possibly message k — the one in flight when the cut
// came, if its steps had finished but recording it as done (on the server and in the
// checkpoint) had not (at-least-once at that single boundary, as the README says). It
// returns k and whether k was handled again.
func checkResumed(t *testing.T, dir1, dir2 string, seeded [][]byte, items2 int) (int, bool) {
	t.Helper()
	first, second := checkOnlyWhole(t, dir1, seeded), checkOnlyWhole(t, dir2, seeded)
	k := len(first)
	if k == 0 || k >= len(seeded) || first[k-1] != k {
		t.Fatalf("run 1 saved messages %v; want 1..k with k < %d", first, len(seeded))
	}
	again := len(second) > 0 && second[0] == k
	want := len(seeded) - k
	if again {
		want++
	}
	if len(second) != want || second[len(second)-1] != len(seeded) || items2 != want {
		t.Fatalf("run 2 saved %v in %d items after run 1 saved 1..%d: a message skipped or handled twice", second, items2, k)
	}
	return k, again
}

func imapOpenStep(dc *testmail.Dovecot, port int) Step {
	u := testmail.DefaultUser()
	return Step{Action: "imap.open", Params: map[string]string{"host": dc.Host, "port": strconv.Itoa(port), "security": "tls",
		"auth": "password", "user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile, "timeout": "10s"}}
}

// cutSizes are the message sizes of the cut tests: small ones the loops fetch ahead (the
// cut then hits the loop), and ones above the loops' look-ahead limit (256 KiB), which the
// download step streams itself (the cut hits the step).
var cutSizes = []struct {
	name string
	size int
}{{"ahead", 40_000}, {"streamed", 300_000}}

// TestFaultIMAPFetchCut cuts the connection in the middle of an IMAP FETCH of message
// bodies (an only-new loop that downloads each message and marks it read), under the stop
// and the retry policy, for messages the loop fetches ahead and for ones the download
// streams. Each time: the run fails at the download or at the loop; when the download
// fails, a retry policy retries it as often as it says (which cannot revive the dropped
// connection); the folder holds only whole messages under their final names and no
// temporary file; no message after the last one saved is marked read; the next run
// (connection back) saves exactly the rest — at most the message in flight at the cut is
// handled again.
func TestFaultIMAPFetchCut(t *testing.T) {
	for _, sz := range cutSizes {
		for _, policy := range []*OnError{nil, {Policy: PolicyRetry, Retries: 2, Backoff: "10ms"}} {
			name := sz.name + "/stop"
			if policy != nil {
				name = sz.name + "/retry"
			}
			t.Run(name, func(t *testing.T) { imapFetchCut(t, sz.size, policy) })
		}
	}
}

func imapFetchCut(t *testing.T, size int, policy *OnError) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	const total = 12
	seeded := dc.SeedN(t, u.Name, "INBOX", total, size)
	proxy := testmail.StartFaultProxy(t, dc.Addr(dc.IMAPSPort))
	dir1, dir2 := t.TempDir(), t.TempDir()
	rig := newFaultRig(t, nil)
	download := Step{Action: "imap.download", OnError: policy, Params: map[string]string{"folder": dir1, "file_name": "{MessageUID}.eml", "collision": "fail"}}
	tk := &Task{Name: "Fetch all", Steps: []Step{
		imapOpenStep(dc, proxy.Port),
		{Action: "imap.select", Params: map[string]string{"folder": "INBOX"}},
		{Action: "imap.loop", Params: map[string]string{"only_new": "true", "mark_seen": "true"}, Body: []Step{download}},
	}}
	// The cut falls inside the fifth or so message's literal (TLS adds a little).
	proxy.Set(testmail.Fault{Kind: testmail.FaultCut, Dir: testmail.ToClient, After: int64(4*size + size/2)})
	res := rig.run(tk)
	at := failedStep(res)
	if res.Outcome != OutcomeFailed || (at != "imap.download" && at != "imap.loop") || proxy.Fired() != 1 {
		t.Fatalf("run 1: %s at %q (%v), cut fired %d\n%s", res.Outcome, at, res.Err, proxy.Fired(), rig.logs)
	}
	t.Logf("run 1 failed as it should, at %s: %v", at, res.Err)
	if retries := strings.Count(rig.logs.String(), "temporary error; retrying"); policy != nil && at == "imap.download" && retries != policy.Retries {
		t.Errorf("retry policy: %d retries logged, want %d:\n%s", retries, policy.Retries, rig.logs)
	}
	saved := len(checkOnlyWhole(t, dir1, seeded))
	for i, m := range dc.Messages(t, u.Name, "INBOX") {
		if seen := strings.Contains(m.Flags, "S"); seen && i >= saved || !seen && i < saved-1 {
			t.Fatalf("message %d marked read = %v after run 1 saved 1..%d", i+1, seen, saved)
		}
	}

	tk.Steps[2].Body[0].Params["folder"] = dir2 // the network is back (the cut fired once)
	res = rig.run(tk)
	if res.Outcome != OutcomeSuccess {
		t.Fatalf("run 2: %v\n%s", res.Err, rig.logs)
	}
	if k, again := checkResumed(t, dir1, dir2, seeded, res.Items); again {
		t.Logf("message %d, in flight at the cut, was handled again", k)
	}
	for i, m := range dc.Messages(t, u.Name, "INBOX") {
		if !strings.Contains(m.Flags, "S") {
			t.Fatalf("message %d not marked read after both runs", i+1)
		}
	}
}

func pop3OpenStep(dc *testmail.Dovecot, port int) Step {
	u := testmail.DefaultUser()
	return Step{Action: "pop3.open", Params: map[string]string{"host": dc.Host, "port": strconv.Itoa(port), "security": "tls",
		"auth": "password", "user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile, "timeout": "10s"}}
}

// TestFaultPOP3RetrCut cuts the connection in the middle of a POP3 RETR inside a
// download-and-delete loop (only new), for messages the loop reads ahead and for ones the
// download streams: the run fails at the download or at the loop, only whole files exist,
// nothing is deleted on the server (no QUIT reached it), and the next run saves exactly
// the rest — at most the message in flight at the cut is handled again — and deletes
// every message, those whose deletion the cut lost included.
func TestFaultPOP3RetrCut(t *testing.T) {
	for _, sz := range cutSizes {
		t.Run(sz.name, func(t *testing.T) {
			pop3RetrCut(t, sz.size)
		})
	}
}

func pop3RetrCut(t *testing.T, size int) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	const total = 12
	seeded := dc.SeedN(t, u.Name, "INBOX", total, size)
	proxy := testmail.StartFaultProxy(t, dc.Addr(dc.POP3SPort))
	dir1, dir2 := t.TempDir(), t.TempDir()
	rig := newFaultRig(t, nil)
	// Numbers stay those of the seeded order: nothing is deleted before a QUIT.
	tk := &Task{Name: "Download and delete", Steps: []Step{
		pop3OpenStep(dc, proxy.Port),
		{Action: "pop3.loop", Params: map[string]string{"only_new": "true"}, Body: []Step{
			{Action: "pop3.download", Params: map[string]string{"folder": dir1, "file_name": "{MessageNumber}.eml", "collision": "fail"}},
			{Action: "pop3.delete"},
		}},
		{Action: "pop3.close"},
	}}
	proxy.Set(testmail.Fault{Kind: testmail.FaultCut, Dir: testmail.ToClient, After: int64(4*size + size/2)})
	res := rig.run(tk)
	at := failedStep(res)
	if res.Outcome != OutcomeFailed || (at != "pop3.download" && at != "pop3.loop") || proxy.Fired() != 1 {
		t.Fatalf("run 1: %s at %q (%v)\n%s", res.Outcome, at, res.Err, rig.logs)
	}
	t.Logf("run 1 failed as it should, at %s: %v", at, res.Err)
	if n := len(dc.Messages(t, u.Name, "INBOX")); n != total {
		t.Fatalf("%d messages on the server after the cut, want all %d: deletions are only committed by QUIT", n, total)
	}

	tk.Steps[1].Body[0].Params["folder"] = dir2
	res = rig.run(tk)
	if res.Outcome != OutcomeSuccess {
		t.Fatalf("run 2: %v\n%s", res.Err, rig.logs)
	}
	k, _ := checkResumed(t, dir1, dir2, seeded, res.Items)
	// Run 2 also sent again the deletions run 1 lost with its cut session (see
	// TestFaultPOP3DeletionLostAtCut): the mailbox is empty.
	if left := dc.Messages(t, u.Name, "INBOX"); len(left) != 0 {
		t.Fatalf("%d messages left on the server after run 2 succeeded (run 1 saved %d)\n%s", len(left), k, rig.logs)
	}
}

// TestFaultPOP3DeletionLostAtCut: a download-and-delete loop (only new) whose connection
// is cut before QUIT loses the deletions of the messages it had finished (POP3 commits
// DELE only at QUIT); they are recorded as handled, so only_new skips them. The loop
// records them as pending deletion too, and the next run deletes them (logging so) while
// it handles the rest, each message once: the mailbox ends empty, every message saved.
// A dry run in between logs the deletions it would redo and deletes nothing.
func TestFaultPOP3DeletionLostAtCut(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	const total = 6
	seeded := dc.SeedN(t, u.Name, "INBOX", total, 20_000)
	proxy := testmail.StartFaultProxy(t, dc.Addr(dc.POP3SPort))
	rig := newFaultRig(t, nil)
	dir := t.TempDir()
	tk := &Task{Name: "Download and delete", Steps: []Step{
		pop3OpenStep(dc, proxy.Port),
		{Action: "pop3.loop", Params: map[string]string{"only_new": "true"}, Body: []Step{
			{Action: "pop3.download", Params: map[string]string{"folder": dir, "file_name": "{MessageUIDL}.eml", "collision": "skip"}},
			{Action: "pop3.delete"},
		}},
		{Action: "pop3.close"},
	}}
	proxy.Set(testmail.Fault{Kind: testmail.FaultCut, Dir: testmail.ToClient, After: 3*20_000 + 10_000})
	res := rig.run(tk)
	if res.Outcome != OutcomeFailed {
		t.Fatalf("run 1: %s", res.Outcome)
	}
	handled1 := res.Items
	if n := len(dc.Messages(t, u.Name, "INBOX")); n != total {
		t.Fatalf("%d messages on the server after the cut, want all %d (no QUIT)", n, total)
	}
	const redo = "whose deletion was lost when the previous session ended without QUIT"

	dry, err := rig.eng.Run(context.Background(), tk, RunOptions{DryRun: true})
	if err != nil || dry.Outcome != OutcomeSuccess {
		t.Fatalf("dry run: %v %v\n%s", err, dry.Err, rig.logs)
	}
	if !strings.Contains(rig.logs.String(), "dry run: would delete") || !strings.Contains(rig.logs.String(), redo) {
		t.Fatalf("the dry run does not say which deletions it would redo:\n%s", rig.logs)
	}
	if n := len(dc.Messages(t, u.Name, "INBOX")); n != total {
		t.Fatalf("the dry run deleted: %d messages left of %d", n, total)
	}

	before := len(rig.logs.String())
	res = rig.run(tk)
	if res.Outcome != OutcomeSuccess {
		t.Fatalf("run 2: %v\n%s", res.Err, rig.logs)
	}
	if log := rig.logs.String()[before:]; !strings.Contains(log, "deleting ") || !strings.Contains(log, redo) {
		t.Fatalf("run 2 does not log the deletions it redoes:\n%s", log)
	}
	if left := dc.Messages(t, u.Name, "INBOX"); len(left) != 0 {
		t.Fatalf("%d messages stay on the server after a download-and-delete run succeeded\n%s", len(left), rig.logs)
	}
	// Each message was saved, and handled at most twice in all (the one in flight at the
	// cut); none whose deletion was redone was handled again.
	files := savedFiles(t, dir)
	if len(files) != total || handled1+res.Items > total+1 {
		t.Fatalf("%d files for %d messages; run 1 handled %d, run 2 %d", len(files), total, handled1, res.Items)
	}
	for _, m := range seeded {
		found := false
		for _, f := range files {
			found = found || bytes.Equal(f, m)
		}
		if !found {
			t.Fatal("a message was not saved")
		}
	}
	// Run 3: nothing left to delete or handle.
	before = len(rig.logs.String())
	if res := rig.run(tk); res.Outcome != OutcomeSuccess || res.Items != 0 || strings.Contains(rig.logs.String()[before:], redo) {
		t.Fatalf("run 3: %s, %d items, %v\n%s", res.Outcome, res.Items, res.Err, rig.logs.String()[before:])
	}
}

// TestFaultSMTPDataCut cuts an SMTP session during DATA and right after it. A message is
// reported sent (the "sent message" log line, the SentMessageID variable) only when the
// server's 250 for the data arrived:
//   - cut mid-DATA, stop policy: the step fails saying it was not sent; the server
//     accepted nothing;
//   - cut mid-DATA, retry policy: the retry reconnects and the server gets the message
//     exactly once, whole;
//   - cut after the server accepted the data but before its 250 reached the client, retry
//     policy: the step fails saying the message may have been sent, and is NOT retried
//     (a retry would send it twice).
func TestFaultSMTPDataCut(t *testing.T) {
	// 4 MB, cut after a fraction of it: far more than socket buffers hold, so the client is
	// still writing when the cut reaches it (else it would rightly say "may have been sent").
	body := strings.Repeat("0123456789 the quick brown fox jumps over the lazy dog 0123456789\r\n", 60_000) + "END OF BODY\r\n"
	setup := func(t *testing.T, policy *OnError, body string) (*testmail.SMTPServer, *testmail.FaultProxy, *faultRig, *Task) {
		srv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none"})
		proxy := testmail.StartFaultProxy(t, srv.Addr())
		tk := &Task{Name: "Send report", Steps: []Step{{Action: "smtp.send", OnError: policy, Params: map[string]string{
			"host": srv.Host, "port": strconv.Itoa(proxy.Port), "security": "none", "auth": "none", "timeout": "10s",
			"from": "robot@example.test", "to": "boss@example.test", "subject": "Report", "text_body": body}}}}
		return srv, proxy, newFaultRig(t, nil), tk
	}
	sentLogged := func(r *faultRig) int { return strings.Count(r.logs.String(), `msg="sent message"`) }

	t.Run("mid-DATA stop", func(t *testing.T) {
		srv, proxy, rig, tk := setup(t, nil, body)
		proxy.Set(testmail.Fault{Kind: testmail.FaultCut, Dir: testmail.ToServer, After: int64(len(body)) / 20})
		res := rig.run(tk)
		if res.Outcome != OutcomeFailed || failedStep(res) != "smtp.send" || !strings.Contains(res.Err.Error(), "was not sent") {
			t.Fatalf("%s: %v\n%s", res.Outcome, res.Err, rig.logs)
		}
		if n := len(srv.Messages()); n != 0 || sentLogged(rig) != 0 {
			t.Fatalf("server accepted %d messages, %d logged as sent", n, sentLogged(rig))
		}
	})

	t.Run("mid-DATA retry", func(t *testing.T) {
		srv, proxy, rig, tk := setup(t, &OnError{Policy: PolicyRetry, Retries: 2, Backoff: "10ms"}, body)
		proxy.Set(testmail.Fault{Kind: testmail.FaultReset, Dir: testmail.ToServer, After: int64(len(body)) / 20})
		res := rig.run(tk)
		msgs := srv.Messages()
		if res.Outcome != OutcomeSuccess || len(msgs) != 1 || strings.Count(rig.logs.String(), "retrying") != 1 || sentLogged(rig) != 1 {
			t.Fatalf("%s (%v): %d messages on the server, want exactly 1 after one retry\n%s", res.Outcome, res.Err, len(msgs), rig.logs)
		}
		if !bytes.Contains(msgs[0].Data, []byte(body)) {
			t.Fatal("the message the server accepted after the retry is not whole")
		}
	})

	t.Run("reply lost retry", func(t *testing.T) {
		srv, proxy, rig, tk := setup(t, &OnError{Policy: PolicyRetry, Retries: 2, Backoff: "10ms"}, "a short report\r\n")
		// A clean run first measures what the server says in one session; its last two
		// replies are the 250 for the data and the 221 for QUIT.
		if res := rig.run(tk); res.Outcome != OutcomeSuccess {
			t.Fatalf("calibration run: %v", res.Err)
		}
		final := int64(len("250 2.0.0 OK: queued\r\n") + len("221 2.0.0 Bye\r\n"))
		proxy.Set(testmail.Fault{Kind: testmail.FaultCut, Dir: testmail.ToClient, After: proxy.Relayed(testmail.ToClient) - final})
		res := rig.run(tk)
		if res.Outcome != OutcomeFailed || !strings.Contains(res.Err.Error(), "may or may not have been sent") {
			t.Fatalf("%s: %v\n%s", res.Outcome, res.Err, rig.logs)
		}
		if n := len(srv.Messages()); n != 2 || sentLogged(rig) != 1 || strings.Contains(rig.logs.String(), "retrying") {
			t.Fatalf("server holds %d messages (want 2: calibration + the accepted one), %d logged as sent (want 1: calibration); retried: %v\n%s",
				n, sentLogged(rig), strings.Contains(rig.logs.String(), "retrying"), rig.logs)
		}
	})
}
