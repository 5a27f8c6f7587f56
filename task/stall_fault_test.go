package task

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/internal/testmail"
)

// stallRun runs tk while the proxy lets after bytes reach the client and then relays
// nothing more (a server that stops answering mid-reply), and returns the result and how
// long the run took; a run still going after limit fails the test.
func stallRun(t *testing.T, rig *faultRig, proxy *testmail.FaultProxy, tk *Task, after int64, limit time.Duration) (*Result, time.Duration) {
	t.Helper()
	proxy.Set(testmail.Fault{Kind: testmail.FaultStall, Dir: testmail.ToClient, After: after})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *Result, 1)
	start := time.Now()
	go func() {
		res, err := rig.eng.Run(ctx, tk, RunOptions{})
		if err != nil {
			t.Errorf("engine: %v", err)
		}
		done <- res
	}()
	select {
	case res := <-done:
		return res, time.Since(start)
	case <-time.After(limit):
		cancel()
		<-done
		t.Fatalf("the run was still waiting for the silent server after %s\n%s", limit, rig.logs)
		return nil, 0
	}
}

// TestFaultStall: a server that stops answering in the middle of a POP3 RETR or of the
// SMTP dialogue (the connection stays open, nothing more comes) fails the step within the
// step's timeout instead of hanging the run — which in `serve` would block the task for
// good. The saved files are whole; SMTP says nothing was sent. (IMAP: see
// TestFaultIMAPStall.)
func TestFaultStall(t *testing.T) {
	t.Run("POP3 RETR", func(t *testing.T) {
		dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
		u := testmail.DefaultUser()
		seeded := dc.SeedN(t, u.Name, "INBOX", 6, 40_000)
		proxy := testmail.StartFaultProxy(t, dc.Addr(dc.POP3SPort))
		dest := t.TempDir()
		rig := newFaultRig(t, nil)
		open := pop3OpenStep(dc, proxy.Port)
		open.Params["timeout"] = "2s"
		tk := &Task{Name: "pop3", Steps: []Step{open,
			{Action: "pop3.loop", Params: map[string]string{"only_new": "true"}, Body: []Step{
				{Action: "pop3.download", Params: map[string]string{"folder": dest, "file_name": "{MessageIndex}.eml"}}}}}}
		res, took := stallRun(t, rig, proxy, tk, 2*40_000+20_000, 20*time.Second)
		if at := failedStep(res); res.Outcome != OutcomeFailed || (at != "pop3.download" && at != "pop3.loop") || took > 10*time.Second {
			t.Fatalf("%s at %q after %s: %v", res.Outcome, failedStep(res), took, res.Err)
		}
		t.Logf("failed after %s: %v", took.Round(time.Millisecond), res.Err)
		if got := checkOnlyWhole(t, dest, seeded); len(got) == 0 || len(got) >= 6 {
			t.Fatalf("saved %v", got)
		}
	})
	t.Run("SMTP", func(t *testing.T) {
		srv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none"})
		proxy := testmail.StartFaultProxy(t, srv.Addr())
		rig := newFaultRig(t, nil)
		tk := &Task{Name: "smtp", Steps: []Step{{Action: "smtp.send", Params: map[string]string{
			"host": srv.Host, "port": strconv.Itoa(proxy.Port), "security": "none", "auth": "none", "timeout": "2s",
			"from": "robot@example.test", "to": "boss@example.test", "subject": "Report", "text_body": "hello"}}}}
		if res := rig.run(tk); res.Outcome != OutcomeSuccess { // measures one session's replies
			t.Fatalf("calibration run: %v", res.Err)
		}
		// The server falls silent when it should answer DATA (its last three replies are
		// the 354, the 250 for the data and the 221 for QUIT).
		tail := int64(len("354 Go ahead. End your data with <CR><LF>.<CR><LF>\r\n") + len("250 2.0.0 OK: queued\r\n") + len("221 2.0.0 Bye\r\n"))
		res, took := stallRun(t, rig, proxy, tk, proxy.Relayed(testmail.ToClient)-tail, 20*time.Second)
		if res.Outcome != OutcomeFailed || took > 10*time.Second || !strings.Contains(res.Err.Error(), "nothing was sent") ||
			len(srv.Messages()) != 1 || strings.Count(rig.logs.String(), `msg="sent message"`) != 1 {
			t.Fatalf("%s after %s: %v\n%s", res.Outcome, took, res.Err, rig.logs)
		}
		t.Logf("failed after %s: %v", took.Round(time.Millisecond), res.Err)
	})
}

// stallAction is a step that makes the proxy stall at once: the next command's answer never
// comes.
type stallAction struct{ proxy *testmail.FaultProxy }

func (stallAction) Schema() actions.Schema { return actions.Schema{ID: "fault.stall", Title: "Stall"} }
func (a stallAction) Run(context.Context, *actions.Env) error {
	a.proxy.Set(testmail.Fault{Kind: testmail.FaultStall})
	return nil
}

// TestFaultIMAPStall: an IMAP server that stops answering — here right after the loop's
// first message, so the UID FETCH of its body gets no answer at all — fails the step
// within its timeout, as POP3 and SMTP do, instead of waiting for ever (go-imap reads
// without a deadline between responses; under `serve` every later run of the task would
// be refused as "already running"). The session's stall guard (actions/imap_stall.go)
// closes the connection, and the error names the timeout and what to do.
func TestFaultIMAPStall(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	seeded := dc.SeedN(t, u.Name, "INBOX", 3, 4000)
	proxy := testmail.StartFaultProxy(t, dc.Addr(dc.IMAPSPort))
	dest := t.TempDir()
	rig := newFaultRig(t, nil)
	if err := rig.eng.Registry.Register(stallAction{proxy}); err != nil {
		t.Fatal(err)
	}
	open := imapOpenStep(dc, proxy.Port)
	open.Params["timeout"] = "2s"
	tk := &Task{Name: "imap", Steps: []Step{open, {Action: "imap.select"},
		{Action: "imap.loop", Params: map[string]string{"only_new": "true"}, Body: []Step{
			{Action: "fault.stall"},
			{Action: "imap.download", Params: map[string]string{"folder": dest}}}}}}
	res, took := stallRun(t, rig, proxy, tk, 1<<40, 20*time.Second)
	if res.Outcome != OutcomeFailed || (failedStep(res) != "imap.download" && failedStep(res) != "imap.loop") || took > 10*time.Second {
		t.Fatalf("%s at %q after %s: %v", res.Outcome, failedStep(res), took, res.Err)
	}
	if msg := res.Err.Error(); !strings.Contains(msg, `the server sent nothing for 2s (the connection's "Timeout")`) || !actions.Temporary(res.Err) {
		t.Fatalf("error does not name the timeout or is not temporary: %v", res.Err)
	}
	t.Logf("failed after %s: %v", took.Round(time.Millisecond), res.Err)
	if got := checkOnlyWhole(t, dest, seeded); len(got) != 0 {
		t.Fatalf("saved %v", got)
	}
}
