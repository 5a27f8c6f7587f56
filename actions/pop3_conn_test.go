package actions_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/internal/testmail"
)

// fakePOP3 below speaks just enough POP3 (CAPA, STLS, AUTH XOAUTH2, STAT, NOOP, QUIT) to
// check the client's side of the wire for DialPOP3 and POP3Authenticate in cases Dovecot
// cannot show (no STLS, data injected before the TLS handshake, a silent server). The
// actions are tested against the harness Dovecot (pop3_*_test.go in package actions).

// fakePOP3Line is one line the fake received, and whether it came over TLS.
type fakePOP3Line struct {
	Text string
	TLS  bool
}

type fakePOP3 struct {
	t           *testing.T
	certs       *testmail.Certs
	implicitTLS bool   // TLS from the first byte
	stls        bool   // offer and accept STLS
	capaErr     bool   // answer CAPA with -ERR
	injectSTLS  bool   // send plaintext bytes right after the STLS +OK
	silent      bool   // accept, but never greet
	scope       string // scope of the XOAUTH2 error challenge

	port     int
	accepted chan struct{} // a connection was accepted

	mu        sync.Mutex
	lines     []fakePOP3Line
	ended     chan struct{} // closed when a connection's handler returns
	endedOnce sync.Once
}

func startFakePOP3(t *testing.T, f *fakePOP3) *fakePOP3 {
	t.Helper()
	f.t = t
	if f.certs == nil {
		f.certs = testmail.NewCerts(t, t.TempDir())
	}
	if f.scope == "" {
		f.scope = "https://mail.test/pop"
	}
	f.accepted = make(chan struct{}, 16)
	f.ended = make(chan struct{})
	ln, err := net.Listen("tcp", net.JoinHostPort(testmail.Host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	f.port = ln.Addr().(*net.TCPAddr).Port
	var wg sync.WaitGroup
	var conns []net.Conn
	var connsMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
			f.accepted <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	return f
}

// Lines returns what the fake received so far.
func (f *fakePOP3) Lines() []fakePOP3Line {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakePOP3Line(nil), f.lines...)
}

func (f *fakePOP3) record(line string, isTLS bool) {
	f.mu.Lock()
	f.lines = append(f.lines, fakePOP3Line{Text: line, TLS: isTLS})
	f.mu.Unlock()
}

func (f *fakePOP3) serve(c net.Conn) {
	defer f.endedOnce.Do(func() { close(f.ended) })
	isTLS := false
	if f.implicitTLS {
		tc := tls.Server(c, f.certs.ServerTLS())
		if err := tc.Handshake(); err != nil {
			return
		}
		c, isTLS = tc, true
	}
	if f.silent {
		io.Copy(io.Discard, c) // until the client gives up
		return
	}
	br := bufio.NewReader(c)
	send := func(s string) { c.Write([]byte(s + "\r\n")) }
	read := func() (string, bool) {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", false
		}
		line = strings.TrimSuffix(line, "\r\n")
		f.record(line, isTLS)
		return line, true
	}
	authed := false
	send("+OK fake POP3 ready <1.2@localhost>")
	for {
		line, ok := read()
		if !ok {
			return
		}
		cmd, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(cmd) {
		case "CAPA":
			if f.capaErr {
				send("-ERR unknown command")
				continue
			}
			capa := "+OK\r\nUSER\r\nUIDL\r\nSASL XOAUTH2\r\n"
			if f.stls && !isTLS {
				capa += "STLS\r\n"
			}
			send(capa + ".")
		case "STLS":
			if !f.stls || isTLS {
				send("-ERR STLS not available")
				continue
			}
			if f.injectSTLS {
				send("+OK Begin TLS\r\n+OK injected")
				return
			}
			send("+OK Begin TLS")
			tc := tls.Server(c, f.certs.ServerTLS())
			if err := tc.Handshake(); err != nil {
				return
			}
			c, isTLS, br = tc, true, bufio.NewReader(tc)
		case "AUTH":
			mech, ir, hasIR := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "XOAUTH2") {
				send("-ERR unsupported mechanism")
				continue
			}
			if !hasIR {
				send("+ ")
				if ir, ok = read(); !ok {
					return
				}
			}
			raw, err := base64.StdEncoding.DecodeString(ir)
			if err != nil {
				send("-ERR bad base64")
				continue
			}
			if string(raw) == "user="+testUser+"\x01auth=Bearer "+goodToken+"\x01\x01" {
				authed = true
				send("+OK logged in")
				continue
			}
			challenge := `{"status":"401","schemes":"Bearer","scope":"` + f.scope + `"}`
			send("+ " + base64.StdEncoding.EncodeToString([]byte(challenge)))
			answer, ok := read()
			if !ok {
				return
			}
			if answer != "" {
				send("-ERR protocol error: expected an empty line")
				continue
			}
			send("-ERR [AUTH] Authentication failed.")
		case "STAT":
			if !authed {
				send("-ERR not authenticated")
				continue
			}
			send("+OK 2 320")
		case "NOOP":
			send("+OK")
		case "QUIT":
			send("+OK bye")
			return
		default:
			send("-ERR unknown command")
		}
	}
}

// waitEnded waits until the fake's connection handler returned (the client closed).
func (f *fakePOP3) waitEnded(t *testing.T) {
	t.Helper()
	select {
	case <-f.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not close the connection")
	}
}

func (f *fakePOP3) texts() []string {
	var out []string
	for _, l := range f.Lines() {
		out = append(out, l.Text)
	}
	return out
}

func (f *fakePOP3) dial(security actions.Security) actions.POP3Dial {
	return actions.POP3Dial{
		Host:      testmail.Host,
		Port:      f.port,
		Security:  security,
		TLSConfig: f.certs.ClientTLS(testmail.Host),
		Timeout:   10 * time.Second,
	}
}

func dialOK(t *testing.T, d actions.POP3Dial) *actions.POP3Client {
	t.Helper()
	c, err := actions.DialPOP3(context.Background(), d)
	if err != nil {
		t.Fatalf("DialPOP3: %v", err)
	}
	return c
}

func TestPOP3STLS(t *testing.T) {
	f := startFakePOP3(t, &fakePOP3{stls: true})
	c := dialOK(t, f.dial(actions.SecuritySTARTTLS))
	if err := actions.POP3Authenticate(c, actions.NewXOAuth2Client(testUser, goodToken)); err != nil {
		t.Fatalf("POP3Authenticate: %v", err)
	}
	if n, size, err := c.Stat(); err != nil || n != 2 || size != 320 {
		t.Fatalf("STAT = %d %d %v", n, size, err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	lines := f.Lines()
	if len(lines) < 3 || lines[0] != (fakePOP3Line{"CAPA", false}) || lines[1] != (fakePOP3Line{"STLS", false}) {
		t.Fatalf("server saw %+v, want CAPA and STLS in plaintext first", lines)
	}
	for _, l := range lines[2:] {
		if !l.TLS {
			t.Errorf("%q was sent in plaintext after STLS", l.Text)
		}
	}
}

func TestPOP3STLSMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		fake *fakePOP3
		want []string
	}{
		{"no STLS in CAPA", &fakePOP3{}, []string{"CAPA"}},
		{"CAPA refused", &fakePOP3{capaErr: true}, []string{"CAPA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakePOP3(t, tc.fake)
			_, err := actions.DialPOP3(context.Background(), f.dial(actions.SecuritySTARTTLS))
			if !errors.Is(err, actions.ErrNoSTLS) {
				t.Fatalf("DialPOP3 = %v, want ErrNoSTLS", err)
			}
			addr := net.JoinHostPort(testmail.Host, strconv.Itoa(f.port))
			if msg := err.Error(); !strings.HasPrefix(msg, "pop3 open "+addr+": ") || !strings.Contains(msg, "server does not offer STLS") {
				t.Errorf("error text %q", msg)
			}
			f.waitEnded(t)
			// No plaintext fallback: nothing but CAPA went over the wire.
			if got := f.texts(); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("server saw %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPOP3STLSInjection(t *testing.T) {
	f := startFakePOP3(t, &fakePOP3{stls: true, injectSTLS: true})
	_, err := actions.DialPOP3(context.Background(), f.dial(actions.SecuritySTARTTLS))
	if err == nil || !strings.Contains(err.Error(), "before the TLS handshake") {
		t.Fatalf("DialPOP3 = %v, want a refusal of data sent before the handshake", err)
	}
}

func TestPOP3XOAuth2(t *testing.T) {
	long := strings.Repeat("x", 300) // pushes AUTH over 255 octets: IR after "+ "
	for _, tc := range []struct {
		name, user, token string
		inline            bool
	}{
		{"inline initial response", testUser, goodToken, true},
		{"initial response after continuation", testUser + long, goodToken, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakePOP3(t, &fakePOP3{implicitTLS: true})
			c := dialOK(t, f.dial(actions.SecurityTLS))
			err := actions.POP3Authenticate(c, actions.NewXOAuth2Client(tc.user, tc.token))
			if tc.inline && err != nil {
				t.Fatalf("POP3Authenticate: %v", err)
			}
			lines := f.texts()
			if len(lines) == 0 {
				t.Fatal("server saw nothing")
			}
			if got := lines[0] != "AUTH XOAUTH2"; got != tc.inline {
				t.Errorf("first line %q: initial response inline = %v, want %v", lines[0], got, tc.inline)
			}
			if !tc.inline {
				// The fake knows only testUser: the long user is refused after the
				// challenge, which exercises continuation, challenge and empty answer.
				var popErr *actions.POP3AuthError
				if !errors.As(err, &popErr) || popErr.Text != "[AUTH] Authentication failed." {
					t.Fatalf("POP3Authenticate = %v, want -ERR [AUTH] Authentication failed.", err)
				}
				if len(lines) != 3 || len(lines[1]) <= 255 || lines[2] != "" {
					t.Errorf("server saw %d lines %q..., want AUTH, the long response, an empty line", len(lines), lines[0])
				}
			}
			if err := c.Noop(); err != nil {
				t.Fatalf("NOOP after AUTH: %v", err)
			}
			if err := c.Quit(); err != nil {
				t.Fatalf("QUIT: %v", err)
			}
		})
	}
}

func TestPOP3XOAuth2Failure(t *testing.T) {
	f := startFakePOP3(t, &fakePOP3{implicitTLS: true})
	c := dialOK(t, f.dial(actions.SecurityTLS))
	client := actions.NewXOAuth2Client(testUser, badToken)
	err := actions.POP3Authenticate(c, client)
	var popErr *actions.POP3AuthError
	if !errors.As(err, &popErr) || popErr.Mechanism != "XOAUTH2" || popErr.Text != "[AUTH] Authentication failed." {
		t.Fatalf("POP3Authenticate = %v, want the server's -ERR text", err)
	}
	lines := f.texts()
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "AUTH XOAUTH2 ") || lines[1] != "" {
		t.Fatalf("server saw %q, want AUTH with the initial response, then an empty line", lines)
	}
	checkFailure(t, client, err, "pop3 login to "+net.JoinHostPort(testmail.Host, strconv.Itoa(f.port)), "https://mail.test/pop")

	// In step: the same connection still answers, and a good token now logs in.
	var statErr *actions.POP3Error
	if _, _, err := c.Stat(); !errors.As(err, &statErr) || statErr.Text != "not authenticated" || statErr.Command != "STAT" {
		t.Fatalf("STAT before login = %v, want -ERR not authenticated", err)
	}
	if err := actions.POP3Authenticate(c, actions.NewXOAuth2Client(testUser, goodToken)); err != nil {
		t.Fatalf("second POP3Authenticate: %v", err)
	}
	if n, _, err := c.Stat(); err != nil || n != 2 {
		t.Fatalf("STAT = %d, %v", n, err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}

func TestPOP3ImplicitTLS(t *testing.T) {
	f := startFakePOP3(t, &fakePOP3{implicitTLS: true})
	c := dialOK(t, f.dial(actions.SecurityTLS))
	if err := c.Noop(); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	if l := f.Lines(); len(l) != 2 || !l[0].TLS || l[0].Text != "NOOP" {
		t.Errorf("server saw %+v", l)
	}
}

func TestPOP3WrongCert(t *testing.T) {
	other := testmail.NewCerts(t, t.TempDir()) // not the certificate the fake presents
	for _, tc := range []struct {
		name     string
		fake     *fakePOP3
		security actions.Security
		cfg      *tls.Config
	}{
		{"tls, other CA", &fakePOP3{implicitTLS: true}, actions.SecurityTLS, other.ClientTLS(testmail.Host)},
		{"tls, system roots", &fakePOP3{implicitTLS: true}, actions.SecurityTLS, nil},
		{"starttls, other CA", &fakePOP3{stls: true}, actions.SecuritySTARTTLS, other.ClientTLS(testmail.Host)},
		{"tls, wrong name", &fakePOP3{implicitTLS: true}, actions.SecurityTLS, &tls.Config{RootCAs: nil, ServerName: "mail.example.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakePOP3(t, tc.fake)
			d := f.dial(tc.security)
			d.TLSConfig = tc.cfg
			if tc.name == "tls, wrong name" {
				d.TLSConfig.RootCAs = f.certs.Pool
			}
			_, err := actions.DialPOP3(context.Background(), d)
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Fatalf("DialPOP3 = %v, want a certificate verification error", err)
			}
			var unknown x509.UnknownAuthorityError
			var hostErr x509.HostnameError
			if !errors.As(err, &unknown) && !errors.As(err, &hostErr) {
				t.Errorf("verification error %v is neither unknown authority nor wrong host", err)
			}
		})
	}
}

func TestPOP3DialCancel(t *testing.T) {
	t.Run("context cancelled", func(t *testing.T) {
		f := startFakePOP3(t, &fakePOP3{silent: true})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-f.accepted // the server holds the connection without greeting
			cancel()
		}()
		d := f.dial(actions.SecurityNone)
		d.Timeout = time.Minute
		start := time.Now()
		_, err := actions.DialPOP3(ctx, d)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("DialPOP3 = %v, want context.Canceled", err)
		}
		if time.Since(start) > 30*time.Second {
			t.Errorf("cancellation took %v", time.Since(start))
		}
		f.waitEnded(t) // the client closed the socket
	})
	t.Run("timeout during TLS handshake", func(t *testing.T) {
		f := startFakePOP3(t, &fakePOP3{silent: true})
		d := f.dial(actions.SecurityTLS)
		d.Timeout = 200 * time.Millisecond
		_, err := actions.DialPOP3(context.Background(), d)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("DialPOP3 = %v, want context.DeadlineExceeded", err)
		}
		f.waitEnded(t)
	})
	t.Run("bad options", func(t *testing.T) {
		for _, d := range []actions.POP3Dial{
			{Host: "", Port: 995},
			{Host: testmail.Host, Port: 0},
			{Host: testmail.Host, Port: 995, Security: "ssl"},
		} {
			if _, err := actions.DialPOP3(context.Background(), d); err == nil {
				t.Errorf("DialPOP3(%+v) succeeded", d)
			}
		}
	})
}
