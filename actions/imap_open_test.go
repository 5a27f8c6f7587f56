package actions

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/mailwright/mailwright/internal/testmail"
)

// imapTestOpen runs imap.open with params and returns the session it stored.
func imapTestOpen(t *testing.T, te *testEnv, params map[string]string) *IMAPSession {
	t.Helper()
	te.mustRun(NewIMAPOpen(), params)
	name := params["connection"]
	if name == "" {
		name = DefaultIMAPConnection
	}
	s, err := Lookup[*IMAPSession](te.Sessions, name, "imap")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// imapTestPasswordParams are imap.open's parameters for the default user of dc.
func imapTestPasswordParams(dc *testmail.Dovecot, port int, security string) map[string]string {
	u := testmail.DefaultUser()
	return map[string]string{"host": dc.Host, "port": strconv.Itoa(port), "security": security, "auth": "password",
		"user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile, "timeout": "10s"}
}

// TestIMAPOpenPassword: IMAP Open logs in with a password over implicit TLS, STARTTLS and
// (with allow_insecure_auth) plaintext, stores a working session and sets IMAPCapabilities.
func TestIMAPOpenPassword(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	seeded := dc.SeedN(t, testmail.DefaultUser().Name, "INBOX", 2, 500)
	for _, tc := range []struct {
		security string
		port     int
	}{{"tls", dc.IMAPSPort}, {"starttls", dc.IMAPPort}, {"none", dc.IMAPPort}} {
		t.Run(tc.security, func(t *testing.T) {
			te := newTestEnv(t)
			p := imapTestPasswordParams(dc, tc.port, tc.security)
			p["connection"] = "mail-" + tc.security
			if tc.security == "none" {
				// ParseConn refuses a password in clear text without the explicit opt-in.
				if err := te.run(context.Background(), NewIMAPOpen(), p); err == nil || !strings.Contains(err.Error(), "Allow login without TLS") {
					t.Fatalf("plaintext login without allow_insecure_auth: %v", err)
				}
				p["allow_insecure_auth"] = "true"
			}
			s := imapTestOpen(t, te, p)
			if s.Name != p["connection"] || s.Server != dc.Addr(tc.port) {
				t.Fatalf("session %q %q", s.Name, s.Server)
			}
			if caps := te.Var("IMAPCapabilities"); !strings.Contains(" "+caps+" ", " IMAP4rev1 ") || strings.Contains(caps, "AUTH=") {
				t.Fatalf("IMAPCapabilities = %q (want the post-login list)", caps)
			}
			st, err := s.Client.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
			if err != nil || *st.NumMessages != uint32(len(seeded)) {
				t.Fatalf("status over the session: %v", err)
			}
			want := "connected to " + dc.Addr(tc.port) + " as " + testmail.DefaultUser().Name + " (PLAIN)"
			if !strings.Contains(te.Logs.String(), want) {
				t.Fatalf("log lacks %q:\n%s", want, te.Logs.String())
			}
			if strings.Contains(te.Logs.String(), testmail.DefaultUser().Password) {
				t.Fatal("password in the log")
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		te := newTestEnv(t)
		p := imapTestPasswordParams(dc, dc.IMAPSPort, "tls")
		p["password"] = "not-the-password"
		err := te.run(context.Background(), NewIMAPOpen(), p)
		if err == nil || !strings.Contains(err.Error(), "check the user and password") || strings.Contains(err.Error(), "not-the-password") {
			t.Fatalf("wrong password: %v", err)
		}
	})
	t.Run("LOGIN mechanism", func(t *testing.T) {
		te := newTestEnv(t)
		p := imapTestPasswordParams(dc, dc.IMAPSPort, "tls")
		p["mechanism"] = "LOGIN"
		imapTestOpen(t, te, p)
	})
}

// TestIMAPOpenLoginCommand: a server that offers no AUTH=LOGIN gets the LOGIN command for
// the LOGIN mechanism (go-imap's server offers AUTH=PLAIN only).
func TestIMAPOpenLoginCommand(t *testing.T) {
	srv := testmail.StartIMAPMemServer(t, testmail.IMAPMemOptions{Security: "none", Users: map[string]string{"bob": "bob-secret-pw"}})
	proxy := startIMAPTestProxy(t, srv.Addr())
	host, port := proxy.Addr()
	cl, err := OpenIMAP(context.Background(), ConnConfig{Protocol: "imap", Host: host, Port: port, Security: SecurityNone,
		Auth: AuthPassword, User: "bob", Password: "bob-secret-pw", Mech: MechLogin, AllowInsecureAuth: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if cmds := imapTestCommands(proxy.Sent()); !strings.Contains(strings.Join(cmds, " "), "LOGIN") {
		t.Fatalf("commands sent: %v", cmds)
	}
}

// TestIMAPOpenOAuth: XOAUTH2 and OAUTHBEARER with the parameter set's token, over STARTTLS
// and implicit TLS, through the action.
func TestIMAPOpenOAuth(t *testing.T) {
	te := newTestEnv(t)
	rig := startOAuthRig(t, te)
	for _, tc := range []struct{ mech, security string }{{"", "starttls"}, {"XOAUTH2", "tls"}, {"OAUTHBEARER", "starttls"}, {"OAUTHBEARER", "tls"}} {
		port := rig.dc.IMAPPort
		if tc.security == "tls" {
			port = rig.dc.IMAPSPort
		}
		name := "oauth-" + tc.mech + "-" + tc.security
		s := imapTestOpen(t, te, map[string]string{"connection": name, "host": rig.dc.Host, "port": strconv.Itoa(port), "security": tc.security,
			"auth": "oauth", "param_set": "Local", "mechanism": tc.mech, "ca_file": rig.dc.Certs.CertFile})
		if _, err := s.Client.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("%s: select: %v", name, err)
		}
		mech := tc.mech
		if mech == "" {
			mech = "XOAUTH2"
		}
		if want := "as " + rig.user + " (" + mech + ")"; !strings.Contains(te.Logs.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, te.Logs.String())
		}
	}
	if n := rig.oauth.Counts().TokenRefresh; n != 1 {
		t.Fatalf("%d refreshes for four logins, want 1 (the token is cached)", n)
	}
}

// TestIMAPOpenForcedRefresh: an access token the server no longer accepts (expired at the
// provider, still fresh in the cache) costs exactly one refresh and one retried login.
func TestIMAPOpenForcedRefresh(t *testing.T) {
	te := newTestEnv(t)
	rig := startOAuthRig(t, te)
	c := ConnConfig{Protocol: "imap", Host: rig.dc.Host, Port: rig.dc.IMAPSPort, Security: SecurityTLS, Auth: AuthOAuth,
		ParamSet: "Local", CAFile: rig.dc.Certs.CertFile, Timeout: 10 * time.Second}
	open := func() {
		t.Helper()
		cl, err := OpenIMAP(context.Background(), c, te.Tokens)
		if err != nil {
			t.Fatalf("open: %v\n%s", err, rig.dc.Log())
		}
		if err := cl.Logout().Wait(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	open()
	before := rig.oauth.Counts()
	open() // the cached token: no refresh, one login
	after := rig.oauth.Counts()
	if after.TokenRefresh != before.TokenRefresh || after.Introspect-before.Introspect != 1 {
		t.Fatalf("cached token: %+v → %+v", before, after)
	}

	rig.oauth.ExpireAccessTokens()
	before = after
	open()
	after = rig.oauth.Counts()
	if d := after.TokenRefresh - before.TokenRefresh; d != 1 {
		t.Fatalf("%d refreshes after the server expired the token, want exactly 1", d)
	}
	if d := after.Introspect - before.Introspect; d != 2 {
		t.Fatalf("%d logins checked by the server, want 2 (refused, then accepted)", d)
	}
}

// TestIMAPOpenRevokedAndSASLFix: with the grant revoked, the login is refused, the forced
// refresh fails too, and the error explains both without any token text. It also proves the
// workaround for go-imap's empty SASL response ("=" instead of an empty line, issue #760):
// without it Dovecot ends the exchange with BAD, with it with NO [AUTHENTICATIONFAILED].
func TestIMAPOpenRevokedAndSASLFix(t *testing.T) {
	te := newTestEnv(t)
	rig := startOAuthRig(t, te)
	ctx := context.Background()
	for _, mech := range []string{MechXOAuth2, MechOAuthBearer} {
		c := ConnConfig{Protocol: "imap", Host: rig.dc.Host, Port: rig.dc.IMAPPort, Security: SecuritySTARTTLS, Auth: AuthOAuth,
			ParamSet: "Local", Mech: mech, CAFile: rig.dc.Certs.CertFile, Timeout: 10 * time.Second}
		cl, err := OpenIMAP(ctx, c, te.Tokens)
		if err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	tok, err := te.Tokens.Token(ctx, "Local") // the cached access token, fresh as far as we know
	if err != nil {
		t.Fatal(err)
	}
	set, err := rig.store.Get("Local")
	if err != nil {
		t.Fatal(err)
	}
	refresh := set.Secrets.RefreshToken
	rig.oauth.RevokeUser(rig.user)

	for _, tc := range []struct {
		mech string
		fix  bool
		want imap.StatusResponseType
	}{{MechXOAuth2, false, imap.StatusResponseTypeBad}, {MechXOAuth2, true, imap.StatusResponseTypeNo}, {MechOAuthBearer, true, imap.StatusResponseTypeNo}} {
		c := ConnConfig{Protocol: "imap", Host: rig.dc.Host, Port: rig.dc.IMAPPort, Security: SecuritySTARTTLS, Auth: AuthOAuth,
			ParamSet: "Local", Mech: tc.mech, CAFile: rig.dc.Certs.CertFile, Timeout: 10 * time.Second}
		_, err := imapOpen(ctx, c, te.Tokens, tc.fix)
		var rej *OAuthRejectedError
		if !errors.As(err, &rej) {
			t.Fatalf("%s fix=%v: want an OAuthRejectedError, got %v", tc.mech, tc.fix, err)
		}
		var ierr *imap.Error
		if !errors.As(rej.Err, &ierr) || ierr.Type != tc.want {
			t.Fatalf("%s fix=%v: server answered %v, want %s", tc.mech, tc.fix, rej.Err, tc.want)
		}
		if tc.fix && (ierr.Code != imap.ResponseCodeAuthenticationFailed || !rej.Rejected || rej.Failure == nil || rej.Failure.Status == "") {
			t.Fatalf("%s: want NO [AUTHENTICATIONFAILED] with the provider's status, got %v (failure %+v)", tc.mech, ierr, rej.Failure)
		}
		msg := err.Error()
		if strings.Contains(msg, tok.AccessToken) || strings.Contains(msg, refresh) {
			t.Fatal("token text in the error")
		}
		for _, want := range []string{"imap open " + c.Addr() + ": ", "Get Refresh Token", `refreshing the token of parameter set "Local" failed too`} {
			if !strings.Contains(msg, want) {
				t.Fatalf("error lacks %q: %s", want, msg)
			}
		}
		if tc.fix {
			t.Logf("%s: %s", tc.mech, msg)
		}
	}
}

// TestIMAPOpenLoginTimeout: a server that stops answering during the login is given up on
// after "Timeout" (which bounds connect, TLS, greeting and login together).
func TestIMAPOpenLoginTimeout(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	proxy := startIMAPTestProxy(t, dc.Addr(dc.IMAPPort))
	proxy.stallOn.Store("AUTHENTICATE")
	host, port := proxy.Addr()
	u := testmail.DefaultUser()
	c := ConnConfig{Protocol: "imap", Host: host, Port: port, Security: SecurityNone, Auth: AuthPassword, User: u.Name, Password: u.Password,
		AllowInsecureAuth: true, Timeout: 700 * time.Millisecond}
	began := time.Now()
	_, err := OpenIMAP(context.Background(), c, nil)
	took := time.Since(began)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "login: no answer within 700ms") {
		t.Fatalf("want a login timeout, got %v", err)
	}
	if took < 700*time.Millisecond || took > 3*time.Second {
		t.Fatalf("gave up after %s, want about 700ms", took)
	}
	if !strings.Contains(proxy.Sent(), "AUTHENTICATE PLAIN") {
		t.Fatalf("the stall did not happen at the login: %q", proxy.Sent())
	}
}
