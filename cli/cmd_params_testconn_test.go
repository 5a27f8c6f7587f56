package cli

import (
	"strings"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
)

// TestParamsTestConnection is Test Connection end to end: a set whose tokens come from the
// harness's OAuth server logs into the harness's Dovecot over IMAP, POP3 and submission.
func TestParamsTestConnection(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{OAuthIntrospectionURL: srv.IntrospectURL})
	user := testmail.DefaultUser().Name
	dir := t.TempDir()
	store, err := oauthparams.Open(dir, oauthparams.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const scope = "https://mail.test/imap https://mail.test/pop https://mail.test/smtp"
	_, refresh := srv.Mint(user, scope)
	if err := store.Put(oauthparams.ParamSet{Name: "Local", Account: user, ClientID: testmail.OAuthTestClientID,
		AuthURL: srv.AuthURL, TokenURL: srv.TokenURL, Scope: scope, GrantedScope: scope,
		Secrets: oauthparams.Secrets{ClientSecret: testmail.OAuthTestClientSecret, RefreshToken: refresh}}); err != nil {
		t.Fatal(err)
	}
	args := []string{"params", "test", "Local", "--imap", dc.Addr(dc.IMAPPort), "--pop3", dc.Addr(dc.POP3SPort),
		"--smtp", dc.Addr(dc.SubmissionPort), "--ca-file", dc.Certs.CertFile, "--security", "starttls"}
	// POP3S needs implicit TLS: test it on its own below; here every server speaks STARTTLS.
	args[6] = dc.Addr(dc.POP3Port)
	r := mw(t, dir, args...)
	if r.code != 0 || strings.Count(r.stdout, "login    ok") != 3 || !strings.Contains(r.stdout, "token    ok") {
		t.Fatalf("test connection: %+v\n%s", r, dc.Log())
	}
	r = mw(t, dir, "params", "test", "Local", "--pop3", dc.Addr(dc.POP3SPort), "--ca-file", dc.Certs.CertFile, "--security", "tls", "--mech", "OAUTHBEARER")
	if r.code != 0 || !strings.Contains(r.stdout, "login    ok") {
		t.Fatalf("pop3s oauthbearer: %+v", r)
	}
	if got := srv.Counts().TokenRefresh; got != 1 {
		t.Fatalf("token refreshes = %d, want 1 (the cached token serves the second run)", got)
	}

	// Without the CA the TLS step fails and says why.
	r = mw(t, dir, "params", "test", "Local", "--imap", dc.Addr(dc.IMAPSPort), "--security", "tls")
	if r.code != 1 || !strings.Contains(r.stdout, "tls      FAILED") || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("untrusted: %+v", r)
	}
	// A token the server no longer accepts fails at login, with what to do.
	srv.RevokeUser(user)
	r = mw(t, dir, "params", "test", "Local", "--imap", dc.Addr(dc.IMAPPort), "--ca-file", dc.Certs.CertFile)
	if r.code != 1 || !strings.Contains(r.stdout, "login    FAILED") || !strings.Contains(r.stderr, "Get Refresh Token") {
		t.Fatalf("revoked: %+v", r)
	}
	if r = mw(t, dir, "params", "test", "Local", "--security", "ssl", "--imap", "h:1"); r.code != ExitUsage {
		t.Fatalf("bad --security: %+v", r)
	}
}
