package actions_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/internal/testmail"
)

const (
	testUser     = "alice@example.test"
	goodToken    = "ya29.good-access-token-for-alice"
	badToken     = "ya29.expired-access-token-SECRET"
	imapScope    = "https://mail.test/imap"
	smtpScope    = "https://mail.test/smtp"
	testPassword = "alice-password"
)

// tokenCheck accepts goodToken for testUser only.
func tokenCheck(user, token string) bool { return user == testUser && token == goodToken }

// oauthMech builds one of the OAuth clients for a server at port.
type oauthMech struct {
	name string
	new  func(token string, port int) sasl.Client
}

func oauthMechs() []oauthMech {
	return []oauthMech{
		{"XOAuth2", func(token string, _ int) sasl.Client { return actions.NewXOAuth2Client(testUser, token) }},
		{"OAuthBearer", func(token string, port int) sasl.Client {
			return actions.NewOAuthBearerClient(testUser, token, testmail.Host, port)
		}},
	}
}

// checkFailure asserts what a refused token leaves in the client and in the login error.
func checkFailure(t *testing.T, c sasl.Client, loginErr error, server, scope string) {
	t.Helper()
	f, ok := actions.AuthFailure(c)
	if !ok {
		t.Fatalf("AuthFailure: no failure recorded after a refused token (err %v)", loginErr)
	}
	if f.Status != "401" || f.Schemes != "Bearer" || f.Scope != scope {
		t.Errorf("failure = %+v, want status 401, schemes Bearer, scope %s", f, scope)
	}
	err := actions.OAuthLoginError(server, loginErr, c)
	msg := err.Error()
	for _, want := range []string{server + " as " + testUser + " rejected: token not accepted", "status 401", "scope needed: " + scope, `sign in again with "Get Refresh Token"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("login error %q lacks %q", msg, want)
		}
	}
	for _, text := range []string{msg, loginErr.Error(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(text, badToken) || strings.Contains(text, goodToken) {
			t.Errorf("token leaked in %q", text)
		}
	}
	if !errors.Is(err, loginErr) {
		t.Errorf("OAuthLoginError does not wrap the login error")
	}
}

func TestSASLOAuthIMAP(t *testing.T) {
	for _, security := range []string{"tls", "starttls"} {
		srv := testmail.StartIMAPMemServer(t, testmail.IMAPMemOptions{
			Security: security,
			Users:    map[string]string{testUser: ""},
			Tokens:   tokenCheck,
		})
		dial := func(t *testing.T) *imapclient.Client {
			t.Helper()
			opts := &imapclient.Options{TLSConfig: srv.ClientTLS()}
			var c *imapclient.Client
			var err error
			if security == "tls" {
				c, err = imapclient.DialTLS(srv.Addr(), opts)
			} else {
				c, err = imapclient.DialStartTLS(srv.Addr(), opts)
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		for _, m := range oauthMechs() {
			t.Run(m.name+"/"+security+"/good", func(t *testing.T) {
				c := dial(t)
				if !c.Caps().Has(imap.Cap("AUTH=" + strings.ToUpper(m.name))) {
					t.Fatalf("server does not offer AUTH=%s: %v", strings.ToUpper(m.name), c.Caps())
				}
				if err := c.Authenticate(m.new(goodToken, srv.Port)); err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if _, err := c.Select("INBOX", nil).Wait(); err != nil {
					t.Fatalf("SELECT after login: %v", err)
				}
				if err := c.Logout().Wait(); err != nil {
					t.Fatalf("LOGOUT: %v", err)
				}
			})
			t.Run(m.name+"/"+security+"/bad", func(t *testing.T) {
				c := dial(t)
				client := m.new(badToken, srv.Port)
				err := c.Authenticate(client)
				if err == nil {
					t.Fatal("Authenticate with a bad token succeeded")
				}
				// NO, not BAD: the server got the answer the mechanism requires.
				var imapErr *imap.Error
				if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo || imapErr.Code != imap.ResponseCodeAuthenticationFailed {
					t.Fatalf("Authenticate error = %#v, want NO [AUTHENTICATIONFAILED]", err)
				}
				checkFailure(t, client, err, "imap login to "+srv.Addr(), imapScope)

				// The connection is still in step: a second login on it works.
				retry := m.new(goodToken, srv.Port)
				if err := c.Authenticate(retry); err != nil {
					t.Fatalf("second Authenticate on the same connection: %v", err)
				}
				if f, ok := actions.AuthFailure(retry); ok {
					t.Errorf("successful login recorded a failure: %+v", f)
				}
				if err := c.Logout().Wait(); err != nil {
					t.Fatalf("LOGOUT: %v", err)
				}
			})
		}
	}
}

func TestSASLOAuthSMTP(t *testing.T) {
	for _, security := range []string{"tls", "starttls"} {
		srv := testmail.StartSMTPServer(t, testmail.SMTPOptions{
			Security:    security,
			Tokens:      tokenCheck,
			RequireAuth: true,
		})
		dial := func(t *testing.T) *smtp.Client {
			t.Helper()
			var c *smtp.Client
			var err error
			if security == "tls" {
				c, err = smtp.DialTLS(srv.Addr(), srv.ClientTLS())
			} else {
				c, err = smtp.DialStartTLS(srv.Addr(), srv.ClientTLS())
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		for _, m := range oauthMechs() {
			t.Run(m.name+"/"+security, func(t *testing.T) {
				c := dial(t)
				mech := strings.ToUpper(m.name)
				if !c.SupportsAuth(mech) {
					t.Fatalf("server does not offer AUTH %s", mech)
				}
				client := m.new(badToken, srv.Port)
				err := c.Auth(client)
				var smtpErr *smtp.SMTPError
				if !errors.As(err, &smtpErr) || smtpErr.Code != 535 {
					// 501 would mean the server did not get the answer it requires.
					t.Fatalf("Auth with a bad token = %v, want 535", err)
				}
				checkFailure(t, client, err, "smtp login to "+srv.Addr(), smtpScope)

				// Still in step: log in on the same connection and send.
				if err := c.Auth(m.new(goodToken, srv.Port)); err != nil {
					t.Fatalf("second Auth on the same connection: %v", err)
				}
				before := len(srv.Messages())
				msg := "Subject: " + m.name + "\r\n\r\nhello\r\n"
				if err := c.SendMail(testUser, []string{"bob@example.test"}, strings.NewReader(msg)); err != nil {
					t.Fatalf("SendMail: %v", err)
				}
				if err := c.Quit(); err != nil {
					t.Fatalf("QUIT: %v", err)
				}
				msgs := srv.Messages()
				if len(msgs) != before+1 {
					t.Fatalf("server recorded %d messages, want %d", len(msgs), before+1)
				}
				if got := msgs[before]; got.AuthUser != testUser || string(got.Data) != msg {
					t.Errorf("recorded %+v, want AuthUser %s and data %q", got, testUser, msg)
				}
			})
		}
	}
}

// TestSASLOAuthClientWire checks the exact initial responses and challenge answers.
func TestSASLOAuthClientWire(t *testing.T) {
	x := actions.NewXOAuth2Client("u@example.test", "tok")
	mech, ir, err := x.Start()
	if err != nil || mech != "XOAUTH2" || string(ir) != "user=u@example.test\x01auth=Bearer tok\x01\x01" {
		t.Errorf("XOAUTH2 Start = %q, %q, %v", mech, ir, err)
	}
	resp, err := x.Next([]byte(`{"status":401,"schemes":"Bearer","scope":"s"}`))
	if err != nil || resp == nil || len(resp) != 0 {
		t.Errorf("XOAUTH2 answer to the error challenge = %q (nil %v), %v; want empty, non-nil", resp, resp == nil, err)
	}
	if f, _ := actions.AuthFailure(x); f == nil || f.Status != "401" || f.Scope != "s" {
		t.Errorf("XOAUTH2 failure with a numeric status = %+v", f)
	}
	if _, err := x.Next([]byte("again")); err == nil {
		t.Error("XOAUTH2 answered a second challenge")
	}
	if _, _, err := x.Start(); err != nil {
		t.Fatal(err)
	}
	if _, ok := actions.AuthFailure(x); ok {
		t.Error("Start did not forget the previous failure")
	}

	b := actions.NewOAuthBearerClient("a,b=c@example.test", "tok", "imap.example.test", 993)
	mech, ir, err = b.Start()
	want := "n,a=a=2Cb=3Dc@example.test,\x01host=imap.example.test\x01port=993\x01auth=Bearer tok\x01\x01"
	if err != nil || mech != "OAUTHBEARER" || string(ir) != want {
		t.Errorf("OAUTHBEARER Start = %q, %q, %v; want %q", mech, ir, err, want)
	}
	resp, err = b.Next([]byte("not json"))
	if err != nil || string(resp) != "\x01" {
		t.Errorf("OAUTHBEARER answer = %q, %v; want \\x01", resp, err)
	}
	if f, _ := actions.AuthFailure(b); f == nil || f.Raw != "not json" || f.Status != "" {
		t.Errorf("OAUTHBEARER failure of a non-JSON challenge = %+v", f)
	}

	if _, ok := actions.AuthFailure(sasl.NewPlainClient("", "u", "p")); ok {
		t.Error("AuthFailure of a PLAIN client reported a failure")
	}
}

func TestSASLOAuthLoginErrorOther(t *testing.T) {
	c := actions.NewXOAuth2Client(testUser, badToken)
	if err := actions.OAuthLoginError("imap login to x:1", nil, c); err != nil {
		t.Errorf("OAuthLoginError(nil) = %v", err)
	}
	// A transport error is no rejection: no advice to sign in again.
	err := actions.OAuthLoginError("imap login to x:1", errors.New("connection reset"), c)
	if got, want := err.Error(), "imap login to x:1 as "+testUser+" failed: connection reset"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// A refusal without a challenge (Outlook answers NO at once) still advises it, and a
	// server echoing the token does not leak it.
	refusal := &imap.Error{Type: imap.StatusResponseTypeNo, Text: "AUTHENTICATE failed for " + badToken}
	msg := actions.OAuthLoginError("imap login to x:1", refusal, c).Error()
	if !strings.Contains(msg, "rejected: token not accepted; sign in again") || strings.Contains(msg, badToken) {
		t.Errorf("got %q", msg)
	}
}
