package actions

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailwright/mailwright/internal/testmail"
)

// smtpOpenSentIMAP logs into the harness Dovecot's IMAPS port at addr (the port itself or
// a proxy in front of it) as the default user and keeps the connection in te under name,
// as IMAP Open would.
func smtpOpenSentIMAP(t *testing.T, te *testEnv, dc *testmail.Dovecot, addr, name string) *IMAPSession {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: dc.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	u := testmail.DefaultUser()
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	s := NewIMAPSession(name, addr, c)
	te.Sessions.Put(name, s, nil)
	return s
}

// smtpFetchAll returns BODY[] and flags of every message in folder, over a new IMAP
// connection: the bytes a mail program gets (Dovecot's Maildir files hold LF line endings).
func smtpFetchAll(t *testing.T, dc *testmail.Dovecot, folder string) ([][]byte, [][]imap.Flag) {
	t.Helper()
	c, err := imapclient.DialTLS(dc.Addr(dc.IMAPSPort), &imapclient.Options{TLSConfig: dc.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u := testmail.DefaultUser()
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", folder, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(seqRange(sel.NumMessages)...), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	var flags [][]imap.Flag
	for _, m := range msgs {
		bodies = append(bodies, m.FindBodySection(section))
		flags = append(flags, m.Flags)
	}
	return bodies, flags
}

func seqRange(n uint32) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = uint32(i + 1)
	}
	return s
}

// TestSMTPSendDovecot sends through Dovecot's submission service (STARTTLS) with OAuth and
// with a password (LOGIN), reusing one connection for sends in a loop, and refuses a
// revoked token clearly.
func TestSMTPSendDovecot(t *testing.T) {
	te := newTestEnv(t)
	rig := startOAuthRig(t, te)
	dc := rig.dc
	proxy := startSMTPTestProxy(t, dc.Addr(dc.SubmissionPort))
	oauthParams := func(subject string) map[string]string {
		return smtpParams(proxy.Port, "starttls", "auth", "oauth", "param_set", "Local", "ca_file", dc.Certs.CertFile,
			"from", rig.user, "to", "bob@example.test", "bcc", "dave@example.test", "subject", subject)
	}
	for i := 0; i < 2; i++ {
		if err := te.run(context.Background(), NewSMTPSend(), oauthParams("oauth "+strconv.Itoa(i))); err != nil {
			t.Fatalf("send %d: %v\n%s", i, err, dc.Log())
		}
	}
	if proxy.Conns() != 1 {
		t.Fatalf("two sends opened %d connections to submission, want 1", proxy.Conns())
	}
	relayed := rig.relay.Messages()
	if len(relayed) != 2 {
		t.Fatalf("the relay behind submission got %d messages, want 2", len(relayed))
	}
	for i, m := range relayed {
		if !bytes.Contains(m.Data, []byte("Subject: oauth "+strconv.Itoa(i))) || strings.Join(m.To, ",") != "bob@example.test,dave@example.test" || smtpHasHeader(m.Data, "Bcc") {
			t.Fatalf("relayed message %d: to %v, Bcc header %v", i, m.To, smtpHasHeader(m.Data, "Bcc"))
		}
	}

	// OAUTHBEARER, on a connection of its own (a new run).
	teBearer := newTestEnv(t)
	teBearer.Tokens = te.Tokens
	bearer := oauthParams("via OAUTHBEARER")
	bearer["mechanism"] = "OAUTHBEARER"
	if err := teBearer.run(context.Background(), NewSMTPSend(), bearer); err != nil {
		t.Fatalf("OAUTHBEARER: %v\n%s", err, dc.Log())
	}
	if m := rig.relay.Messages(); len(m) != 3 || !bytes.Contains(m[2].Data, []byte("Subject: via OAUTHBEARER")) {
		t.Fatalf("the OAUTHBEARER send did not arrive: %d messages", len(m))
	}

	u := testmail.DefaultUser()
	if err := te.run(context.Background(), NewSMTPSend(), smtpParams(dc.SubmissionPort, "starttls", "auth", "password", "mechanism", "LOGIN",
		"user", u.Name, "password", u.Password, "ca_file", dc.Certs.CertFile, "from", u.Name, "subject", "via LOGIN")); err != nil {
		t.Fatalf("password LOGIN: %v\n%s", err, dc.Log())
	}
	if m := rig.relay.Messages(); len(m) != 4 || !bytes.Contains(m[3].Data, []byte("Subject: via LOGIN")) {
		t.Fatalf("the LOGIN send did not arrive: %d messages", len(m))
	}

	// A revoked token: refused with the provider's reason after one refresh attempt, on a
	// fresh connection (a new run), with no token in the text.
	tok, err := te.Tokens.Token(context.Background(), "Local")
	if err != nil {
		t.Fatal(err)
	}
	rig.oauth.RevokeUser(rig.user)
	te2 := newTestEnv(t)
	te2.Tokens = te.Tokens
	err = te2.run(context.Background(), NewSMTPSend(), oauthParams("revoked"))
	var rej *OAuthRejectedError
	if !errors.As(err, &rej) || !rej.Rejected || strings.Contains(err.Error(), tok.AccessToken) || !strings.Contains(err.Error(), "Get Refresh Token") {
		t.Fatalf("revoked token: %v", err)
	}
	t.Logf("revoked token: %v", err)
	if len(rig.relay.Messages()) != 4 {
		t.Fatal("a message went out with a revoked token")
	}
}

// TestSMTPSendSaveToSent: the copy in Sent holds exactly the bytes the SMTP server
// received, flagged \Seen, in a folder created on first use; a folder that cannot be
// created stops the step before anything is sent; a copy that fails after sending says
// that the mail was sent.
func TestSMTPSendSaveToSent(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	srv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none"})
	te := newTestEnv(t)
	smtpOpenSentIMAP(t, te, dc, dc.Addr(dc.IMAPSPort), "mailbox")
	user := testmail.DefaultUser().Name
	dir := t.TempDir()
	att := smtpTestFile(t, dir, "data.bin", bytes.Repeat([]byte("\x00\x01.\r\n\xff"), 4000))

	te.mustRun(NewSMTPSend(), smtpParams(srv.Port, "none", "save_to_sent", "true", "sent_connection", "mailbox",
		"subject", "Kopie – Grüße", "html_body", "<p>hi</p>", "attachments", att, "bcc", "dave@example.test"))
	bodies, flags := smtpFetchAll(t, dc, "Sent")
	got := srv.Messages()
	if len(bodies) != 1 || len(got) != 1 {
		t.Fatalf("%d messages in Sent, %d at the server; want 1 and 1", len(bodies), len(got))
	}
	if !bytes.Equal(bodies[0], got[0].Data) {
		t.Fatalf("the Sent copy differs from the sent message: %d bytes in Sent, the server got %d", len(bodies[0]), len(got[0].Data))
	}
	if !slices.Contains(flags[0], imap.FlagSeen) {
		t.Fatalf("the Sent copy has flags %v, want \\Seen", flags[0])
	}
	stored := dc.Messages(t, user, "Sent")
	if len(stored) != 1 || !bytes.Equal(stored[0].Body, bytes.ReplaceAll(got[0].Data, []byte("\r\n"), []byte("\n"))) {
		t.Fatal("the Maildir file is not the sent message (with the LF line endings Dovecot stores)")
	}
	te.mustRun(NewSMTPSend(), smtpParams(srv.Port, "none", "save_to_sent", "true", "sent_connection", "mailbox", "subject", "second"))
	if bodies, _ := smtpFetchAll(t, dc, "Sent"); len(bodies) != 2 || !bytes.Equal(bodies[1], srv.Messages()[1].Data) {
		t.Fatalf("second copy: %d in Sent", len(bodies))
	}

	// A folder the server cannot create: nothing is sent.
	err := te.run(context.Background(), NewSMTPSend(), smtpParams(srv.Port, "none", "save_to_sent", "true", "sent_connection", "mailbox", "sent_folder", "Sent.Old"))
	if err == nil || !strings.Contains(err.Error(), `"Sent.Old"`) || !strings.Contains(err.Error(), "creating it failed") || !strings.Contains(err.Error(), "nothing was sent") {
		t.Fatalf("err = %v", err)
	}
	if len(srv.Messages()) != 2 {
		t.Fatalf("the server got %d messages, want still 2", len(srv.Messages()))
	}
}

// TestSMTPSendSentCopyFailsAfterSending: the IMAP connection drops while the mail is being
// sent; the step fails with an error that says the mail WAS sent.
func TestSMTPSendSentCopyFailsAfterSending(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	imapProxy := startSMTPTestProxy(t, dc.Addr(dc.IMAPSPort))
	hs := &smtpHashServer{onData: imapProxy.Cut}
	port := startSMTPHashServer(t, hs)
	te := newTestEnv(t)
	smtpOpenSentIMAP(t, te, dc, dc.Addr(imapProxy.Port), "imap")
	err := te.run(context.Background(), NewSMTPSend(), smtpParams(port, "none", "save_to_sent", "true"))
	if err == nil || !strings.Contains(err.Error(), "WAS sent to 1 recipient") || !strings.Contains(err.Error(), "do not send it again") ||
		!strings.Contains(err.Error(), `folder "Sent"`) || !strings.Contains(err.Error(), te.Var("SentMessageID")) {
		t.Fatalf("err = %v", err)
	}
	if Temporary(err) {
		t.Fatal("the error is classified temporary: a retry policy would send the mail again")
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.count != 1 || te.Var("SentMessageID") == "" || te.Var("SentRecipients") != "1" {
		t.Fatalf("server got %d messages; outputs %q %q", hs.count, te.Var("SentMessageID"), te.Var("SentRecipients"))
	}
	if n := len(dc.Messages(t, testmail.DefaultUser().Name, "Sent")); n != 0 {
		t.Fatalf("%d messages in Sent", n)
	}
}
