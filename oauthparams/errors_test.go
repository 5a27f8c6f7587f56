package oauthparams

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const (
	peRefreshToken = "1//0gRefreshTokenValue9876543210abcdefXYZ"
	// Token-like strings a provider might (wrongly) echo; none may reach a message.
	peBodyAccessToken = "ya29.a0AfB_byC1234567890abcdefghijKLMNOP"
	peBodyJWT         = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIzNDU2Nzg5MA"
	peBodySecret      = "3ded85b4ec574c2187a55dc49d361280"
)

// peServer answers every request with status, content type and body.
func peServer(t *testing.T, status int, ctype, body string) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ctype != "" {
			w.Header().Set("Content-Type", ctype)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// peRefresh runs a real golang.org/x/oauth2 refresh against tokenURL, as Mailwright does.
func peRefresh(tokenURL string, client *http.Client) error {
	p := ParamSet{Name: "t", ClientID: "client-id", TokenURL: tokenURL, Scope: "mail"}
	ctx := context.Background()
	if client != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
	}
	_, err := p.OAuth2Config("").TokenSource(ctx, &oauth2.Token{RefreshToken: peRefreshToken}).Token()
	return err
}

// peMSBody is a Microsoft Entra ID error answer with error_codes and the usual trailer.
func peMSBody(oauthErr string, n int, desc string) string {
	code := strconv.Itoa(n)
	return `{"error":"` + oauthErr + `","error_description":"` + desc +
		` Trace ID: 0b1e2c3d-4f5a-6b7c-8d9e-0f1a2b3c4d5e Correlation ID: 11111111-2222-3333-4444-555555555555 Timestamp: 2025-01-01 10:00:00Z",` +
		`"error_codes":[` + code + `],"timestamp":"2025-01-01 10:00:00Z","trace_id":"0b1e2c3d-4f5a-6b7c-8d9e-0f1a2b3c4d5e",` +
		`"correlation_id":"11111111-2222-3333-4444-555555555555","error_uri":"https://login.microsoftonline.com/error?code=` + code + `"}`
}

type explainWant struct {
	kind         ErrorKind
	code, sub    string
	temporary    bool
	signIn       bool
	advice       []string // substrings of Advice
	descContains string
}

func peCheck(t *testing.T, pe *ProviderError, wantURL string, w explainWant) {
	t.Helper()
	if pe == nil {
		t.Fatal("Explain returned nil")
	}
	if pe.Kind != w.kind || pe.Code != w.code || pe.SubCode != w.sub || pe.Temporary != w.temporary || pe.SignInNeeded != w.signIn {
		t.Errorf("got kind=%s code=%q sub=%q temporary=%v signIn=%v, want %+v\n%s",
			pe.Kind, pe.Code, pe.SubCode, pe.Temporary, pe.SignInNeeded, w, pe)
	}
	for _, s := range w.advice {
		if !strings.Contains(pe.Advice, s) {
			t.Errorf("Advice %q lacks %q", pe.Advice, s)
		}
	}
	if !strings.Contains(pe.Description, w.descContains) {
		t.Errorf("Description %q lacks %q", pe.Description, w.descContains)
	}
	if wantURL != "" && pe.URL != wantURL {
		t.Errorf("URL = %q, want %q", pe.URL, wantURL)
	}
	msg := pe.Error()
	t.Logf("%s\n\tdescription: %s", msg, pe.Description)
	if wantURL != "" && !strings.Contains(msg, wantURL) {
		t.Errorf("Error() %q does not name the URL %s", msg, wantURL)
	}
	for _, secret := range []string{peRefreshToken, peBodyAccessToken, peBodyJWT, peBodySecret, "0gRefreshTokenValue", "a0AfB_byC", "eyJhbGciOiJSUzI1NiIs"} {
		for _, text := range []string{msg, pe.Advice, pe.Description} {
			if strings.Contains(text, secret) {
				t.Errorf("message leaks %q: %s", secret, text)
			}
		}
	}
	if !errors.Is(pe, pe.Err) {
		t.Error("Unwrap does not return the cause")
	}
}

func TestExplainTokenEndpointAnswers(t *testing.T) {
	leak := " refresh_token=" + peRefreshToken + " access " + peBodyAccessToken + " id " + peBodyJWT + " secret " + peBodySecret
	tests := []struct {
		name         string
		status       int
		ctype, body  string
		want         explainWant
		errorContain string
	}{
		{"google invalid_grant", 400, "application/json", `{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`,
			explainWant{kind: KindInvalidGrant, code: "invalid_grant", signIn: true, advice: []string{"expired or was revoked", "Get Refresh Token", "7 days"},
				descContains: "Token has been expired"}, "invalid_grant: the refresh token expired or was revoked — click Get Refresh Token (Google apps in Testing mode expire tokens after 7 days)"},
		{"google invalid_grant echoing tokens", 400, "application/json; charset=utf-8",
			`{"error":"invalid_grant","error_description":"Bad token` + leak + `"}`,
			explainWant{kind: KindInvalidGrant, code: "invalid_grant", signIn: true, advice: []string{"Get Refresh Token"}, descContains: "[redacted]"}, ""},
		{"ms AADSTS70008", 400, "application/json", peMSBody("invalid_grant", 70008, "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity."),
			explainWant{kind: KindInvalidGrant, code: "invalid_grant", sub: "AADSTS70008", signIn: true, advice: []string{"Get Refresh Token"}, descContains: "expired due to inactivity"},
			"invalid_grant (AADSTS70008): the refresh token expired or was revoked — click Get Refresh Token"},
		{"ms AADSTS700082", 400, "application/json", peMSBody("invalid_grant", 700082, "AADSTS700082: The refresh token has expired due to inactivity."),
			explainWant{kind: KindInvalidGrant, code: "invalid_grant", sub: "AADSTS700082", signIn: true, advice: []string{"Get Refresh Token"}}, ""},
		{"ms AADSTS700016", 400, "application/json", peMSBody("invalid_client", 700016, "AADSTS700016: Application with identifier 'b0b2c3d4-1111-2222-3333-444455556666' was not found in the directory 'contoso'."),
			explainWant{kind: KindWrongClientOrTenant, code: "invalid_client", sub: "AADSTS700016", advice: []string{"Client ID", "tenant"},
				descContains: "b0b2c3d4-1111-2222-3333-444455556666"}, ""},
		{"ms AADSTS7000215", 401, "application/json", peMSBody("invalid_client", 7000215, "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."),
			explainWant{kind: KindWrongSecret, code: "invalid_client", sub: "AADSTS7000215", advice: []string{"Value, not its Secret ID"}}, ""},
		{"ms AADSTS700025", 400, "application/json", peMSBody("invalid_client", 700025, "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be presented."),
			explainWant{kind: KindSecretNotAllowed, code: "invalid_client", sub: "AADSTS700025", advice: []string{"clear the Client Secret"}}, ""},
		{"ms AADSTS7000218", 401, "application/json", peMSBody("invalid_client", 7000218, "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
			explainWant{kind: KindSecretRequired, code: "invalid_client", sub: "AADSTS7000218", advice: []string{"client secret", "Allow public client flows"}}, ""},
		{"ms AADSTS50011", 400, "application/json", peMSBody("invalid_client", 50011, "AADSTS50011: The redirect URI 'http://127.0.0.1:5000/' specified in the request does not match the redirect URIs configured for the application."),
			explainWant{kind: KindRedirectNotRegistered, code: "invalid_client", sub: "AADSTS50011", advice: []string{"http://localhost", "Mobile and desktop"}}, ""},
		{"ms AADSTS65001", 400, "application/json", peMSBody("invalid_grant", 65001, "AADSTS65001: The user or administrator has not consented to use the application."),
			explainWant{kind: KindAdminConsent, code: "invalid_grant", sub: "AADSTS65001", signIn: true, advice: []string{"administrator", "consent"}}, ""},
		{"ms AADSTS50076", 400, "application/json", peMSBody("invalid_grant", 50076, "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication."),
			explainWant{kind: KindMFARequired, code: "invalid_grant", sub: "AADSTS50076", signIn: true, advice: []string{"multi-factor", "Get Refresh Token"}}, ""},
		{"ms AADSTS53003", 400, "application/json", peMSBody("invalid_grant", 53003, "AADSTS53003: Access has been blocked by Conditional Access policies."),
			explainWant{kind: KindBlockedByPolicy, code: "invalid_grant", sub: "AADSTS53003", advice: []string{"Conditional Access", "administrator"}}, ""},
		{"ms code only in description", 400, "application/json", `{"error":"invalid_grant","error_description":"AADSTS50079: Due to a configuration change, you must enroll in multi-factor authentication."}`,
			explainWant{kind: KindMFARequired, code: "invalid_grant", sub: "AADSTS50079", signIn: true, advice: []string{"multi-factor"}}, ""},
		{"ms invalid_scope", 400, "application/json", peMSBody("invalid_scope", 70011, "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope https://outlook.office.com/IMAP.AccessAsUser.Al is not valid."),
			explainWant{kind: KindInvalidScope, code: "invalid_scope", sub: "AADSTS70011", advice: []string{`"https://outlook.office.com/IMAP.AccessAsUser.Al"`}}, ""},
		{"google invalid_scope", 400, "application/json", `{"error":"invalid_scope","error_description":"Some requested scopes were invalid. {valid=[openid], invalid=[https://mail.google.com/x]}"}`,
			explainWant{kind: KindInvalidScope, code: "invalid_scope", advice: []string{`"https://mail.google.com/x"`}}, ""},
		{"access_denied", 400, "application/json", `{"error":"access_denied","error_description":"The user denied the request."}`,
			explainWant{kind: KindAccessDenied, code: "access_denied", advice: []string{"declined", "Get Refresh Token"}}, ""},
		{"google invalid_client", 401, "application/json", `{"error":"invalid_client","error_description":"Unauthorized"}`,
			explainWant{kind: KindInvalidClient, code: "invalid_client", advice: []string{"Client ID and Client Secret"}}, ""},
		{"google client not found", 401, "application/json", `{"error":"invalid_client","error_description":"The OAuth client was not found."}`,
			explainWant{kind: KindInvalidClient, code: "invalid_client", advice: []string{"does not know this Client ID"}}, ""},
		{"google secret missing", 400, "application/json", `{"error":"invalid_request","error_description":"client_secret is missing."}`,
			explainWant{kind: KindSecretRequired, code: "invalid_request", advice: []string{"needs a client secret"}}, ""},
		{"form-encoded error", 400, "application/x-www-form-urlencoded", "error=invalid_grant&error_description=expired",
			explainWant{kind: KindInvalidGrant, code: "invalid_grant", signIn: true}, ""},
		{"503 html", 503, "text/html", "<html><head><title>503 Service Unavailable</title></head><body>" + peBodyAccessToken + "</body></html>",
			explainWant{kind: KindServerError, temporary: true, advice: []string{"try again later"}, descContains: `HTTP 503, text/html: "503 Service Unavailable"`}, ""},
		{"500 json server_error", 500, "application/json", `{"error":"server_error"}`,
			explainWant{kind: KindServerError, code: "server_error", temporary: true, advice: []string{"try again later"}}, ""},
		{"429", 429, "text/plain", "slow down " + peBodySecret,
			explainWant{kind: KindServerError, temporary: true, advice: []string{"limiting requests"}, descContains: "HTTP 429"}, ""},
		{"404 html", 404, "text/html; charset=utf-8", "<html><body><h1>Not Found</h1></body></html>",
			explainWant{kind: KindBadResponse, advice: []string{"check the URL"}, descContains: `HTTP 404, text/html: "Not Found"`}, ""},
		{"403 proxy page", 403, "text/html", "<html><title>Blocked by proxy</title></html>",
			explainWant{kind: KindBadResponse, temporary: true, descContains: "Blocked by proxy"}, ""},
		{"unknown error code", 400, "application/json", `{"error":"weird_error","error_description":"something odd ` + peBodyJWT + `"}`,
			explainWant{kind: KindUnknown, code: "weird_error", advice: []string{"weird_error", "something odd"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := peServer(t, tt.status, tt.ctype, tt.body)
			err := peRefresh(ts.URL+"/token?x=1", nil)
			if err == nil {
				t.Fatal("refresh succeeded")
			}
			pe := Explain(err)
			peCheck(t, pe, ts.URL+"/token", tt.want)
			if tt.errorContain != "" && !strings.HasSuffix(pe.Error(), tt.errorContain) {
				t.Errorf("Error() = %q, want it to end with %q", pe.Error(), tt.errorContain)
			}
			if !strings.HasPrefix(pe.Error(), "token endpoint "+ts.URL+"/token: ") {
				t.Errorf("Error() = %q", pe.Error())
			}
			if _, ok := errors.AsType[*oauth2.RetrieveError](pe); !ok {
				t.Error("the RetrieveError is not reachable through Unwrap")
			}
		})
	}
}

func TestExplainNonJSONSuccess(t *testing.T) {
	page := "<html><head><title>Hotel Wi-Fi login</title></head><body>token " + peBodyAccessToken + "</body></html>"
	ts := peServer(t, 200, "text/html", page)
	tokenURL := ts.URL + "/token"

	// Plain oauth2 only says "cannot parse json": ExplainAt supplies the URL.
	pe := ExplainAt(tokenURL+"?q=secret", peRefresh(tokenURL, nil))
	peCheck(t, pe, tokenURL, explainWant{kind: KindBadResponse, temporary: true, advice: []string{"not JSON", "captive-portal"}})

	// With CheckedTransport the content type and page title come through.
	client := &http.Client{Transport: CheckedTransport(nil)}
	pe = Explain(peRefresh(tokenURL, client))
	peCheck(t, pe, tokenURL, explainWant{kind: KindBadResponse, temporary: true,
		advice: []string{"web page", "text/html", "Hotel Wi-Fi login"}, descContains: `HTTP 200, text/html: "Hotel Wi-Fi login"`})

	// JSON answers pass through CheckedTransport untouched.
	ok := peServer(t, 200, "application/json", `{"access_token":"at","token_type":"Bearer","expires_in":60}`)
	if err := peRefresh(ok.URL+"/token", client); err != nil {
		t.Fatalf("CheckedTransport broke a JSON answer: %v", err)
	}
}

func TestExplainNetworkFailures(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // lets the server notice the client hanging up
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}))
		defer ts.Close()
		err := peRefresh(ts.URL+"/token", &http.Client{Timeout: 100 * time.Millisecond})
		peCheck(t, Explain(err), ts.URL+"/token", explainWant{kind: KindTimeout, temporary: true, advice: []string{"no answer in time"}})
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		ts.Config.ErrorLog = log.New(io.Discard, "", 0)
		ts.StartTLS()
		defer ts.Close()
		err := peRefresh(ts.URL+"/token", nil) // default client: the test CA is not trusted
		peCheck(t, Explain(err), ts.URL+"/token", explainWant{kind: KindTLS, advice: []string{"not signed by an authority this computer trusts"}})
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		err = peRefresh("http://"+addr+"/token", nil)
		peCheck(t, Explain(err), "http://"+addr+"/token", explainWant{kind: KindUnreachable, temporary: true, advice: []string{"connection refused"}})
	})
	t.Run("unknown host", func(t *testing.T) {
		noDNS := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, &net.DNSError{Err: "no such host", Name: "no-such-host.invalid", IsNotFound: true}
		}}}
		err := peRefresh("https://no-such-host.invalid/token", noDNS)
		peCheck(t, Explain(err), "https://no-such-host.invalid/token", explainWant{kind: KindUnreachable, temporary: true, advice: []string{"could not be resolved"}})
	})
	t.Run("no refresh token", func(t *testing.T) {
		p := ParamSet{ClientID: "id", TokenURL: "https://login.example.com/token"}
		_, err := p.OAuth2Config("").TokenSource(context.Background(), &oauth2.Token{}).Token()
		peCheck(t, ExplainAt(p.TokenURL, err), p.TokenURL, explainWant{kind: KindInvalidGrant, signIn: true, advice: []string{"Get Refresh Token"}})
	})
	if Explain(nil) != nil {
		t.Error("Explain(nil) != nil")
	}
}

func TestExplainDeviceEndpointLabel(t *testing.T) {
	ts := peServer(t, 400, "application/json", `{"error":"invalid_client","error_description":"AADSTS7000218: The request body must contain client_secret."}`)
	p := ParamSet{ClientID: "id", DeviceURL: ts.URL + "/common/oauth2/v2.0/devicecode", TokenURL: ts.URL + "/token"}
	_, err := p.OAuth2Config("").DeviceAuth(context.Background())
	pe := Explain(err)
	if pe == nil || pe.Kind != KindSecretRequired || !strings.HasPrefix(pe.Error(), "device authorization endpoint "+ts.URL+"/common/oauth2/v2.0/devicecode: invalid_client (AADSTS7000218): ") {
		t.Errorf("device error = %v", pe)
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Token has been expired or revoked.", "Token has been expired or revoked."},
		{"scope https://outlook.office365.com/IMAP.AccessAsUser.All is fine", "scope https://outlook.office365.com/IMAP.AccessAsUser.All is fine"},
		{"app b0b2c3d4-1111-2222-3333-444455556666 missing", "app b0b2c3d4-1111-2222-3333-444455556666 missing"},
		{"token " + peRefreshToken + " bad", "token [redacted] bad"},
		{"jwt " + peBodyJWT, "jwt [redacted]"},
		{"code=4/0AX4XfWhabc&state=x", "code=[redacted]&state=x"},
		{`{"refresh_token": "abcd-efgh"}`, `{"refresh_token": "[redacted]"}`},
		{"line1\r\nline2\x00\tend", "line1 line2 end"},
	}
	for _, tt := range tests {
		if got := cleanText(tt.in, 500); got != tt.want {
			t.Errorf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := cleanText(strings.Repeat("word ", 100), 20); len([]rune(got)) > 21 || !strings.HasSuffix(got, "…") {
		t.Errorf("not shortened: %q", got)
	}
}

func TestExplainRedirectError(t *testing.T) {
	if ExplainRedirectError(url.Values{"code": {"abc"}}) != nil {
		t.Error("a successful redirect was explained as an error")
	}
	tests := []struct {
		q    url.Values
		want explainWant
	}{
		{url.Values{"error": {"access_denied"}, "error_description": {"The user denied access"}},
			explainWant{kind: KindAccessDenied, code: "access_denied", advice: []string{"cancelled", "Get Refresh Token"}}},
		{url.Values{"error": {"access_denied"}, "error_description": {"AADSTS65004: User declined to consent to access the app."},
			"error_uri": {"https://evil.example/phish"}},
			explainWant{kind: KindAccessDenied, code: "access_denied", sub: "AADSTS65004", advice: []string{"consent was declined"}}},
		{url.Values{"error": {"invalid_scope"}, "error_description": {"The scope 'mail.bogus' is not valid"}},
			explainWant{kind: KindInvalidScope, code: "invalid_scope", advice: []string{`"mail.bogus"`}}},
		{url.Values{"error": {"temporarily_unavailable"}},
			explainWant{kind: KindServerError, code: "temporarily_unavailable", temporary: true}},
		{url.Values{"error": {"bad<script>\n" + peRefreshToken}}, explainWant{kind: KindUnknown, code: "[redacted]", advice: []string{"refused the sign-in"}}},
	}
	for _, tt := range tests {
		err := ExplainRedirectError(tt.q)
		pe, ok := errors.AsType[*ProviderError](err)
		if !ok {
			t.Fatalf("ExplainRedirectError(%v) = %v", tt.q, err)
		}
		peCheck(t, pe, "", tt.want)
		if !strings.HasPrefix(err.Error(), "sign-in: ") || strings.Contains(err.Error(), "evil.example") {
			t.Errorf("Error() = %q", err)
		}
	}
}

func TestRecordRefreshError(t *testing.T) {
	revoked := peServer(t, 400, "application/json", `{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`)
	p := psValid()
	p.TokenURL = revoked.URL + "/token"
	p.Secrets.RefreshToken = "rt"
	pe := p.RecordRefreshError(peRefresh(p.TokenURL, nil))
	if pe.Kind != KindInvalidGrant || p.LastError != pe.Error() {
		t.Fatalf("RecordRefreshError = %v, LastError %q", pe, p.LastError)
	}
	if st := p.Status(time.Now()); st.State != StateTokenRevoked || !strings.Contains(st.Reason, "Get Refresh Token") {
		t.Errorf("Status after invalid_grant = %+v", st)
	}

	mfa := peServer(t, 400, "application/json", peMSBody("invalid_grant", 50076, "AADSTS50076: MFA required."))
	q := psValid()
	q.Secrets.RefreshToken = "rt"
	q.RecordRefreshError(peRefresh(mfa.URL+"/token", nil))
	if st := q.Status(time.Now()); st.State != StateSignInNeeded || !strings.Contains(st.Reason, "multi-factor") {
		t.Errorf("Status after MFA = %+v", st)
	}

	down := peServer(t, 503, "text/html", "<title>down</title>")
	r := psValid()
	r.Secrets.RefreshToken = "rt"
	if pe := r.RecordRefreshError(peRefresh(down.URL+"/token", nil)); !pe.Temporary || r.SignInNeeded != "" || r.LastError == "" {
		t.Errorf("temporary failure: %v, SignInNeeded %q, LastError %q", pe, r.SignInNeeded, r.LastError)
	}
	if r.RecordRefreshError(nil) != nil {
		t.Error("RecordRefreshError(nil) != nil")
	}
}
