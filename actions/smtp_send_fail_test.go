package actions

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// TestSMTPSendFailures: every failure is explained, names what to fix, never holds the
// password, and sends nothing; the kept connection stays usable after server refusals.
func TestSMTPSendFailures(t *testing.T) {
	srv := smtpPasswordServer(t, "starttls")
	te := newTestEnv(t)
	run := func(kv ...string) error {
		return te.run(context.Background(), NewSMTPSend(), smtpPasswordParams(srv, kv...))
	}
	mustFail := func(err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error; want one containing %q", want)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q does not contain %q", err, w)
			}
		}
		if strings.Contains(err.Error(), smtpTestPassword) {
			t.Fatalf("error holds the password: %v", err)
		}
		if n := len(srv.Messages()); n != 0 {
			t.Fatalf("the server accepted %d message(s)", n)
		}
	}

	mustFail(run("password", "wrong-"+smtpTestPassword), "login", "alice@example.test", "535", "app password")

	srv.FailNextRcpt(550, "mailbox unavailable")
	err := run("to", "nobody@example.test, bob@example.test", "cc", "carol@example.test")
	mustFail(err, "refused 1 recipient", "<nobody@example.test>: 550", "mailbox unavailable", "sent to nobody")
	if Temporary(err) {
		t.Fatal("a 550 recipient refusal is classified temporary")
	}

	srv.FailNext(554, "message looks like spam")
	err = run()
	mustFail(err, "554", "looks like spam", "not sent")
	if Temporary(err) {
		t.Fatal("a 554 is classified temporary: a retry policy would resend")
	}
	srv.FailNext(451, "try again later")
	if err := run(); !Temporary(err) || !strings.Contains(err.Error(), "451") {
		t.Fatalf("a 451 after DATA: err = %v, temporary = %v", err, Temporary(err))
	}
	srv.FailNextRcpt(450, "greylisted")
	if err := run("to", "bob@example.test, carol@example.test"); !Temporary(err) || !strings.Contains(err.Error(), "450") {
		t.Fatalf("a 450 recipient refusal: err = %v, temporary = %v", err, Temporary(err))
	}
	if len(srv.Messages()) != 0 {
		t.Fatal("a message was accepted")
	}

	dir := t.TempDir()
	mustFail(run("attachments", filepath.Join(dir, "*.pdf")), filepath.Join(dir, "*.pdf"), "matches no file")
	mustFail(run("to", ""), "no recipient")
	mustFail(run("to", "bob@example.test, not-an-address"), `"not-an-address"`)
	mustFail(run("headers", "Bcc: eve@example.test"), "Bcc cannot be set here")
	mustFail(run("save_to_sent", "true"), `no open IMAP connection named "imap"`, "nothing was sent")
	mustFail(run("reply_to_loop_message", "true"), "not inside a loop")

	// After all that the kept connection still sends.
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if len(srv.Messages()) != 1 {
		t.Fatalf("server got %d messages", len(srv.Messages()))
	}
}

// TestSMTPSendNoSTARTTLS: a server without STARTTLS gets neither the password nor mail.
func TestSMTPSendNoSTARTTLS(t *testing.T) {
	srv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none", Users: map[string]string{"alice@example.test": smtpTestPassword}})
	proxy := startSMTPTestProxy(t, srv.Addr())
	te := newTestEnv(t)
	err := te.run(context.Background(), NewSMTPSend(), smtpPasswordParams(srv, "security", "starttls", "port", strconv.Itoa(proxy.Port)))
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") || !strings.Contains(err.Error(), "nothing was sent") {
		t.Fatalf("err = %v", err)
	}
	if sent := proxy.Sent(); strings.Contains(sent, "AUTH") || strings.Contains(sent, "MAIL") || strings.Contains(sent, smtpTestPassword) {
		t.Fatalf("the client went on in plaintext: %q", sent)
	}
}

// TestSMTPSendSilentServer: a server that accepts but never greets costs at most the
// timeout, and cancelling the run returns at once.
func TestSMTPSendSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	port := ln.Addr().(*net.TCPAddr).Port
	te := newTestEnv(t)

	start := time.Now()
	err = te.run(context.Background(), NewSMTPSend(), smtpParams(port, "starttls", "timeout", "1s"))
	if err == nil || !strings.Contains(err.Error(), "no answer within 1s") || !strings.Contains(err.Error(), "use security tls") || time.Since(start) > 5*time.Second {
		t.Fatalf("after %s: err = %v", time.Since(start), err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	err = te.run(ctx, NewSMTPSend(), smtpParams(port, "none", "timeout", "30s"))
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Fatalf("after %s: err = %v, want a prompt context.Canceled", time.Since(start), err)
	}

	// Cancelled while a kept connection waits for the server's answer to RCPT: the step
	// returns at once and the connection is dropped from the run.
	release := make(chan struct{})
	var block atomic.Bool
	hport := startSMTPHashServer(t, &smtpHashServer{onRcpt: func() {
		if block.Load() {
			<-release
		}
	}})
	t.Cleanup(func() { close(release) })
	te.mustRun(NewSMTPSend(), smtpParams(hport, "none"))
	block.Store(true)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	err = te.run(ctx, NewSMTPSend(), smtpParams(hport, "none", "timeout", "30s"))
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Fatalf("after %s: err = %v, want a prompt context.Canceled", time.Since(start), err)
	}
	if !strings.Contains(te.Logs.String(), "reused=true") {
		t.Fatal("the cancelled send did not run on the kept connection")
	}
	for k := range smtpTestSessionNames(te) {
		if strings.HasPrefix(k, "smtp:"+net.JoinHostPort(testmail.Host, strconv.Itoa(hport))) {
			t.Fatalf("the cancelled connection %s is still kept", k)
		}
	}
}

// smtpTestSessionNames lists the sessions a run keeps.
func smtpTestSessionNames(te *testEnv) map[string]bool {
	te.Sessions.mu.Lock()
	defer te.Sessions.mu.Unlock()
	names := map[string]bool{}
	for k := range te.Sessions.byName {
		names[k] = true
	}
	return names
}

// smtpCountingReader records how many bytes were read and whether it was closed.
type smtpCountingReader struct {
	r      io.Reader
	mu     sync.Mutex
	n      int
	closed bool
}

func (c *smtpCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	return n, err
}

func (c *smtpCountingReader) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func TestSMTPSendReplyToLoopMessage(t *testing.T) {
	srv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none"})
	te := newTestEnv(t)
	parent := "From: bob@example.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <p3@example.test>\r\n" +
		"References: <p1@example.test> <p2@example.test>\r\n\r\n" + strings.Repeat("a long body line\r\n", 60000)
	var rc *smtpCountingReader
	te.Sessions.SetCurrent(&CurrentMessage{Protocol: "imap", Session: "imap", UID: 7, Open: func(ctx context.Context) (io.ReadCloser, error) {
		rc = &smtpCountingReader{r: strings.NewReader(parent)}
		return rc, nil
	}})
	te.mustRun(NewSMTPSend(), smtpParams(srv.Port, "none", "subject", "", "reply_to_loop_message", "true"))
	h, _ := smtpTestParse(t, srv.Messages()[0].Data)
	subject, _ := h.Subject()
	irt, _ := h.MsgIDList("In-Reply-To")
	refs, _ := h.MsgIDList("References")
	if subject != "Re: Grüße" || strings.Join(irt, " ") != "p3@example.test" || strings.Join(refs, " ") != "p1@example.test p2@example.test p3@example.test" {
		t.Fatalf("subject %q, In-Reply-To %v, References %v", subject, irt, refs)
	}
	if rc.n > 64<<10 || !rc.closed {
		t.Fatalf("read %d bytes of a %d-byte message (want only the header), closed=%v", rc.n, len(parent), rc.closed)
	}
	// A subject given on the step wins over "Re: ...".
	te.mustRun(NewSMTPSend(), smtpParams(srv.Port, "none", "subject", "Own subject", "reply_to_loop_message", "true"))
	h, _ = smtpTestParse(t, srv.Messages()[1].Data)
	if s, _ := h.Subject(); s != "Own subject" || h.Get("In-Reply-To") != "<p3@example.test>" {
		t.Fatalf("subject %q, In-Reply-To %q", s, h.Get("In-Reply-To"))
	}
}
