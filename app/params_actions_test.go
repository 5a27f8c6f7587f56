package app

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
)

// paramsFollowBrowser plays the browser: it follows the sign-in URL, whose redirect goes to
// the loopback listener of Authorize (the test OAuth server consents at once).
func paramsFollowBrowser(u string) error {
	go func() {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
		}
	}()
	return nil
}

// TestParamsScreenSignIn fills a new set for the test OAuth server, clicks Get Refresh
// Token (which saves first), and sees the status turn ready; then clears the token, and
// cancels a sign-in that never finishes.
func TestParamsScreenSignIn(t *testing.T) {
	test.NewTempApp(t)
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := paramsTestServices(t)
	h := paramsOpen(t, s)
	h.eventually("the empty list", func(p *ParamsScreen) bool { return p.loaded })
	h.ui(func(p *ParamsScreen) {
		p.openBrowser = paramsFollowBrowser
		test.Type(p.Name, "Test")
		test.Type(p.Account, "alice@example.test")
		test.Type(p.ClientID, testmail.OAuthTestClientID)
		test.Type(p.ClientSecret, testmail.OAuthTestClientSecret)
		p.AuthURL.SetText(srv.AuthURL)
		p.TokenURL.SetText(srv.TokenURL)
		p.Scope.SetText("https://mail.test/imap offline_access")
		if !strings.Contains(p.StatusText.Text, "sign-in needed") {
			t.Fatalf("status before sign-in: %q", p.StatusText.Text)
		}
		test.Tap(p.SignIn)
		if p.confirmDlg == nil {
			t.Fatal("an unsaved set was not offered to be saved first")
		}
		p.confirmDlg.Confirm()
	})
	h.eventually("the signed-in set", func(p *ParamsScreen) bool {
		return p.origName == "Test" && p.rowState("Test") == oauthparams.StateReady &&
			strings.Contains(p.StatusText.Text, "ready") && p.signInDlg == nil
	})
	h.ui(func(p *ParamsScreen) {
		if p.RefreshToken.Text != paramsTokenMask || p.ClearToken.Disabled() || p.dirty() {
			t.Fatalf("after sign-in: token %q, dirty %v", p.RefreshToken.Text, p.dirty())
		}
		if p.rows[p.rowIndex("Test")].Status.LastRefresh.IsZero() || strings.Contains(p.StatusText.Text, "refresh never") {
			t.Fatalf("no last refresh shown: %q", p.StatusText.Text)
		}
	})
	if c := srv.Counts(); c.Authorize != 1 || c.TokenCode != 1 {
		t.Fatalf("server counts %+v", c)
	}
	if set, _ := s.Params.Get("Test"); set.Secrets.RefreshToken == "" || set.GrantedScope == "" {
		t.Fatalf("no token stored: granted %q", set.GrantedScope)
	}

	// Clear removes the tokens on Save.
	h.ui(func(p *ParamsScreen) {
		test.Tap(p.ClearToken)
		if p.RefreshToken.Text != "" || p.Save.Disabled() {
			t.Fatal("Clear did not take effect in the form")
		}
		test.Tap(p.Save)
	})
	h.eventually("the cleared token", func(p *ParamsScreen) bool {
		return p.rowState("Test") == oauthparams.StateSignInNeeded && !p.dirty()
	})
	if set, _ := s.Params.Get("Test"); set.Secrets.RefreshToken != "" || set.Secrets.AccessToken != "" {
		t.Fatal("tokens still stored after Clear and Save")
	}

	// A sign-in nobody finishes can be cancelled.
	h.ui(func(p *ParamsScreen) {
		p.openBrowser = func(string) error { return nil }
		test.Tap(p.SignIn)
		if p.signInDlg == nil {
			t.Fatal("no waiting dialog")
		}
	})
	h.eventually("the sign-in URL", func(p *ParamsScreen) bool {
		return p.signInDlg != nil && strings.HasPrefix(p.signInDlg.Link.Text, srv.AuthURL)
	})
	h.ui(func(p *ParamsScreen) { p.signInDlg.dlg.Hide() }) // the Cancel button
	h.eventually("the cancellation", func(p *ParamsScreen) bool {
		return p.signInDlg == nil && strings.Contains(p.StatusText.Text, "cancelled")
	})
}

// TestParamsScreenSignInError shows a refused sign-in in words with what to do.
func TestParamsScreenSignInError(t *testing.T) {
	test.NewTempApp(t)
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := paramsTestServices(t)
	if err := s.Params.Put(oauthparams.ParamSet{Name: "Bad", ClientID: testmail.OAuthTestClientID, AuthURL: srv.AuthURL,
		TokenURL: srv.TokenURL, Scope: "https://mail.test/imap",
		Secrets: oauthparams.Secrets{ClientSecret: "wrong-secret"}}); err != nil {
		t.Fatal(err)
	}
	h := paramsOpen(t, s)
	h.eventually("the set", func(p *ParamsScreen) bool { return p.origName == "Bad" })
	h.ui(func(p *ParamsScreen) {
		p.openBrowser = paramsFollowBrowser
		test.Tap(p.SignIn)
	})
	h.eventually("the error", func(p *ParamsScreen) bool { return p.signInDlg == nil && p.lastMsg != "" })
	h.ui(func(p *ParamsScreen) {
		if !strings.Contains(p.lastMsg, "Client Secret") || strings.Contains(p.lastMsg, "wrong-secret") {
			t.Fatalf("error shown: %q", p.lastMsg)
		}
	})
}

// TestParamsScreenTestConnection runs Test Connection against Dovecot, whose XOAUTH2
// logins are checked by the test OAuth server, and sees a tick for every step; then an
// untrusted certificate fails at TLS, in words.
func TestParamsScreenTestConnection(t *testing.T) {
	test.NewTempApp(t)
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{OAuthIntrospectionURL: srv.IntrospectURL})
	user := testmail.DefaultUser().Name
	s := paramsTestServices(t)
	const scope = "https://mail.test/imap https://mail.test/pop https://mail.test/smtp"
	_, refresh := srv.Mint(user, scope)
	if err := s.Params.Put(oauthparams.ParamSet{Name: "Local", Account: user, ClientID: testmail.OAuthTestClientID,
		AuthURL: srv.AuthURL, TokenURL: srv.TokenURL, Scope: scope, GrantedScope: scope,
		Secrets: oauthparams.Secrets{ClientSecret: testmail.OAuthTestClientSecret, RefreshToken: refresh}}); err != nil {
		t.Fatal(err)
	}
	h := paramsOpen(t, s)
	h.eventually("the set", func(p *ParamsScreen) bool { return p.origName == "Local" && !p.TestConn.Disabled() })

	run := func(proto string, port int, security, caFile string) {
		h.ui(func(p *ParamsScreen) {
			d := p.testDlg
			d.Protocol.SetSelected(proto)
			d.Host.SetText(dc.Host)
			d.Port.SetText(strconv.Itoa(port))
			d.Security.SetSelected(security)
			d.CAFile.SetText(caFile)
			test.Tap(d.Run)
		})
		h.eventually("the test result", func(p *ParamsScreen) bool {
			return !p.testDlg.Run.Disabled() && !strings.HasPrefix(p.testDlg.Summary.Text, "Testing")
		})
	}
	h.ui(func(p *ParamsScreen) { test.Tap(p.TestConn) })
	for _, c := range []struct {
		proto    string
		port     int
		security string
	}{{"imap", dc.IMAPPort, "starttls"}, {"pop3", dc.POP3SPort, "tls"}, {"smtp", dc.SubmissionPort, "starttls"}} {
		run(c.proto, c.port, c.security, dc.Certs.CertFile)
		h.ui(func(p *ParamsScreen) {
			d := p.testDlg
			steps := paramsLabels(d.Steps)
			if !strings.Contains(d.Summary.Text, "Everything works") || strings.Count(steps, ": ok") != 4 {
				t.Fatalf("%s: %s\n%s\n%s", c.proto, d.Summary.Text, steps, dc.Log())
			}
		})
	}

	// Without the CA the TLS step fails, and the steps after it are not run.
	run("imap", dc.IMAPSPort, "tls", "")
	h.ui(func(p *ParamsScreen) {
		d := p.testDlg
		steps := paramsLabels(d.Steps)
		if !strings.Contains(steps, "Access token: ok") || !strings.Contains(steps, "Connect: ok") ||
			!strings.Contains(steps, "TLS: ") || !strings.Contains(steps, "certificate") || !strings.Contains(steps, "Login: not run") {
			t.Fatalf("untrusted certificate:\n%s", steps)
		}
		d.dlg.Hide()
		if p.testDlg != nil {
			t.Fatal("dialog not closed")
		}
	})
	if got := srv.Counts().TokenRefresh; got != 1 {
		t.Fatalf("token refreshes = %d, want 1 (the cached token serves the later tests)", got)
	}
}
