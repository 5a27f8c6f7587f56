package actions

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

// pop3Params returns POP3 Open parameters for the harness Dovecot's default user; extra
// overrides them ("" removes one).
func pop3Params(dc *testmail.Dovecot, port int, sec Security, extra map[string]string) map[string]string {
	u := testmail.DefaultUser()
	p := map[string]string{"host": dc.Host, "port": strconv.Itoa(port), "security": string(sec), "auth": AuthPassword,
		"user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile, "timeout": "10s"}
	for k, v := range extra {
		if v == "" {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	return p
}

// pop3MustOpen runs POP3 Open and returns the session it stored.
func pop3MustOpen(t testing.TB, te *testEnv, params map[string]string) *POP3Session {
	t.Helper()
	te.mustRun(NewPOP3Open(), params)
	name := params["connection"]
	if name == "" {
		name = DefaultPOP3Connection
	}
	s, err := Lookup[*POP3Session](te.Sessions, name, "pop3")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPOP3Schemas(t *testing.T) {
	r := NewRegistry()
	all := []Action{NewPOP3Open(), NewPOP3Close(), NewPOP3Count(), NewPOP3MailLoop(), NewPOP3Download(), NewPOP3Delete()}
	if err := r.Register(all...); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"pop3.open": "POP3 Open", "pop3.close": "POP3 Close", "pop3.count": "POP3 Messages Count",
		"pop3.loop": "POP3 Mail Loop", "pop3.download": "POP3 Download Email", "pop3.delete": "POP3 Delete Email"}
	for _, a := range all {
		s := a.Schema()
		if want[s.ID] != s.Title || s.Group != "POP3" || s.Help == "" || s.Sessions != "pop3" {
			t.Errorf("%s: title %q, group %q, sessions %q", s.ID, s.Title, s.Group, s.Sessions)
		}
		for _, p := range s.Params {
			if p.Help == "" {
				t.Errorf("%s: parameter %s has no help", s.ID, p.Name)
			}
		}
		for _, o := range s.Outputs {
			if o.Help == "" {
				t.Errorf("%s: output %s has no help", s.ID, o.Name)
			}
		}
	}
	if _, ok := NewPOP3MailLoop().(Looper); !ok || !NewPOP3MailLoop().Schema().IsLoop {
		t.Error("POP3 Mail Loop is not a loop")
	}
}

func TestPOP3OpenDovecot(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	msgs := dc.SeedN(t, testmail.DefaultUser().Name, "INBOX", 3, 1500)
	total := 0
	for _, m := range msgs {
		total += len(m)
	}
	for _, tc := range []struct {
		name   string
		port   int
		sec    Security
		params map[string]string
	}{
		{"starttls plain", dc.POP3Port, SecuritySTARTTLS, nil},
		{"tls plain", dc.POP3SPort, SecurityTLS, nil},
		{"tls login", dc.POP3SPort, SecurityTLS, map[string]string{"mechanism": MechLogin}},
		{"none with allow_insecure_auth", dc.POP3Port, SecurityNone, map[string]string{"allow_insecure_auth": "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t)
			te.mustRun(NewPOP3Open(), pop3Params(dc, tc.port, tc.sec, tc.params))
			te.mustRun(NewPOP3Count(), nil)
			if te.Var("MessageCount") != "3" || te.Var("MailboxSize") != strconv.Itoa(total) {
				t.Fatalf("count = %s messages, %s bytes; want 3, %d", te.Var("MessageCount"), te.Var("MailboxSize"), total)
			}
			te.mustRun(NewPOP3Close(), nil)
			if te.Var("DeletedCount") != "0" {
				t.Errorf("DeletedCount = %q", te.Var("DeletedCount"))
			}
			if _, ok := te.Sessions.Get(DefaultPOP3Connection); ok {
				t.Error("the session is still kept after POP3 Close")
			}
			if err := te.run(context.Background(), NewPOP3Count(), nil); err == nil || !strings.Contains(err.Error(), "add a POP3 Open step") {
				t.Errorf("count after close = %v", err)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		te := newTestEnv(t)
		err := te.run(context.Background(), NewPOP3Open(), pop3Params(dc, dc.POP3SPort, SecurityTLS, map[string]string{"password": "not-the-password"}))
		if err == nil || !strings.Contains(err.Error(), "check the user and password") || strings.Contains(err.Error(), "not-the-password") {
			t.Fatalf("open = %v, want a login failure that does not show the password", err)
		}
		if !strings.Contains(err.Error(), "Authentication failed") {
			t.Errorf("error %v does not give the server's refusal", err)
		}
		if _, ok := te.Sessions.Get(DefaultPOP3Connection); ok {
			t.Error("a failed open stored a session")
		}
	})
	t.Run("none without allow_insecure_auth", func(t *testing.T) {
		te := newTestEnv(t)
		err := te.run(context.Background(), NewPOP3Open(), pop3Params(dc, dc.POP3Port, SecurityNone, nil))
		if err == nil || !strings.Contains(err.Error(), "Allow login without TLS") {
			t.Fatalf("open = %v", err)
		}
	})
}

func TestPOP3OpenOAuth(t *testing.T) {
	te := newTestEnv(t)
	rig := startOAuthRig(t, te)
	rig.dc.SeedN(t, rig.user, "INBOX", 2, 1000)
	for _, tc := range []struct {
		mech string
		port int
		sec  Security
	}{{MechXOAuth2, rig.dc.POP3Port, SecuritySTARTTLS}, {MechOAuthBearer, rig.dc.POP3SPort, SecurityTLS}} {
		t.Run(tc.mech, func(t *testing.T) {
			name := "mail-" + tc.mech
			te.mustRun(NewPOP3Open(), pop3Params(rig.dc, tc.port, tc.sec, map[string]string{"auth": AuthOAuth, "param_set": "Local",
				"user": "", "password": "", "mechanism": tc.mech, "connection": name}))
			te.mustRun(NewPOP3Count(), map[string]string{"connection": name})
			if te.Var("MessageCount") != "2" {
				t.Fatalf("MessageCount = %q", te.Var("MessageCount"))
			}
			te.mustRun(NewPOP3Close(), map[string]string{"connection": name})
		})
	}
}

func TestPOP3OpenOAuthNotOffered(t *testing.T) {
	te := newTestEnv(t)
	rig := startOAuthRig(t, te)
	plain := testmail.StartDovecot(t, testmail.DovecotOptions{}) // passwords only
	err := te.run(context.Background(), NewPOP3Open(), pop3Params(plain, plain.POP3SPort, SecurityTLS, map[string]string{
		"auth": AuthOAuth, "param_set": "Local", "user": "", "password": ""}))
	if err == nil || !strings.Contains(err.Error(), "does not offer SASL XOAUTH2 (it offers PLAIN LOGIN)") {
		t.Fatalf("open = %v", err)
	}
	if n := rig.oauth.Counts().TokenRefresh; n > 1 {
		t.Errorf("%d token refreshes for a mechanism the server does not offer", n)
	}
}

// pop3Mini is an in-test POP3 server for what Dovecot cannot show: a server without STLS
// or without SASL, and a server that stops sending in the middle of a message.
type pop3Mini struct {
	capa  string            // CAPA lines, CRLF-separated, without the final "."
	users map[string]string // USER/PASS logins
	retr  func(c net.Conn)  // writes RETR's answer (after "+OK"); nil: -ERR

	port     int
	accepted chan struct{}
	mu       sync.Mutex
	lines    []string
}

func startPOP3Mini(t *testing.T, m *pop3Mini) *pop3Mini {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(testmail.Host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	m.port = ln.Addr().(*net.TCPAddr).Port
	m.accepted = make(chan struct{}, 16)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			m.accepted <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				go func() { <-done; c.Close() }()
				m.serve(c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); close(done); wg.Wait() })
	return m
}

// Lines returns the command lines the server received.
func (m *pop3Mini) Lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

func (m *pop3Mini) serve(c net.Conn) {
	br := bufio.NewReader(c)
	send := func(s string) { c.Write([]byte(s + "\r\n")) }
	send("+OK mini POP3 ready")
	user, authed := "", false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		m.mu.Lock()
		m.lines = append(m.lines, line)
		m.mu.Unlock()
		cmd, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(cmd) {
		case "CAPA":
			send("+OK\r\n" + m.capa + "\r\n.")
		case "USER":
			user = arg
			send("+OK")
		case "PASS":
			if pw, ok := m.users[user]; ok && pw == arg {
				authed = true
				send("+OK logged in")
			} else {
				send("-ERR [AUTH] invalid login")
			}
		case "STAT":
			if !authed {
				send("-ERR not logged in")
				continue
			}
			send("+OK 1 100")
		case "LIST", "UIDL":
			if arg != "1" || !authed {
				send("-ERR no such message")
				continue
			}
			send(map[string]string{"LIST": "+OK 1 100", "UIDL": "+OK 1 uidl-1"}[strings.ToUpper(cmd)])
		case "RETR":
			if m.retr == nil || !authed {
				send("-ERR no such message")
				continue
			}
			send("+OK")
			m.retr(c)
		case "QUIT":
			send("+OK bye")
			return
		default:
			send("-ERR unknown command")
		}
	}
}

func (m *pop3Mini) params(extra map[string]string) map[string]string {
	p := map[string]string{"host": testmail.Host, "port": strconv.Itoa(m.port), "security": string(SecurityNone), "auth": AuthPassword,
		"user": "bob", "password": "bob-secret", "allow_insecure_auth": "true", "timeout": "10s"}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func TestPOP3OpenSTLSRefused(t *testing.T) {
	m := startPOP3Mini(t, &pop3Mini{capa: "USER\r\nUIDL\r\nSASL PLAIN", users: map[string]string{"bob": "bob-secret"}})
	te := newTestEnv(t)
	err := te.run(context.Background(), NewPOP3Open(), m.params(map[string]string{"security": string(SecuritySTARTTLS), "allow_insecure_auth": "false"}))
	if !errors.Is(err, ErrNoSTLS) || !strings.Contains(err.Error(), "use security tls") {
		t.Fatalf("open = %v, want ErrNoSTLS with a hint", err)
	}
	if got := m.Lines(); strings.Join(got, "|") != "CAPA" {
		t.Fatalf("server received %q: only CAPA may be sent before TLS, never a login", got)
	}
	if _, ok := te.Sessions.Get(DefaultPOP3Connection); ok {
		t.Error("a refused open stored a session")
	}
}

func TestPOP3OpenUserPass(t *testing.T) {
	// A server whose CAPA lists no SASL PLAIN gets USER/PASS for a PLAIN password login.
	m := startPOP3Mini(t, &pop3Mini{capa: "USER\r\nUIDL", users: map[string]string{"bob": "bob-secret"}})
	te := newTestEnv(t)
	te.mustRun(NewPOP3Open(), m.params(nil))
	te.mustRun(NewPOP3Count(), nil)
	if te.Var("MessageCount") != "1" {
		t.Fatalf("MessageCount = %q", te.Var("MessageCount"))
	}
	te.mustRun(NewPOP3Close(), nil)
	if got, want := strings.Join(m.Lines(), "|"), "CAPA|USER bob|PASS bob-secret|STAT|STAT|QUIT"; got != want {
		t.Fatalf("server received %q, want %q", got, want)
	}
	if strings.Contains(te.Logs.String(), "bob-secret") {
		t.Error("the password is in the log")
	}

	err := te.run(context.Background(), NewPOP3Open(), m.params(map[string]string{"password": "wrong-secret"}))
	if err == nil || !strings.Contains(err.Error(), "invalid login") || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("open with a wrong password = %v", err)
	}
	// A line break in a value cannot smuggle in a second command.
	err = te.run(context.Background(), NewPOP3Open(), m.params(map[string]string{"password": "x\r\nDELE 1"}))
	if err == nil || !strings.Contains(err.Error(), "line break") {
		t.Fatalf("open with a line break in the password = %v", err)
	}
	for _, l := range m.Lines() {
		if strings.HasPrefix(l, "DELE") || strings.HasPrefix(l, "PASS x") {
			t.Fatalf("the server received %q", l)
		}
	}
}
