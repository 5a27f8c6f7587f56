package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/mailwright/mailwright/internal/testmail"
)

// oauthDovecot is the foundation's end-to-end rig: a strict OAuth server, a Dovecot that
// validates its tokens by introspection, and an SMTP recorder Dovecot's submission relays to.
type oauthDovecot struct {
	oauth *testmail.OAuthServer
	dc    *testmail.Dovecot
	relay *testmail.SMTPServer
	user  string
}

func startOAuthDovecot(t *testing.T) *oauthDovecot {
	t.Helper()
	oauth := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	relay := testmail.StartSMTPServer(t, testmail.SMTPOptions{Security: "none"})
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{
		OAuthIntrospectionURL: oauth.IntrospectURL,
		SubmissionRelay:       relay.Addr(),
	})
	return &oauthDovecot{oauth: oauth, dc: dc, relay: relay, user: testmail.DefaultUser().Name}
}

// signIn gets a token the way the product will: authorization code with PKCE S256 and a
// random state, the redirect caught by a one-shot listener on 127.0.0.1. An HTTP client
// plays the browser.
func signIn(t *testing.T, oauth *testmail.OAuthServer, scope string) *oauth2.Token {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type result struct{ q url.Values }
	got := make(chan result, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- result{r.URL.Query()}:
		default:
		}
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "Successfully Authenticated.")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cfg := &oauth2.Config{
		ClientID:     testmail.OAuthTestClientID,
		ClientSecret: testmail.OAuthTestClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: oauth.AuthURL, TokenURL: oauth.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL:  "http://" + ln.Addr().String() + "/",
		Scopes:       strings.Fields(scope),
	}
	verifier := oauth2.GenerateVerifier()
	state := oauth2.GenerateVerifier()
	resp, err := http.Get(cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	resp.Body.Close()
	var r result
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no redirect reached the loopback listener")
	}
	if r.q.Get("state") != state || r.q.Get("code") == "" {
		t.Fatalf("redirect: state ok=%v, code present=%v, error=%q", r.q.Get("state") == state, r.q.Get("code") != "", r.q.Get("error"))
	}
	tok, err := cfg.Exchange(context.Background(), r.q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Fatal("sign-in returned no refresh or access token")
	}
	return tok
}

type mech struct {
	name string
	new  func(user, token, host string, port int) sasl.Client
}

func mechs() []mech {
	return []mech{
		{"XOAUTH2", func(u, tok, _ string, _ int) sasl.Client { return NewXOAuth2Client(u, tok) }},
		{"OAUTHBEARER", NewOAuthBearerClient},
	}
}

// TestDovecotOAuthLogin is the foundation's proof: a token from the harness's OAuth server
// logs into the harness's Dovecot over IMAP (STARTTLS and implicit TLS), POP3 (STLS and
// implicit TLS) and submission, with XOAUTH2 and OAUTHBEARER; once revoked it is refused
// with the provider's status in the error and no token in the text.
func TestDovecotOAuthLogin(t *testing.T) {
	rig := startOAuthDovecot(t)
	seeded := rig.dc.SeedN(t, rig.user, "INBOX", 3, 2000)
	tok := signIn(t, rig.oauth, "https://mail.test/imap https://mail.test/pop https://mail.test/smtp offline_access")
	host := rig.dc.Host

	for _, m := range mechs() {
		for _, port := range []struct {
			name string
			port int
			tls  bool
		}{{"imap+starttls", rig.dc.IMAPPort, false}, {"imaps", rig.dc.IMAPSPort, true}} {
			t.Run(m.name+"/"+port.name, func(t *testing.T) {
				c := dialIMAP(t, rig.dc, port.port, port.tls)
				defer c.Close()
				if err := c.Authenticate(m.new(rig.user, tok.AccessToken, host, port.port)); err != nil {
					t.Fatalf("authenticate: %v\n%s", err, rig.dc.Log())
				}
				sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
				if err != nil || sel.NumMessages != uint32(len(seeded)) {
					t.Fatalf("select: %v, %d messages, want %d", err, sel.NumMessages, len(seeded))
				}
				if err := c.Logout().Wait(); err != nil {
					t.Fatal(err)
				}
			})
		}
		for _, port := range []struct {
			name string
			port int
			sec  Security
		}{{"pop3+stls", rig.dc.POP3Port, SecuritySTARTTLS}, {"pop3s", rig.dc.POP3SPort, SecurityTLS}} {
			t.Run(m.name+"/"+port.name, func(t *testing.T) {
				pc, err := DialPOP3(context.Background(), POP3Dial{Host: host, Port: port.port, Security: port.sec, TLSConfig: rig.dc.TLSConfig(), Timeout: 10 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Quit()
				if err := POP3Authenticate(pc, m.new(rig.user, tok.AccessToken, host, port.port)); err != nil {
					t.Fatalf("authenticate: %v\n%s", err, rig.dc.Log())
				}
				n, _, err := pc.Stat()
				if err != nil || n != len(seeded) {
					t.Fatalf("stat: %v, %d messages, want %d", err, n, len(seeded))
				}
				raw, err := pc.RetrRaw(1)
				if err != nil || !bytes.Equal(raw.Bytes(), seeded[0]) {
					t.Fatalf("retr 1: %v; identical=%v", err, err == nil && bytes.Equal(raw.Bytes(), seeded[0]))
				}
			})
		}
		t.Run(m.name+"/submission", func(t *testing.T) {
			c, err := smtp.DialStartTLS(rig.dc.Addr(rig.dc.SubmissionPort), rig.dc.TLSConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Auth(m.new(rig.user, tok.AccessToken, host, rig.dc.SubmissionPort)); err != nil {
				t.Fatalf("auth: %v\n%s", err, rig.dc.Log())
			}
			body := []byte("From: " + rig.user + "\r\nTo: bob@example.test\r\nSubject: via " + m.name + "\r\n\r\nhello\r\n")
			if err := c.SendMail(rig.user, []string{"bob@example.test"}, bytes.NewReader(body)); err != nil {
				t.Fatalf("send: %v\n%s", err, rig.dc.Log())
			}
			found := false
			for _, msg := range rig.relay.Messages() {
				found = found || (bytes.Contains(msg.Data, []byte("Subject: via "+m.name)) && msg.To[0] == "bob@example.test")
			}
			if !found {
				t.Fatalf("the relay behind submission did not receive the message")
			}
		})
	}
	if rig.oauth.Counts().Introspect == 0 {
		t.Fatal("Dovecot never asked the OAuth server about the token")
	}

	// A revoked token is refused, the failure is explained and the token is not in the text.
	rig.oauth.RevokeUser(rig.user)
	for _, m := range mechs() {
		t.Run(m.name+"/revoked", func(t *testing.T) {
			pc, err := DialPOP3(context.Background(), POP3Dial{Host: host, Port: rig.dc.POP3Port, Security: SecuritySTARTTLS, TLSConfig: rig.dc.TLSConfig(), Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Quit()
			client := m.new(rig.user, tok.AccessToken, host, rig.dc.POP3Port)
			err = OAuthLoginError("pop3 login to "+rig.dc.Addr(rig.dc.POP3Port), POP3Authenticate(pc, client), client)
			checkRejected(t, err, tok)

			c := dialIMAP(t, rig.dc, rig.dc.IMAPPort, false)
			defer c.Close()
			client = m.new(rig.user, tok.AccessToken, host, rig.dc.IMAPPort)
			err = OAuthLoginError("imap login to "+rig.dc.Addr(rig.dc.IMAPPort), c.Authenticate(client), client)
			checkRejected(t, err, tok)
		})
	}
}

func checkRejected(t *testing.T, err error, tok *oauth2.Token) {
	t.Helper()
	var rej *OAuthRejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("want a rejection, got %v", err)
	}
	if !rej.Rejected || rej.Failure == nil {
		t.Fatalf("the server's refusal or its failure challenge was not captured: %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, tok.AccessToken) || strings.Contains(msg, tok.RefreshToken) {
		t.Fatal("error text contains a token")
	}
	if !strings.Contains(msg, "Get Refresh Token") {
		t.Fatalf("error does not say what to do: %s", msg)
	}
}

func dialIMAP(t *testing.T, dc *testmail.Dovecot, port int, implicitTLS bool) *imapclient.Client {
	t.Helper()
	opts := &imapclient.Options{TLSConfig: dc.TLSConfig()}
	var c *imapclient.Client
	var err error
	if implicitTLS {
		c, err = imapclient.DialTLS(dc.Addr(port), opts)
	} else {
		c, err = imapclient.DialStartTLS(dc.Addr(port), opts)
	}
	if err != nil {
		t.Fatalf("imap dial %d: %v", port, err)
	}
	return c
}
