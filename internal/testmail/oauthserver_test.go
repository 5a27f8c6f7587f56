package testmail

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const testScope = "https://mail.test/imap offline_access"

// callback starts a loopback redirect target, as the product's sign-in does, and returns
// its URL and the query of every request it gets.
func callback(t *testing.T) (string, <-chan url.Values) {
	got := make(chan url.Values, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
		fmt.Fprintln(w, "Signed in; you may close this window.")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/callback", got
}

func oauthConfig(s *OAuthServer, id, secret, redirect string, style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: redirect, Scopes: strings.Fields(testScope),
		Endpoint: oauth2.Endpoint{AuthURL: s.AuthURL, TokenURL: s.TokenURL, DeviceAuthURL: s.DeviceURL, AuthStyle: style}}
}

// get GETs u without following redirects and returns the response with its body read.
func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// nextQuery returns the next request the loopback callback got.
func nextQuery(t *testing.T, got <-chan url.Values) url.Values {
	t.Helper()
	select {
	case q := <-got:
		return q
	case <-time.After(5 * time.Second):
		t.Fatal("no redirect reached the loopback callback")
		return nil
	}
}

// signIn runs the browser's part of the code flow, following the redirect to the callback.
func signIn(t *testing.T, conf *oauth2.Config, got <-chan url.Values, opts ...oauth2.AuthCodeOption) string {
	t.Helper()
	resp, err := http.Get(conf.AuthCodeURL("st4te", opts...))
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	q := nextQuery(t, got)
	if q.Get("error") != "" || q.Get("state") != "st4te" || q.Get("code") == "" {
		t.Fatalf("callback query = %v, want a code and state st4te", q)
	}
	return q.Get("code")
}

func wantRetrieveError(t *testing.T, err error, code string, status int) *oauth2.RetrieveError {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != code || re.Response.StatusCode != status {
		t.Fatalf("err = %v, want oauth2.RetrieveError %q with HTTP %d", err, code, status)
	}
	return re
}

func refresh(ctx context.Context, conf *oauth2.Config, rt string) (*oauth2.Token, error) {
	return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
}

func valid(s *OAuthServer, access string) bool {
	_, _, ok := s.ValidAccessToken(access)
	return ok
}

// postJSON POSTs form to u (with HTTP Basic if user is set), checks the headers of a JSON
// answer and decodes it.
func postJSON(t *testing.T, u string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	m := map[string]any{}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("POST %s: Cache-Control = %q, want no-store", u, resp.Header.Get("Cache-Control"))
		}
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("POST %s: decode: %v", u, err)
		}
	}
	return resp.StatusCode, m
}

func introspect(t *testing.T, s *OAuthServer, token string) map[string]any {
	t.Helper()
	st, m := postJSON(t, s.IntrospectURL, url.Values{"token": {token}}, "", "")
	if st != http.StatusOK {
		t.Fatalf("introspect: HTTP %d %v", st, m)
	}
	return m
}

func TestOAuthCodeFlowAndRefreshRotation(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{})
	redirect, got := callback(t)
	conf := oauthConfig(s, OAuthTestClientID, OAuthTestClientSecret, redirect, oauth2.AuthStyleInHeader)
	verifier := oauth2.GenerateVerifier()
	code := signIn(t, conf, got, oauth2.S256ChallengeOption(verifier), oauth2.AccessTypeOffline)
	tok, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.TokenType != "Bearer" || len(tok.AccessToken) < 43 || tok.RefreshToken == "" || tok.Extra("scope") != testScope ||
		time.Until(tok.Expiry) < 59*time.Minute {
		t.Fatalf("token = %+v scope %v, want Bearer, long tokens, scope %q, 1h", tok, tok.Extra("scope"), testScope)
	}
	if user, scope, ok := s.ValidAccessToken(tok.AccessToken); !ok || user != "alice@example.test" || scope != testScope {
		t.Fatalf("ValidAccessToken = %q, %q, %v", user, scope, ok)
	}
	if m := introspect(t, s, tok.AccessToken); m["active"] != true || m["username"] != "alice@example.test" {
		t.Fatalf("introspect = %v, want active alice", m)
	}
	s.ExpireAccessTokens()
	if m := introspect(t, s, tok.AccessToken); valid(s, tok.AccessToken) || m["active"] != false || len(m) != 1 {
		t.Fatalf("after ExpireAccessTokens: introspect = %v, want {active:false}", m)
	}
	old := tok.RefreshToken
	tok.Expiry = time.Now().Add(-time.Minute) // the client saw the expiry too
	tok2, err := conf.TokenSource(t.Context(), tok).Token()
	if err != nil || tok2.RefreshToken == old || tok2.RefreshToken == "" || !valid(s, tok2.AccessToken) {
		t.Fatalf("refresh = %+v, %v; want a new refresh token and a valid access token", tok2, err)
	}
	_, err = refresh(t.Context(), conf, old)
	wantRetrieveError(t, err, "invalid_grant", http.StatusBadRequest)
	if valid(s, tok2.AccessToken) {
		t.Fatal("reuse of a rotated refresh token did not revoke the family")
	}
	_, err = refresh(t.Context(), conf, tok2.RefreshToken)
	wantRetrieveError(t, err, "invalid_grant", http.StatusBadRequest)
	if c := s.Counts(); c != (OAuthCounts{Authorize: 1, TokenCode: 1, TokenRefresh: 3, Introspect: 2}) {
		t.Fatalf("Counts = %+v", c)
	}
}

func TestOAuthExchangeRules(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{})
	redirect, got := callback(t)
	const hdr, params, confID, pubID = oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams, OAuthTestClientID, OAuthPublicClientID
	for _, c := range []struct {
		name, id, secret    string
		style               oauth2.AuthStyle
		badVerifier, badURI bool
		code                string
		status              int
	}{
		{name: "confidential in header", id: confID, secret: OAuthTestClientSecret, style: hdr},
		{name: "confidential in params", id: confID, secret: OAuthTestClientSecret, style: params},
		{name: "public in params", id: pubID, style: params},
		{name: "public in header", id: pubID, style: hdr},
		{name: "public sends secret", id: pubID, secret: "s3cret", style: params, code: "invalid_client", status: 401},
		{name: "wrong secret", id: confID, secret: "nope", style: hdr, code: "invalid_client", status: 401},
		{name: "missing secret", id: confID, style: params, code: "invalid_client", status: 401},
		{name: "wrong verifier", id: pubID, style: params, badVerifier: true, code: "invalid_grant", status: 400},
		{name: "redirect_uri differs", id: pubID, style: params, badURI: true, code: "invalid_grant", status: 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := oauthConfig(s, c.id, c.secret, redirect, c.style)
			verifier := oauth2.GenerateVerifier()
			code := signIn(t, conf, got, oauth2.S256ChallengeOption(verifier))
			if c.badVerifier {
				verifier = oauth2.GenerateVerifier()
			}
			if c.badURI {
				conf.RedirectURL = strings.Replace(redirect, "/callback", "/other", 1)
			}
			tok, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
			if c.code != "" {
				wantRetrieveError(t, err, c.code, c.status)
				return
			}
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			_, err = conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
			wantRetrieveError(t, err, "invalid_grant", 400) // code reuse
			if valid(s, tok.AccessToken) {
				t.Fatal("code reuse did not revoke the tokens issued from it")
			}
			_, err = refresh(t.Context(), conf, tok.RefreshToken)
			wantRetrieveError(t, err, "invalid_grant", 400)
		})
	}
}

func TestOAuthAuthorizeRefusals(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{})
	redirect, _ := callback(t)
	sum := sha256.Sum256([]byte("v"))
	for _, c := range []struct {
		name    string
		set     map[string]string // "" deletes
		wantErr string            // redirected error; "" = a code; "page" = 400 page, no redirect
	}{
		{"ok", nil, ""},
		{"localhost", map[string]string{"redirect_uri": "http://localhost:9/cb"}, ""},
		{"ipv6 loopback", map[string]string{"redirect_uri": "http://[::1]:9/cb", "login_hint": "bob@example.test", "prompt": "consent"}, ""},
		{"missing state", map[string]string{"state": ""}, "invalid_request"},
		{"missing PKCE", map[string]string{"code_challenge": "", "code_challenge_method": ""}, "invalid_request"},
		{"plain PKCE", map[string]string{"code_challenge": strings.Repeat("v", 43), "code_challenge_method": "plain"}, "invalid_request"},
		{"unknown scope", map[string]string{"scope": "https://mail.test/imap https://evil.test/all"}, "invalid_scope"},
		{"implicit", map[string]string{"response_type": "token"}, "unsupported_response_type"},
		{"non-loopback redirect", map[string]string{"redirect_uri": "https://evil.example/cb"}, "page"},
		{"http non-loopback", map[string]string{"redirect_uri": "http://example.com:8080/cb"}, "page"},
		{"loopback without port", map[string]string{"redirect_uri": "http://127.0.0.1/cb"}, "page"},
		{"unknown client", map[string]string{"client_id": "intruder"}, "page"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := url.Values{"response_type": {"code"}, "client_id": {OAuthTestClientID}, "redirect_uri": {redirect},
				"state": {"xyz"}, "scope": {testScope}, "code_challenge_method": {"S256"},
				"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}}
			for k, v := range c.set {
				if q.Del(k); v != "" {
					q.Set(k, v)
				}
			}
			resp, _ := get(t, s.AuthURL+"?"+q.Encode())
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if c.wantErr == "page" {
				if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
					t.Fatalf("status %d Location %q, want a 400 page", resp.StatusCode, loc)
				}
				return
			}
			want, _ := url.Parse(q.Get("redirect_uri"))
			if lq := loc.Query(); resp.StatusCode != http.StatusFound || loc.Host != want.Host || lq.Get("error") != c.wantErr ||
				(c.wantErr == "") == (lq.Get("code") == "") || lq.Get("state") != q.Get("state") {
				t.Fatalf("status %d Location %q, want a redirect to %s with error %q", resp.StatusCode, loc, want.Host, c.wantErr)
			}
		})
	}
}

func TestOAuthTokenEndpointStrictness(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{})
	_, rt := s.Mint("", testScope)
	refreshForm := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	for _, c := range []struct {
		name   string
		form   url.Values
		user   string // HTTP Basic, with the confidential client's secret
		status int
		code   string // "" = success
	}{
		{"widen scope", refreshForm("scope", "https://mail.test/smtp"), OAuthTestClientID, 400, "invalid_scope"},
		{"Basic and client_secret", refreshForm("client_secret", OAuthTestClientSecret), OAuthTestClientID, 400, "invalid_request"},
		{"repeated parameter", refreshForm("refresh_token", rt), OAuthTestClientID, 400, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"password"}}, OAuthTestClientID, 400, "unsupported_grant_type"},
		{"unknown client", refreshForm("client_id", "intruder"), "", 401, "invalid_client"},
		{"another client's token", refreshForm("client_id", OAuthPublicClientID), "", 400, "invalid_grant"},
		{"narrow scope", refreshForm("scope", "https://mail.test/imap"), OAuthTestClientID, 200, ""},
	} {
		st, m := postJSON(t, s.TokenURL, c.form, c.user, OAuthTestClientSecret)
		if errCode, _ := m["error"].(string); st != c.status || errCode != c.code || st == 200 && m["scope"] != "https://mail.test/imap" {
			t.Errorf("%s: HTTP %d %v, want %d %q", c.name, st, m, c.status, c.code)
		}
	}
	resp, err := http.Post(s.TokenURL, "application/json", strings.NewReader(`{"grant_type":"refresh_token"}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Body.Close(); resp.StatusCode != 400 {
		t.Errorf("JSON body: HTTP %d, want 400", resp.StatusCode)
	}
	if resp, _ := get(t, s.TokenURL); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /token: HTTP %d, want 405", resp.StatusCode)
	}
}

func TestOAuthFailures(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{})
	conf := oauthConfig(s, OAuthTestClientID, OAuthTestClientSecret, "", oauth2.AuthStyleInHeader)
	for _, c := range []struct {
		name   string
		kind   FailureKind
		code   string
		status int    // 0: not an HTTP error
		text   string // in the error message
	}{
		{"InvalidGrant", FailInvalidGrant, "invalid_grant", 400, ""},
		{"InvalidClient", FailInvalidClient, "invalid_client", 401, ""},
		{"InvalidScope", FailInvalidScope, "invalid_scope", 400, ""},
		{"AADSTS", FailAADSTS, "invalid_grant", 400, "AADSTS70008"},
		{"ServerError", FailServerError, "", 503, "503 Service Temporarily Unavailable"},
		{"NotJSON", FailNotJSON, "", 0, "cannot parse json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, rt := s.Mint("", "")
			s.SetFailure(Failure{Kind: c.kind, Count: 1})
			_, err := refresh(t.Context(), conf, rt)
			if err == nil || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("err = %v, want it to contain %q", err, c.text)
			}
			if c.status != 0 {
				re := wantRetrieveError(t, err, c.code, c.status)
				if c.kind == FailAADSTS && !strings.Contains(string(re.Body), `"error_codes":[70008]`) {
					t.Fatalf("AADSTS body = %s", re.Body)
				}
			}
			if _, err := refresh(t.Context(), conf, rt); err != nil { // Count 1 is used up; rt was not
				t.Fatalf("refresh after the failure: %v", err)
			}
		})
	}
	_, rt := s.Mint("", "")
	s.SetFailure(Failure{Kind: FailSlow, Delay: 300 * time.Millisecond}) // Count 0: until cleared
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if _, err := refresh(ctx, conf, rt); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow refresh with a short deadline: %v", err)
	}
	start := time.Now()
	tok, err := refresh(t.Context(), conf, rt)
	if err != nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("slow refresh = %v after %s", err, time.Since(start))
	}
	s.SetFailure(Failure{})
	if _, err := refresh(t.Context(), conf, tok.RefreshToken); err != nil {
		t.Fatalf("refresh after clearing: %v", err)
	}
	if n := s.Counts().TokenRefresh; n != 15 {
		t.Fatalf("TokenRefresh = %d, want 15", n)
	}
}

func TestOAuthConcurrent(t *testing.T) {
	s := StartOAuthServer(t, OAuthOptions{})
	conf := oauthConfig(s, OAuthTestClientID, OAuthTestClientSecret, "", oauth2.AuthStyleInHeader)
	_, shared := s.Mint("", "")
	var wg sync.WaitGroup
	var wins atomic.Int32
	for i := range 16 {
		wg.Go(func() {
			if _, err := refresh(t.Context(), conf, shared); err == nil { // one refresh token, raced
				wins.Add(1)
			}
			_, rt := s.Mint(fmt.Sprintf("u%d@example.test", i), "")
			for range 5 {
				tok, err := refresh(t.Context(), conf, rt)
				if err != nil || !valid(s, tok.AccessToken) {
					t.Errorf("refresh: %v", err)
					return
				}
				rt = tok.RefreshToken
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || s.Counts().TokenRefresh != 16*6 {
		t.Fatalf("%d of 16 racing refreshes won (want 1); Counts = %+v", wins.Load(), s.Counts())
	}
}
