package actions

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
)

// smtpTestProxy is a TCP proxy in front of a test server. It counts the connections the
// client opens, records what the client sends (readable when the connection is
// plaintext) and can cut every open connection, as a server dropping idle clients would.
type smtpTestProxy struct {
	Port int

	mu    sync.Mutex
	conns int
	open  []net.Conn
	sent  bytes.Buffer
	wg    sync.WaitGroup
}

func startSMTPTestProxy(t *testing.T, backend string) *smtpTestProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &smtpTestProxy{Port: ln.Addr().(*net.TCPAddr).Port}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns++
			p.open = append(p.open, c, b)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				io.Copy(b, io.TeeReader(c, (*smtpLockedBuffer)(p)))
				b.Close()
				c.Close()
			}()
			go func() {
				defer p.wg.Done()
				io.Copy(c, b)
				c.Close()
				b.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

type smtpLockedBuffer smtpTestProxy

func (b *smtpLockedBuffer) Write(d []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent.Write(d)
}

// Conns is the number of connections accepted so far.
func (p *smtpTestProxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

// Sent is everything the clients sent so far.
func (p *smtpTestProxy) Sent() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.String()
}

// Cut closes every open connection.
func (p *smtpTestProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.open {
		c.Close()
	}
	p.open = nil
}

// smtpParams returns the parameters of a send to 127.0.0.1:port; kv overrides them
// (an empty value removes one).
func smtpParams(port int, security string, kv ...string) map[string]string {
	m := map[string]string{"host": testmail.Host, "port": strconv.Itoa(port), "security": security, "auth": "none",
		"from": "alice@example.test", "to": "bob@example.test", "subject": "test", "text_body": "hello", "timeout": "10s"}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

const smtpTestPassword = "pw-Secret-4711"

func smtpPasswordServer(t *testing.T, security string) *testmail.SMTPServer {
	return testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: security, RequireAuth: true,
		Users: map[string]string{"alice@example.test": smtpTestPassword}})
}

func smtpPasswordParams(srv *testmail.SMTPServer, kv ...string) map[string]string {
	base := []string{"auth", "password", "user", "alice@example.test", "password", smtpTestPassword}
	if srv.Certs != nil {
		base = append(base, "ca_file", srv.Certs.CertFile)
	}
	return smtpParams(srv.Port, srv.Security, append(base, kv...)...)
}

// smtpHasHeader reports whether the header section of msg has a field named name.
func smtpHasHeader(msg []byte, name string) bool {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return true
		}
	}
	return false
}

func TestSMTPSendPasswordFullMessage(t *testing.T) {
	dir := t.TempDir()
	pdf := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte("\x00\xff.\r\n.line\n"), 20000)...)
	att := smtpTestFile(t, dir, "Rechnung März.pdf", pdf)
	subject := "Grüße – Rechnung №42"
	for _, security := range []string{"tls", "starttls"} {
		t.Run(security, func(t *testing.T) {
			srv := smtpPasswordServer(t, security)
			te := newTestEnv(t)
			err := te.run(context.Background(), NewSMTPSend(), smtpPasswordParams(srv,
				"from", `"Alice Ärger" <alice@example.test>`, "to", "bob@example.test", "cc", "carol@example.test",
				"bcc", "dave@example.test", "subject", subject, "text_body", "Hallo Bob,\nanbei die Rechnung.\n",
				"html_body", "<p>Hallo <b>Bob</b></p>", "attachments", att, "headers", "X-Campaign: März\nX-Mailer-Run: 7",
				"priority", "low"))
			if err != nil {
				t.Fatal(err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages", len(msgs))
			}
			got := msgs[0]
			if got.AuthUser != "alice@example.test" || got.From != "alice@example.test" {
				t.Fatalf("auth user %q, MAIL FROM %q", got.AuthUser, got.From)
			}
			if strings.Join(got.To, ",") != "bob@example.test,carol@example.test,dave@example.test" {
				t.Fatalf("envelope recipients = %v (Bcc must be among them)", got.To)
			}
			if smtpHasHeader(got.Data, "Bcc") || bytes.Contains(got.Data, []byte("dave@")) {
				t.Fatal("the Bcc address appears in the message")
			}
			smtpTestCheckWire(t, got.Data)
			h, parts := smtpTestParse(t, got.Data)
			if s, _ := h.Subject(); s != subject {
				t.Fatalf("subject = %q", s)
			}
			if id, _ := h.MessageID(); "<"+id+">" != te.Var("SentMessageID") || !strings.HasSuffix(id, "@example.test") {
				t.Fatalf("Message-ID %q, output SentMessageID %q", id, te.Var("SentMessageID"))
			}
			if d, err := h.Date(); err != nil || time.Since(d) > time.Minute {
				t.Fatalf("Date = %v, %v", d, err)
			}
			if te.Var("SentRecipients") != "3" {
				t.Fatalf("SentRecipients = %q", te.Var("SentRecipients"))
			}
			if v, _ := h.Text("X-Campaign"); v != "März" || h.Get("X-Mailer-Run") != "7" || h.Get("X-Priority") != "5 (Lowest)" || h.Get("Importance") != "low" {
				t.Fatalf("custom or priority headers: X-Campaign %q, X-Priority %q, Importance %q", v, h.Get("X-Priority"), h.Get("Importance"))
			}
			if len(parts) != 3 || parts[0].Path != "multipart/mixed>multipart/alternative>text/plain" ||
				parts[1].Path != "multipart/mixed>multipart/alternative>text/html" || parts[2].Path != "multipart/mixed>application/pdf" {
				t.Fatalf("structure: %+v", parts)
			}
			if parts[2].Filename != "Rechnung März.pdf" || !bytes.Equal(parts[2].Body, pdf) {
				t.Fatalf("attachment %q: identical=%v", parts[2].Filename, bytes.Equal(parts[2].Body, pdf))
			}
		})
	}
}

func TestSMTPSendRelayAndInsecureAuth(t *testing.T) {
	srv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none", Users: map[string]string{"alice@example.test": smtpTestPassword}})
	te := newTestEnv(t)
	te.mustRun(NewSMTPSend(), smtpParams(srv.Port, "none"))
	if m := srv.Messages(); len(m) != 1 || m[0].AuthUser != "" {
		t.Fatalf("relay without login: %+v", m)
	}
	// A password over plaintext needs the explicit opt-in, and nothing is sent without it.
	err := te.run(context.Background(), NewSMTPSend(), smtpPasswordParams(srv))
	if err == nil || !strings.Contains(err.Error(), "Allow login without TLS") || len(srv.Messages()) != 1 {
		t.Fatalf("password over plaintext: err = %v, %d messages", err, len(srv.Messages()))
	}
	te.mustRun(NewSMTPSend(), smtpPasswordParams(srv, "allow_insecure_auth", "true"))
	if m := srv.Messages(); len(m) != 2 || m[1].AuthUser != "alice@example.test" {
		t.Fatalf("password over plaintext with the opt-in: %+v", m)
	}
}

// TestSMTPSendReusesConnection: sends in a loop share one connection (one EHLO, one
// login, no check command before each reuse), a connection the server dropped is replaced
// transparently (found dead at MAIL FROM, before anything was sent), and the end of the
// run sends QUIT.
func TestSMTPSendReusesConnection(t *testing.T) {
	srv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none", RequireAuth: true, Users: map[string]string{"alice@example.test": smtpTestPassword}})
	proxy := startSMTPTestProxy(t, srv.Addr())
	te := newTestEnv(t)
	params := smtpPasswordParams(srv, "port", strconv.Itoa(proxy.Port), "allow_insecure_auth", "true")
	for i := 0; i < 3; i++ {
		params["subject"] = "loop " + strconv.Itoa(i)
		te.mustRun(NewSMTPSend(), params)
	}
	sent := proxy.Sent()
	if !strings.HasPrefix(sent, "EHLO [127.0.0.1]\r\n") {
		t.Fatalf("the client did not introduce itself with its address literal: %q", sent[:min(len(sent), 40)])
	}
	if proxy.Conns() != 1 || strings.Count(sent, "EHLO") != 1 || strings.Count(sent, "AUTH PLAIN") != 1 || strings.Contains(sent, "NOOP") || strings.Contains(sent, "RSET") {
		t.Fatalf("3 sends: %d connections, %d EHLO, %d logins, %d NOOP, %d RSET; want 1, 1, 1, 0, 0\n%s", proxy.Conns(), strings.Count(sent, "EHLO"),
			strings.Count(sent, "AUTH PLAIN"), strings.Count(sent, "NOOP\r\n"), strings.Count(sent, "RSET"), sent)
	}
	if len(srv.Messages()) != 3 {
		t.Fatalf("server got %d messages", len(srv.Messages()))
	}

	proxy.Cut() // the server drops the idle connection
	params["subject"] = "after the drop"
	te.mustRun(NewSMTPSend(), params)
	if proxy.Conns() != 2 || len(srv.Messages()) != 4 {
		t.Fatalf("after a dropped connection: %d connections, %d messages; want 2, 4", proxy.Conns(), len(srv.Messages()))
	}
	if !strings.Contains(te.Logs.String(), "reconnecting") {
		t.Error("the reconnect was not logged")
	}

	te.Sessions.CloseAll(nil)
	if !strings.HasSuffix(proxy.Sent(), "QUIT\r\n") {
		t.Fatalf("the run's end did not send QUIT; client's last bytes: %q", proxy.Sent()[max(0, len(proxy.Sent())-60):])
	}
}

// smtpTestOAuth starts an OAuth server and a parameter-set store whose set "Local" holds
// a refresh token for the default user, wired into te.Tokens.
func smtpTestOAuth(t *testing.T, te *testEnv) *testmail.OAuthServer {
	t.Helper()
	oauth := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	user := testmail.DefaultUser().Name
	store, err := oauthparams.Open(t.TempDir(), oauthparams.StoreOptions{Backend: "file"})
	if err != nil {
		t.Fatal(err)
	}
	_, refresh := oauth.Mint(user, oauthTestScope)
	if err := store.Put(oauthparams.ParamSet{Name: "Local", Account: user, ClientID: testmail.OAuthTestClientID,
		AuthURL: oauth.AuthURL, TokenURL: oauth.TokenURL, Scope: oauthTestScope, GrantedScope: oauthTestScope,
		Secrets: oauthparams.Secrets{ClientSecret: testmail.OAuthTestClientSecret, RefreshToken: refresh}}); err != nil {
		t.Fatal(err)
	}
	te.Tokens = NewTokenProvider(store, oauthparams.NewTokenManager(store, nil))
	return oauth
}

func TestSMTPSendOAuth(t *testing.T) {
	var reject atomic.Bool
	var oauth atomic.Pointer[testmail.OAuthServer]
	srv := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "starttls", RequireAuth: true,
		Tokens: func(user, tok string) bool {
			u, _, ok := oauth.Load().ValidAccessToken(tok)
			return ok && u == user && !reject.Load()
		}})
	params := func(mech string) map[string]string {
		return smtpParams(srv.Port, "starttls", "auth", "oauth", "param_set", "Local", "mechanism", mech, "ca_file", srv.Certs.CertFile)
	}
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		t.Run(mech, func(t *testing.T) {
			te := newTestEnv(t)
			oauth.Store(smtpTestOAuth(t, te))
			before := len(srv.Messages())
			te.mustRun(NewSMTPSend(), params(mech))
			if m := srv.Messages(); len(m) != before+1 || m[before].AuthUser != testmail.DefaultUser().Name {
				t.Fatalf("messages: %+v", m)
			}

			// A refused token: one forced refresh, then a clear error; no hang, no token.
			reject.Store(true)
			defer reject.Store(false)
			te2 := newTestEnv(t)
			te2.Tokens = te.Tokens
			tok, err := te.Tokens.Token(context.Background(), "Local")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err = te2.run(ctx, NewSMTPSend(), params(mech))
			var rej *OAuthRejectedError
			if !errors.As(err, &rej) || !rej.Rejected || rej.Failure == nil || rej.Failure.Status == "" {
				t.Fatalf("want a rejection with the server's failure challenge, got %v", err)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("the refused login took %s", time.Since(start))
			}
			if strings.Contains(err.Error(), tok.AccessToken) || !strings.Contains(err.Error(), "Get Refresh Token") {
				t.Fatalf("error text: %v", err)
			}
			if len(srv.Messages()) != before+1 {
				t.Fatal("a message was sent after a refused login")
			}
		})
	}
}

func TestSMTPSendSchema(t *testing.T) {
	r := NewRegistry()
	if err := r.Register(NewSMTPSend()); err != nil {
		t.Fatal(err)
	}
	s := NewSMTPSend().Schema()
	if s.ID != "smtp.send" || s.Title != "SMTP Send Email" || s.Group != "SMTP" || s.Sessions != "smtp" || s.IsLoop {
		t.Fatalf("schema header: %+v", s)
	}
	for _, p := range s.Params {
		if p.Help == "" {
			t.Errorf("parameter %s has no help", p.Name)
		}
	}
	if p, _ := s.Param("auth"); !strings.Contains(strings.Join(p.Choices, ","), "none") {
		t.Fatal("auth none is not offered")
	}
	v, err := s.Resolve(map[string]string{"host": "smtp.example.test", "from": "a@example.test", "to": "b@example.test", "security": "starttls", "auth": "none"})
	if err != nil {
		t.Fatal(err)
	}
	if v.String("sent_folder") != "Sent" || v.String("sent_connection") != "imap" || v.String("port") != "" {
		t.Fatalf("defaults: %v", v)
	}
	if _, err := s.Resolve(map[string]string{"host": "h", "from": "a@x", "priority": "urgent"}); err == nil {
		t.Fatal("an unknown priority was accepted")
	}
	if len(s.Outputs) != 2 || s.Outputs[0].Name != "SentMessageID" || s.Outputs[1].Name != "SentRecipients" {
		t.Fatalf("outputs: %+v", s.Outputs)
	}
}

func TestSMTPSendDefaultPorts(t *testing.T) {
	for _, tc := range []struct{ security, port, want string }{
		{"tls", "", "465"}, {"starttls", "", "587"}, {"none", "", "25"}, {"", "", "465"}, {"starttls", "2525", "2525"},
	} {
		cfg, err := smtpParseConn(Values{"host": "smtp.example.test", "security": tc.security, "port": tc.port, "auth": "none"})
		if err != nil || strconv.Itoa(cfg.Port) != tc.want {
			t.Errorf("security %q port %q: got %d, %v; want %s", tc.security, tc.port, cfg.Port, err, tc.want)
		}
	}
}
