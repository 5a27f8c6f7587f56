package actions

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// imapTestProxy is a TCP relay in front of a real server: it records what the client sends
// and can stall the server's answers, to see what goes on the wire and to make a command
// hang.
type imapTestProxy struct {
	ln      net.Listener
	target  string
	stalled atomic.Bool
	stallOn atomic.Value // string: stall as soon as the client has sent this
	// stripCaps removes the CAPABILITY code from the greeting (the first server line, which
	// the servers here send in one piece), like servers that announce no capabilities.
	stripCaps atomic.Bool
	// injectAfter, when set to a line start such as "mw1 OK", appends injected to the
	// server's chunk holding it: a man in the middle adding plaintext before TLS.
	injectAfter atomic.Value // string
	done        chan struct{}
	wg          sync.WaitGroup

	mu   sync.Mutex
	sent bytes.Buffer // everything clients sent
}

func startIMAPTestProxy(t *testing.T, target string) *imapTestProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &imapTestProxy{ln: ln, target: target, done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.relay(c)
			}()
		}
	}()
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *imapTestProxy) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() { // client → server, recorded
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				p.mu.Lock()
				p.sent.Write(buf[:n])
				if on, _ := p.stallOn.Load().(string); on != "" && strings.Contains(p.sent.String(), on) {
					p.stalled.Store(true)
				}
				p.mu.Unlock()
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				server.Close()
				return
			}
		}
	}()
	go func() { <-p.done; client.Close(); server.Close() }()
	buf := make([]byte, 32<<10)
	for first := true; ; first = false { // server → client, held back while stalled
		n, err := server.Read(buf)
		if p.stalled.Load() {
			<-p.done
			return
		}
		if first && p.stripCaps.Load() {
			line := string(buf[:n])
			if i := strings.Index(line, "[CAPABILITY "); i >= 0 {
				if j := strings.Index(line[i:], "] "); j >= 0 {
					line = line[:i] + line[i+j+2:]
				}
			}
			n = copy(buf, line)
		}
		if marker, _ := p.injectAfter.Load().(string); marker != "" && strings.Contains(string(buf[:n]), marker) {
			n += copy(buf[n:], "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n")
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *imapTestProxy) Addr() (string, int) {
	a := p.ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func (p *imapTestProxy) Sent() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.String()
}

// imapTestCommands returns the command names (second word of each line) in a client's
// plaintext transcript.
func imapTestCommands(transcript string) []string {
	var cmds []string
	for _, l := range strings.Split(transcript, "\r\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			cmds = append(cmds, strings.ToUpper(f[1]))
		}
	}
	return cmds
}

// TestIMAPDialSTARTTLSNotOffered: a server without STARTTLS (go-imap's server in plaintext
// mode) is refused with ErrNoSTARTTLS, and nothing but CAPABILITY crossed the wire: no
// STARTTLS, no login, no password.
func TestIMAPDialSTARTTLSNotOffered(t *testing.T) {
	srv := testmail.StartIMAPMemServer(t, testmail.IMAPMemOptions{Security: "none", Users: map[string]string{"bob": "bob-secret-pw"}})
	proxy := startIMAPTestProxy(t, srv.Addr())
	host, port := proxy.Addr()
	c := ConnConfig{Protocol: "imap", Host: host, Port: port, Security: SecuritySTARTTLS, Auth: AuthPassword, User: "bob", Password: "bob-secret-pw", Timeout: 5 * time.Second}

	_, err := DialIMAP(context.Background(), c)
	if !errors.Is(err, ErrNoSTARTTLS) {
		t.Fatalf("DialIMAP: want ErrNoSTARTTLS, got %v", err)
	}
	_, err = OpenIMAP(context.Background(), c, nil)
	if !errors.Is(err, ErrNoSTARTTLS) {
		t.Fatalf("OpenIMAP: want ErrNoSTARTTLS, got %v", err)
	}
	if !strings.HasPrefix(err.Error(), "imap open "+c.Addr()+": ") || !strings.Contains(err.Error(), "security tls") {
		t.Fatalf("error does not name the server or the fix: %v", err)
	}
	sent := proxy.Sent()
	for _, cmd := range imapTestCommands(sent) {
		if cmd != "CAPABILITY" {
			t.Fatalf("client sent %s to a server without STARTTLS; transcript %q", cmd, sent)
		}
	}
	if strings.Contains(sent, "bob-secret-pw") || strings.Contains(sent, base64.StdEncoding.EncodeToString([]byte("\x00bob\x00bob-secret-pw"))) {
		t.Fatal("the password crossed the wire")
	}

	// A greeting without capabilities: the client asks with CAPABILITY, and sends nothing else.
	proxy.stripCaps.Store(true)
	proxy.mu.Lock()
	proxy.sent.Reset()
	proxy.mu.Unlock()
	if _, err := OpenIMAP(context.Background(), c, nil); !errors.Is(err, ErrNoSTARTTLS) {
		t.Fatalf("greeting without capabilities: want ErrNoSTARTTLS, got %v", err)
	}
	if sent := proxy.Sent(); sent != "mw0 CAPABILITY\r\n" {
		t.Fatalf("greeting without capabilities: the client sent %q, want only CAPABILITY", sent)
	}

	// The action says the same.
	te := newTestEnv(t)
	err = te.run(context.Background(), NewIMAPOpen(), map[string]string{"host": host, "port": strconv.Itoa(port), "security": "starttls", "auth": "password", "user": "bob", "password": "bob-secret-pw"})
	if !errors.Is(err, ErrNoSTARTTLS) {
		t.Fatalf("imap.open: want ErrNoSTARTTLS, got %v", err)
	}
	if _, ok := te.Sessions.Get(DefaultIMAPConnection); ok {
		t.Fatal("a failed open left a session behind")
	}
}

// TestIMAPOpenNoCredentialsWithoutTLS: OpenIMAP itself refuses to log in over plaintext
// without AllowInsecureAuth (even with a ConnConfig that skipped ParseConn): the transcript
// holds no password. With AllowInsecureAuth the same relay sees the login, which shows
// the transcript would have caught it.
func TestIMAPOpenNoCredentialsWithoutTLS(t *testing.T) {
	srv := testmail.StartIMAPMemServer(t, testmail.IMAPMemOptions{Security: "none", Users: map[string]string{"bob": "bob-secret-pw"}})
	proxy := startIMAPTestProxy(t, srv.Addr())
	host, port := proxy.Addr()
	c := ConnConfig{Protocol: "imap", Host: host, Port: port, Security: SecurityNone, Auth: AuthPassword, User: "bob", Password: "bob-secret-pw", Timeout: 5 * time.Second}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00bob-secret-pw"))

	_, err := OpenIMAP(context.Background(), c, nil)
	if err == nil || !strings.Contains(err.Error(), "Allow login without TLS") {
		t.Fatalf("want a refusal naming \"Allow login without TLS\", got %v", err)
	}
	sent := proxy.Sent()
	if strings.Contains(sent, "bob-secret-pw") || strings.Contains(sent, plain) || strings.Contains(strings.ToUpper(sent), "AUTHENTICATE") || strings.Contains(strings.ToUpper(sent), "LOGIN") {
		t.Fatalf("credentials or a login command crossed the wire: %q", sent)
	}

	c.AllowInsecureAuth = true
	cl, err := OpenIMAP(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if sent := proxy.Sent(); !strings.Contains(sent, plain) && !strings.Contains(sent, "bob-secret-pw") {
		t.Fatalf("control: the allowed login is not in the transcript %q", sent)
	}
}

// TestIMAPDialTLSErrors: a certificate from another CA, and TLS or STARTTLS on the wrong
// port, fail fast with advice naming the parameter to change.
func TestIMAPDialTLSErrors(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	other := testmail.NewCerts(t, t.TempDir())
	u := testmail.DefaultUser()
	base := ConnConfig{Protocol: "imap", Host: dc.Host, Auth: AuthPassword, User: u.Name, Password: u.Password, CAFile: dc.Certs.CertFile, Timeout: time.Second}
	cases := []struct {
		name     string
		port     int
		sec      Security
		ca       string
		want     string
		maxDelay time.Duration
	}{
		{"wrong CA", dc.IMAPSPort, SecurityTLS, other.CertFile, `"CA certificate file"`, time.Second},
		{"wrong CA starttls", dc.IMAPPort, SecuritySTARTTLS, other.CertFile, `"CA certificate file"`, time.Second},
		{"system roots", dc.IMAPSPort, SecurityTLS, "", `set "CA certificate file"`, time.Second},
		{"tls on the starttls port", dc.IMAPPort, SecurityTLS, dc.Certs.CertFile, "use security starttls", time.Second},
		{"starttls on the tls port", dc.IMAPSPort, SecuritySTARTTLS, dc.Certs.CertFile, "use security tls", 3 * time.Second},
		{"none on the tls port", dc.IMAPSPort, SecurityNone, "", "use security tls", 3 * time.Second},
		{"nobody listening", testmail.FreePort(t), SecurityTLS, "", `check "Host" and "Port"`, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Port, c.Security, c.CAFile, c.AllowInsecureAuth = tc.port, tc.sec, tc.ca, tc.sec == SecurityNone
			began := time.Now()
			cl, err := OpenIMAP(context.Background(), c, nil)
			if err == nil {
				cl.Close()
				t.Fatal("connected")
			}
			if took := time.Since(began); took > tc.maxDelay {
				t.Errorf("took %s", took)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "imap open "+c.Addr()+": ") || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not contain %q", msg, tc.want)
			}
			if strings.Contains(msg, u.Password) {
				t.Fatal("password in the error")
			}
		})
	}
}

// TestIMAPDialCancel: cancelling ctx while the server keeps silent ends the opening at once.
func TestIMAPDialCancel(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	proxy := startIMAPTestProxy(t, dc.Addr(dc.IMAPSPort))
	proxy.stalled.Store(true) // not even the TLS handshake gets an answer
	host, port := proxy.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	began := time.Now()
	_, err := DialIMAP(ctx, ConnConfig{Protocol: "imap", Host: host, Port: port, Security: SecurityTLS, CAFile: dc.Certs.CertFile, Timeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("cancel took %s", took)
	}
}

// TestIMAPDialSTARTTLSAskCapabilities: when the plaintext greeting lists no capabilities
// (stripped by the relay), the client asks with CAPABILITY before STARTTLS, and the
// session works over TLS.
func TestIMAPDialSTARTTLSAskCapabilities(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	proxy := startIMAPTestProxy(t, dc.Addr(dc.IMAPPort))
	proxy.stripCaps.Store(true)
	host, port := proxy.Addr()
	u := testmail.DefaultUser()
	cl, err := OpenIMAP(context.Background(), ConnConfig{Protocol: "imap", Host: host, Port: port, Security: SecuritySTARTTLS,
		Auth: AuthPassword, User: u.Name, Password: u.Password, CAFile: dc.Certs.CertFile, Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if sent := proxy.Sent(); !strings.HasPrefix(sent, "mw0 CAPABILITY\r\nmw1 STARTTLS\r\n\x16") {
		t.Fatalf("transcript starts %q, want CAPABILITY, STARTTLS, then a TLS handshake", sent[:min(len(sent), 40)])
	}
	if strings.Contains(proxy.Sent(), u.Password) {
		t.Fatal("password in clear text")
	}
}

// TestIMAPDialSTARTTLSInjection: plaintext the server (or a man in the middle) sends after
// the STARTTLS answer, before the handshake, is refused instead of being read as if it had
// come over TLS.
func TestIMAPDialSTARTTLSInjection(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	proxy := startIMAPTestProxy(t, dc.Addr(dc.IMAPPort))
	proxy.injectAfter.Store("mw1 OK")
	host, port := proxy.Addr()
	_, err := DialIMAP(context.Background(), ConnConfig{Protocol: "imap", Host: host, Port: port, Security: SecuritySTARTTLS, CAFile: dc.Certs.CertFile, Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "plaintext injection") {
		t.Fatalf("want a refusal of the injected data, got %v", err)
	}
}
