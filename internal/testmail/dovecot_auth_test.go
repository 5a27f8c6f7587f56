package testmail

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDovecotSubmission(t *testing.T) {
	t.Parallel()
	t.Run("dead relay: login works", func(t *testing.T) {
		t.Parallel()
		d := StartDovecot(t, DovecotOptions{})
		c := submissionLogin(t, d)
		// Dovecot connects to the relay right after login and gives up at once.
		if code, lines := c.smtpReply(); code != 421 {
			t.Fatalf("after login with no relay: %d %q, want 421", code, lines)
		}
	})
	t.Run("relay gets the message", func(t *testing.T) {
		t.Parallel()
		relay := startFakeRelay(t)
		d := StartDovecot(t, DovecotOptions{SubmissionRelay: relay.addr})
		c := submissionLogin(t, d)
		c.smtpOK(250, "MAIL FROM:<"+d.Users[0].Name+">")
		c.smtpOK(250, "RCPT TO:<bob@example.test>")
		c.smtpOK(354, "DATA")
		msg := MessageText(1, 600)
		if _, err := c.c.Write(append(msg, ".\r\n"...)); err != nil {
			t.Fatal(err)
		}
		if code, lines := c.smtpReply(); code != 250 {
			t.Fatalf("end of DATA: %d %v\n%s", code, lines, d.Log())
		}
		select {
		case got := <-relay.data:
			if !bytes.Contains(got, msg[:len(msg)-2]) {
				t.Fatalf("relay got\n%q\nwant it to contain\n%q", got, msg)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("relay got no message\n%s", d.Log())
		}
	})
}

// submissionLogin checks EHLO offers STARTTLS, upgrades and logs in with AUTH PLAIN.
func submissionLogin(t *testing.T, d *Dovecot) *textConn {
	u := d.Users[0]
	c := dialText(t, d.Addr(d.SubmissionPort), nil)
	if code, _ := c.smtpReply(); code != 220 {
		t.Fatalf("submission greeting %d", code)
	}
	if lines := c.smtpOK(250, "EHLO client.test"); !strings.Contains(strings.Join(lines, "\n"), "STARTTLS") {
		t.Fatalf("EHLO does not offer STARTTLS: %q", lines)
	}
	c.smtpOK(220, "STARTTLS")
	c.startTLS(d.TLSConfig())
	if lines := c.smtpOK(250, "EHLO client.test"); !strings.Contains(strings.Join(lines, "\n"), "AUTH PLAIN") {
		t.Fatalf("EHLO after STARTTLS does not offer AUTH PLAIN: %q", lines)
	}
	c.smtpOK(235, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+u.Name+"\x00"+u.Password)))
	return c
}

func TestDovecotOAuth(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var tokens []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.ParseForm() != nil {
			http.Error(w, "want a POSTed form", http.StatusBadRequest)
			return
		}
		tok := r.PostForm.Get("token")
		mu.Lock()
		tokens = append(tokens, tok)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if tok == "good-token" {
			_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "username": DefaultUser().Name, "scope": "mail"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"active": false})
	}))
	t.Cleanup(srv.Close)
	d := StartDovecot(t, DovecotOptions{OAuthIntrospectionURL: srv.URL + "/introspect?realm=test&x=1"})
	u := d.Users[0]

	xoauth2 := func(token string) string {
		return base64.StdEncoding.EncodeToString([]byte("user=" + u.Name + "\x01auth=Bearer " + token + "\x01\x01"))
	}
	oauthbearer := base64.StdEncoding.EncodeToString([]byte("n,a=" + u.Name + ",\x01auth=Bearer good-token\x01\x01"))
	cases := []struct {
		name, cmd, want string
	}{
		{"xoauth2 good token", "AUTHENTICATE XOAUTH2 " + xoauth2("good-token"), "OK"},
		{"xoauth2 inactive token", "AUTHENTICATE XOAUTH2 " + xoauth2("revoked"), "NO"},
		{"xoauth2 password is no token", "AUTHENTICATE XOAUTH2 " + xoauth2(u.Password), "NO"},
		{"oauthbearer good token", "AUTHENTICATE OAUTHBEARER " + oauthbearer, "OK"},
		{"password login still works", "LOGIN " + imapQuote(u.Name) + " " + imapQuote(u.Password), "OK"},
	}
	for _, tc := range cases {
		c := dialText(t, d.Addr(d.IMAPSPort), d.TLSConfig())
		if g := c.line(); !strings.Contains(g, "AUTH=XOAUTH2") || !strings.Contains(g, "AUTH=OAUTHBEARER") {
			t.Fatalf("greeting %q does not offer XOAUTH2 and OAUTHBEARER", g)
		}
		if _, st := c.imap(tc.cmd); !strings.HasPrefix(st, tc.want) {
			t.Errorf("%s: %q, want %s\n%s", tc.name, st, tc.want, d.Log())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(tokens, ",") != "good-token,revoked,"+u.Password+",good-token" {
		t.Errorf("introspection saw tokens %q", tokens)
	}
}

// smtpReply reads a (multi-line) SMTP reply.
func (c *textConn) smtpReply() (int, []string) {
	c.t.Helper()
	var lines []string
	for {
		l := c.line()
		if len(l) < 4 {
			c.t.Fatalf("bad SMTP reply line %q", l)
		}
		lines = append(lines, l[4:])
		if l[3] != '-' {
			code, _ := strconv.Atoi(l[:3])
			return code, lines
		}
	}
}

func (c *textConn) smtpOK(want int, cmd string) []string {
	c.t.Helper()
	c.send(cmd)
	code, lines := c.smtpReply()
	if code != want {
		c.t.Fatalf("%s: %d %q, want %d", cmd, code, lines, want)
	}
	return lines
}

// fakeRelay is a minimal plain SMTP server that accepts every message.
type fakeRelay struct {
	addr string
	data chan []byte
}

func startFakeRelay(t *testing.T) *fakeRelay {
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r := &fakeRelay{addr: l.Addr().String(), data: make(chan []byte, 10)}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go r.serve(conn)
		}
	}()
	return r
}

func (r *fakeRelay) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	reply := func(s string) { _, _ = conn.Write([]byte(s + "\r\n")) }
	reply("220 relay.test ESMTP")
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(l + " x")[0])
		switch verb {
		case "EHLO", "HELO":
			reply("250-relay.test\r\n250 8BITMIME")
		case "DATA":
			reply("354 go ahead")
			var msg bytes.Buffer
			for {
				dl, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if dl == ".\r\n" {
					break
				}
				msg.WriteString(strings.TrimPrefix(dl, "."))
			}
			r.data <- msg.Bytes()
			reply("250 queued")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("250 ok")
		}
	}
}
