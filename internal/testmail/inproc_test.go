package testmail_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailwright/mailwright/internal/testmail"
)

const (
	inprocUser = "alice@example.test"
	inprocPass = "correct horse"
)

// inprocMessage has a line past RFC 5321's 998 octets, 8-bit bytes (UTF-8 and not), a line
// starting with a dot (dot-stuffed on the wire) and a line holding only a dot.
func inprocMessage() []byte {
	var b bytes.Buffer
	b.WriteString("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.Repeat("0123456789", 150) + "\r\n")
	b.WriteString("caf\xc3\xa9 na\xc3\xafve \xff\xfe\x80 raw bytes\r\n")
	b.WriteString(".leading dot\r\n.\r\n..\r\nlast line\r\n")
	return b.Bytes()
}

func smtpDial(t *testing.T, s *testmail.SMTPServer) *smtp.Client {
	t.Helper()
	var c *smtp.Client
	var err error
	switch s.Security {
	case "tls":
		c, err = smtp.DialTLS(s.Addr(), s.ClientTLS())
	case "starttls":
		c, err = smtp.DialStartTLS(s.Addr(), s.ClientTLS())
	default:
		c, err = smtp.Dial(s.Addr())
	}
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestInProcSMTPRecorder(t *testing.T) {
	for _, security := range []string{"none", "starttls", "tls"} {
		t.Run(security, func(t *testing.T) {
			s := testmail.StartSMTPServer(t, testmail.SMTPOptions{
				Security: security,
				Users:    map[string]string{inprocUser: inprocPass},
			})
			c := smtpDial(t, s)
			if err := c.Auth(sasl.NewPlainClient("", inprocUser, inprocPass)); err != nil {
				t.Fatalf("AUTH PLAIN: %v", err)
			}
			msg := inprocMessage()
			to := []string{"bob@example.test", "carol@example.test"}
			if err := c.SendMail(inprocUser, to, bytes.NewReader(msg)); err != nil {
				t.Fatalf("SendMail: %v", err)
			}
			if err := c.Quit(); err != nil {
				t.Fatalf("QUIT: %v", err)
			}
			got := s.Messages()
			if len(got) != 1 {
				t.Fatalf("recorded %d messages, want 1", len(got))
			}
			m := got[0]
			if m.From != inprocUser || strings.Join(m.To, ",") != strings.Join(to, ",") || m.AuthUser != inprocUser {
				t.Errorf("recorded From %q To %q AuthUser %q", m.From, m.To, m.AuthUser)
			}
			if !bytes.Equal(m.Data, msg) {
				t.Errorf("data differs from what was sent:\n got %q\nwant %q", m.Data, msg)
			}
			// Messages returns copies.
			got[0].Data[0] = 'X'
			if s.Messages()[0].Data[0] != msg[0] {
				t.Error("Messages shares its byte slices with the recorder")
			}
		})
	}
}

func TestInProcSMTPFailNext(t *testing.T) {
	s := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none"})
	c := smtpDial(t, s)
	send := func(body string) error {
		return c.SendMail("a@example.test", []string{"b@example.test"}, strings.NewReader(body))
	}
	for _, tc := range []struct {
		code      int
		temporary bool
	}{{451, true}, {554, false}} {
		s.FailNext(tc.code, "injected failure")
		err := send("Subject: fail\r\n\r\nx\r\n")
		var smtpErr *smtp.SMTPError
		if !errors.As(err, &smtpErr) || smtpErr.Code != tc.code || smtpErr.Temporary() != tc.temporary || smtpErr.Message != "injected failure" {
			t.Fatalf("SendMail after FailNext(%d) = %#v", tc.code, err)
		}
		if err := c.Reset(); err != nil {
			t.Fatalf("RSET: %v", err)
		}
		// It fails once.
		if err := send("Subject: ok\r\n\r\nx\r\n"); err != nil {
			t.Fatalf("SendMail after the failure: %v", err)
		}
	}

	s.FailNextRcpt(550, "no such user")
	if err := c.Mail("a@example.test", nil); err != nil {
		t.Fatal(err)
	}
	err := c.Rcpt("nobody@example.test", nil)
	var smtpErr *smtp.SMTPError
	if !errors.As(err, &smtpErr) || smtpErr.Code != 550 {
		t.Fatalf("RCPT after FailNextRcpt(550) = %v", err)
	}
	if err := c.Rcpt("b@example.test", nil); err != nil {
		t.Fatalf("second RCPT: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("recorded %d messages, want the 2 that were accepted", n)
	}
}

func TestInProcSMTPAuth(t *testing.T) {
	s := testmail.StartSMTPServer(t, testmail.SMTPOptions{
		Security:    "starttls",
		Users:       map[string]string{inprocUser: inprocPass},
		RequireAuth: true,
	})
	c := smtpDial(t, s)
	if c.SupportsAuth("XOAUTH2") {
		t.Error("XOAUTH2 offered without Tokens")
	}
	err := c.Mail(inprocUser, nil)
	var smtpErr *smtp.SMTPError
	if !errors.As(err, &smtpErr) || smtpErr.Code != 530 {
		t.Fatalf("MAIL before AUTH = %v, want 530", err)
	}
	for _, creds := range [][2]string{{inprocUser, "wrong"}, {"mallory@example.test", inprocPass}, {inprocUser, ""}} {
		err = c.Auth(sasl.NewPlainClient("", creds[0], creds[1]))
		if !errors.As(err, &smtpErr) || smtpErr.Code != 535 {
			t.Fatalf("AUTH PLAIN %s/%q = %v, want 535", creds[0], creds[1], err)
		}
	}
	if err := c.Auth(sasl.NewPlainClient("", inprocUser, inprocPass)); err != nil {
		t.Fatalf("AUTH PLAIN with the right password: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	// STARTTLS mode: no AUTH before STARTTLS.
	plain, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Hello("localhost"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := plain.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
}

func TestInProcSASLServer(t *testing.T) {
	check := func(user, tok string) bool { return user == inprocUser && tok == "good" }
	var loggedIn []string
	login := func(user string) error { loggedIn = append(loggedIn, user); return nil }

	for _, tc := range []struct {
		name   string
		server sasl.Server
		ir     string
		answer []byte
		reject bool // want a *TokenRejectedError after the answer
		proto  bool // want a *SASLProtocolError
	}{
		{"xoauth2 good", testmail.NewXOAuth2Server(check, "s", login), "user=" + inprocUser + "\x01auth=Bearer good\x01\x01", nil, false, false},
		{"xoauth2 bad, empty answer", testmail.NewXOAuth2Server(check, "s", login), "user=" + inprocUser + "\x01auth=Bearer bad\x01\x01", []byte{}, true, false},
		{"xoauth2 bad, 0x01 answer", testmail.NewXOAuth2Server(check, "s", login), "user=" + inprocUser + "\x01auth=Bearer bad\x01\x01", []byte{1}, false, true},
		{"xoauth2 malformed", testmail.NewXOAuth2Server(check, "s", login), "user=" + inprocUser + "\x01auth=good\x01\x01", nil, false, true},
		{"oauthbearer good", testmail.NewOAuthBearerServer(check, "s", login), "n,a=" + inprocUser + ",\x01host=h\x01port=1\x01auth=Bearer good\x01\x01", nil, false, false},
		{"oauthbearer bad, 0x01 answer", testmail.NewOAuthBearerServer(check, "s", login), "n,a=" + inprocUser + ",\x01auth=Bearer bad\x01\x01", []byte{1}, true, false},
		// go-sasl's OAUTHBEARER server panics on this one (index out of range).
		{"oauthbearer bad, empty answer", testmail.NewOAuthBearerServer(check, "s", login), "n,a=" + inprocUser + ",\x01auth=Bearer bad\x01\x01", []byte{}, false, true},
		{"oauthbearer no authzid", testmail.NewOAuthBearerServer(check, "s", login), "n,,\x01auth=Bearer good\x01\x01", nil, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loggedIn = nil
			challenge, done, err := tc.server.Next([]byte(tc.ir))
			if tc.answer == nil {
				var protoErr *testmail.SASLProtocolError
				switch {
				case tc.proto && !errors.As(err, &protoErr):
					t.Fatalf("Next = %v, want a protocol error", err)
				case !tc.proto && (err != nil || !done || len(loggedIn) != 1 || loggedIn[0] != inprocUser):
					t.Fatalf("Next = %q, %v, %v; logged in %q", challenge, done, err, loggedIn)
				}
				return
			}
			if err != nil || done || string(challenge) != `{"schemes":"Bearer","scope":"s","status":"401"}` {
				t.Fatalf("Next(bad token) = %q, %v, %v; want the error challenge", challenge, done, err)
			}
			_, done, err = tc.server.Next(tc.answer)
			var protoErr *testmail.SASLProtocolError
			var rejected *testmail.TokenRejectedError
			if !done || (tc.proto && !errors.As(err, &protoErr)) || (tc.reject && (!errors.As(err, &rejected) || rejected.User != inprocUser)) {
				t.Fatalf("Next(answer) = %v, %v", done, err)
			}
			if len(loggedIn) != 0 {
				t.Errorf("logged in %q with a bad token", loggedIn)
			}
		})
	}
}

func TestInProcIMAPMem(t *testing.T) {
	for _, security := range []string{"none", "starttls", "tls"} {
		t.Run(security, func(t *testing.T) {
			s := testmail.StartIMAPMemServer(t, testmail.IMAPMemOptions{
				Security: security,
				Users:    map[string]string{inprocUser: inprocPass, "tokenonly@example.test": ""},
			})
			msg := inprocMessage()
			uid := s.Append(t, inprocUser, "INBOX", msg)
			uid2 := s.Append(t, inprocUser, "Archive/2024", []byte("Subject: two\r\n\r\nsecond\r\n"))

			opts := &imapclient.Options{TLSConfig: s.ClientTLS()}
			var c *imapclient.Client
			var err error
			switch security {
			case "tls":
				c, err = imapclient.DialTLS(s.Addr(), opts)
			case "starttls":
				c, err = imapclient.DialStartTLS(s.Addr(), opts)
			default:
				c, err = imapclient.DialInsecure(s.Addr(), opts)
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()

			for _, creds := range [][2]string{{inprocUser, "wrong"}, {"tokenonly@example.test", ""}, {"nobody@example.test", inprocPass}} {
				err := c.Login(creds[0], creds[1]).Wait()
				var imapErr *imap.Error
				if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo {
					t.Fatalf("LOGIN %s/%q = %v, want NO", creds[0], creds[1], err)
				}
			}
			if err := c.Authenticate(sasl.NewPlainClient("", inprocUser, inprocPass)); err != nil {
				t.Fatalf("AUTHENTICATE PLAIN: %v", err)
			}
			fetch := func(mailbox string, uid imap.UID) []byte {
				t.Helper()
				if _, err := c.Select(mailbox, nil).Wait(); err != nil {
					t.Fatalf("SELECT %s: %v", mailbox, err)
				}
				section := &imap.FetchItemBodySection{Peek: true}
				msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
				if err != nil || len(msgs) != 1 {
					t.Fatalf("FETCH %s %d: %d messages, %v", mailbox, uid, len(msgs), err)
				}
				if msgs[0].RFC822Size != int64(len(msgs[0].FindBodySection(section))) {
					t.Errorf("RFC822.SIZE %d, body %d bytes", msgs[0].RFC822Size, len(msgs[0].FindBodySection(section)))
				}
				return msgs[0].FindBodySection(section)
			}
			if got := fetch("INBOX", uid); !bytes.Equal(got, msg) {
				t.Errorf("FETCH BODY[] differs from the appended message:\n got %q\nwant %q", got, msg)
			}
			if got := fetch("Archive/2024", uid2); string(got) != "Subject: two\r\n\r\nsecond\r\n" {
				t.Errorf("FETCH from the created mailbox = %q", got)
			}
			if err := c.Logout().Wait(); err != nil {
				t.Fatalf("LOGOUT: %v", err)
			}
		})
	}
}

func TestInProcIMAPMemNoAuthBeforeSTARTTLS(t *testing.T) {
	s := testmail.StartIMAPMemServer(t, testmail.IMAPMemOptions{
		Security: "starttls",
		Users:    map[string]string{inprocUser: inprocPass},
		Tokens:   func(string, string) bool { return false },
	})
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps := c.Caps()
	if !caps.Has(imap.CapStartTLS) || !caps.Has(imap.CapLoginDisabled) || caps.Has("AUTH=XOAUTH2") {
		t.Errorf("plaintext capabilities %v: want STARTTLS and LOGINDISABLED, no AUTH=", caps)
	}
	if err := c.Login(inprocUser, inprocPass).Wait(); err == nil {
		t.Error("LOGIN succeeded without TLS")
	}
}
