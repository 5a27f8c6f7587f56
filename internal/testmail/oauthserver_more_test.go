package testmail

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestOAuthDeviceFlow(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{DeviceInterval: 10 * time.Millisecond})
	conf := oauthConfig(s, OAuthTestClientID, OAuthTestClientSecret, "", oauth2.AuthStyleInHeader)
	da, err := conf.DeviceAuth(t.Context())
	if err != nil || !regexp.MustCompile(`^[B-Z]{4}-[B-Z]{4}$`).MatchString(da.UserCode) || da.Interval != 1 ||
		!strings.Contains(da.VerificationURIComplete, da.UserCode) {
		t.Fatalf("device auth = %+v, %v", da, err)
	}
	approved := make(chan error, 1)
	go func() { // the user approves on another device once the app polls
		for s.Counts().TokenDevice == 0 && t.Context().Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		approved <- s.ApproveDevice(strings.ToLower(strings.ReplaceAll(da.UserCode, "-", "")))
	}()
	tok, err := conf.DeviceAccessToken(t.Context(), da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	user, _, ok := s.ValidAccessToken(tok.AccessToken)
	if c := s.Counts(); !ok || user != "alice@example.test" || tok.RefreshToken == "" || c.Device != 1 || c.TokenDevice > 2 {
		t.Fatalf("device token for %q valid=%v, Counts %+v (want 1 device request, 2 polls)", user, ok, c)
	}
}

func TestOAuthDevicePolling(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{DeviceInterval: time.Minute})
	pub := url.Values{"client_id": {OAuthPublicClientID}, "scope": {testScope}}
	if st, m := postJSON(t, s.DeviceURL, url.Values{"client_id": {OAuthPublicClientID}, "scope": {"nope"}}, "", ""); st != 400 || m["error"] != "invalid_scope" {
		t.Fatalf("unknown scope: %d %v", st, m)
	}
	if st, m := postJSON(t, s.DeviceURL, pub, OAuthPublicClientID, "s3cret"); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("public client with secret: %d %v", st, m)
	}
	poll := func(da map[string]any) string {
		_, m := postJSON(t, s.TokenURL, url.Values{"grant_type": {deviceGrantType}, "client_id": {OAuthPublicClientID},
			"device_code": {fmt.Sprint(da["device_code"])}}, "", "")
		return fmt.Sprint(m["error"])
	}
	_, da := postJSON(t, s.DeviceURL, pub, "", "")
	for i, step := range []struct {
		advance time.Duration
		approve bool
		want    string // "<nil>": tokens
	}{
		{0, false, "slow_down"}, {time.Minute, false, "authorization_pending"}, {0, false, "slow_down"},
		{time.Minute, true, "<nil>"}, {time.Minute, false, "invalid_grant"},
	} {
		s.advance(step.advance)
		if step.approve {
			if err := s.ApproveDevice(da["user_code"].(string)); err != nil {
				t.Fatal(err)
			}
		}
		if got := poll(da); got != step.want {
			t.Fatalf("poll %d = %s, want %s", i, got, step.want)
		}
	}
	_, da2 := postJSON(t, s.DeviceURL, pub, "", "")
	s.advance(11 * time.Minute)
	if got, err := poll(da2), s.ApproveDevice(da2["user_code"].(string)); got != "expired_token" || err == nil {
		t.Fatalf("after expiry: poll = %s, ApproveDevice error %v", got, err)
	}
}

func TestOAuthIntrospectAndRevoke(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{})
	conf := oauthConfig(s, OAuthTestClientID, OAuthTestClientSecret, "", oauth2.AuthStyleInHeader)
	at, rt := s.Mint("bob@example.test", "https://mail.test/imap")
	other, _ := s.Mint("carol@example.test", "")
	if m := introspect(t, s, at); m["active"] != true || m["username"] != "bob@example.test" || m["sub"] != "bob@example.test" ||
		m["scope"] != "https://mail.test/imap" || m["client_id"] != OAuthTestClientID || m["token_type"] != "Bearer" ||
		m["exp"].(float64) < float64(time.Now().Unix()) {
		t.Fatalf("introspect = %v", m)
	}
	if introspect(t, s, "garbage")["active"] != false || introspect(t, s, rt)["active"] != false {
		t.Fatal("garbage or a refresh token introspected as active")
	}
	dovecot := url.Values{"token": {at}, "client_id": {""}, "client_secret": {""}} // as Dovecot's post mode sends it
	for _, user := range []string{"", OAuthTestClientID} {
		if st, m := postJSON(t, s.IntrospectURL, dovecot, user, OAuthTestClientSecret); st != 200 || m["active"] != true {
			t.Fatalf("Dovecot-style introspection (Basic user %q): HTTP %d %v", user, st, m)
		}
	}
	if st, m := postJSON(t, s.IntrospectURL, url.Values{"token": {at}}, OAuthTestClientID, "wrong"); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("introspection with a wrong secret: HTTP %d %v", st, m)
	}
	s.RevokeUser("bob@example.test")
	if introspect(t, s, at)["active"] != false || introspect(t, s, other)["active"] != true {
		t.Fatal("RevokeUser revoked the wrong tokens")
	}
	_, err := refresh(t.Context(), conf, rt)
	wantRetrieveError(t, err, "invalid_grant", 400)

	at2, rt2 := s.Mint("", "")
	if st, m := postJSON(t, s.RevokeURL, url.Values{"token": {rt2}}, "", ""); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("revoke without client auth: %d %v", st, m)
	}
	if st, _ := postJSON(t, s.RevokeURL, url.Values{"token": {rt2}}, OAuthTestClientID, OAuthTestClientSecret); st != 200 {
		t.Fatalf("revoke: HTTP %d", st)
	}
	_, err = refresh(t.Context(), conf, rt2)
	wantRetrieveError(t, err, "invalid_grant", 400)
	if introspect(t, s, at2)["active"] != false {
		t.Fatal("access token active after its refresh token was revoked")
	}
	if c := s.Counts(); c.Introspect != 9 || c.Revoke != 2 || c.TokenRefresh != 2 {
		t.Fatalf("Counts = %+v", c)
	}
}

func TestOAuthLoginForm(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{LoginForm: true})
	redirect, got := callback(t)
	conf := oauthConfig(s, OAuthPublicClientID, "", redirect, oauth2.AuthStyleInParams)
	for _, consent := range []string{"allow", "deny"} {
		verifier := oauth2.GenerateVerifier()
		resp, page := get(t, conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)))
		action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindSubmatch(page)
		id := regexp.MustCompile(`name="request" value="([^"]+)"`).FindSubmatch(page)
		if resp.StatusCode != 200 || action == nil || id == nil || !strings.Contains(string(page), `name="username"`) {
			t.Fatalf("login page: HTTP %d\n%s", resp.StatusCode, page)
		}
		resp, err := http.PostForm(s.URL+string(action[1]), url.Values{"request": {string(id[1])},
			"username": {"bob@example.test"}, "consent": {consent}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		q := nextQuery(t, got)
		if consent == "deny" {
			if q.Get("error") != "access_denied" || q.Get("state") != "st4te" {
				t.Fatalf("deny: callback query %v", q)
			}
			continue
		}
		tok, err := conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		if user, _, _ := s.ValidAccessToken(tok.AccessToken); user != "bob@example.test" {
			t.Fatalf("signed in as %q, want bob", user)
		}
	}
	resp, _ := get(t, conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption("v"), oauth2.SetAuthURLParam("prompt", "none")))
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none with a login form: HTTP %d Location %q", resp.StatusCode, loc)
	}
}
