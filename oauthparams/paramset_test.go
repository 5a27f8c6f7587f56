package oauthparams

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func psValid() ParamSet {
	return ParamSet{
		Name:        "Work mail",
		Account:     "alice@example.com",
		ClientID:    "client-123",
		AuthURL:     "https://login.example.com/oauth2/authorize",
		TokenURL:    "https://login.example.com/oauth2/token",
		Scope:       "https://mail.example.com/imap offline_access",
		ExtraParams: map[string]string{"prompt": "consent"},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(p *ParamSet)
		fields []string // fields expected to have problems; nil = valid
		want   string   // substring expected in the message of the first field
	}{
		{"valid", func(p *ParamSet) {}, nil, ""},
		{"loopback v4 http", func(p *ParamSet) { p.TokenURL = "http://127.0.0.1:9/x" }, nil, ""},
		{"loopback 127/8 http", func(p *ParamSet) { p.TokenURL = "http://127.3.4.5:9/x" }, nil, ""},
		{"loopback v6 http", func(p *ParamSet) { p.AuthURL = "http://[::1]:8/x" }, nil, ""},
		{"localhost http", func(p *ParamSet) { p.DeviceURL = "http://localhost/x" }, nil, ""},
		{"surrounding spaces trimmed", func(p *ParamSet) { p.Name = "  Work  "; p.AuthURL = " " + p.AuthURL + "\n" }, nil, ""},
		{"scope on several lines", func(p *ParamSet) { p.Scope = "a\nb\tc" }, nil, ""},
		{"redirect loopback with port", func(p *ParamSet) { p.RedirectURL = "http://127.0.0.1:8765/callback" }, nil, ""},
		{"redirect localhost with port", func(p *ParamSet) { p.RedirectURL = "http://localhost:8765/" }, nil, ""},
		{"account user name", func(p *ParamSet) { p.Account = "alice" }, nil, ""},
		{"account empty", func(p *ParamSet) { p.Account = "" }, nil, ""},

		{"name empty", func(p *ParamSet) { p.Name = "   " }, []string{"name"}, "must not be empty"},
		{"name too long", func(p *ParamSet) { p.Name = strings.Repeat("é", 101) }, []string{"name"}, "at most 100"},
		{"name 100 ok", func(p *ParamSet) { p.Name = strings.Repeat("é", 100) }, nil, ""},
		{"name control", func(p *ParamSet) { p.Name = "a\tb" }, []string{"name"}, "control characters"},
		{"name slash", func(p *ParamSet) { p.Name = "a/b" }, []string{"name"}, `"/"`},
		{"name backslash", func(p *ParamSet) { p.Name = `a\b` }, []string{"name"}, `"\"`},
		{"client id empty", func(p *ParamSet) { p.ClientID = "" }, []string{"client_id"}, "must not be empty"},
		{"client id space", func(p *ParamSet) { p.ClientID = "a b" }, []string{"client_id"}, "spaces"},
		{"auth url missing", func(p *ParamSet) { p.AuthURL = "" }, []string{"auth_url"}, "is required"},
		{"token url missing", func(p *ParamSet) { p.TokenURL = "" }, []string{"token_url"}, "is required"},
		{"http remote refused", func(p *ParamSet) { p.TokenURL = "http://example.com/token" }, []string{"token_url"},
			"must use https:// (plain http:// is allowed only for loopback hosts: 127.0.0.0/8, ::1 and localhost)"},
		{"http lookalike refused", func(p *ParamSet) { p.TokenURL = "http://localhost.evil.com/token" }, []string{"token_url"}, "https://"},
		{"ftp refused", func(p *ParamSet) { p.AuthURL = "ftp://login.example.com/x" }, []string{"auth_url"}, "https://"},
		{"relative refused", func(p *ParamSet) { p.AuthURL = "/oauth2/authorize" }, []string{"auth_url"}, "absolute URL"},
		{"no scheme refused", func(p *ParamSet) { p.AuthURL = "login.example.com/x" }, []string{"auth_url"}, "absolute URL"},
		{"userinfo refused", func(p *ParamSet) { p.TokenURL = "https://user:pass@login.example.com/token" }, []string{"token_url"}, "user:pass@"},
		{"fragment refused", func(p *ParamSet) { p.TokenURL = "https://login.example.com/token#x" }, []string{"token_url"}, "fragment"},
		{"space in url", func(p *ParamSet) { p.AuthURL = "https://login.example.com/a b" }, []string{"auth_url"}, "spaces"},
		{"bad port", func(p *ParamSet) { p.AuthURL = "https://login.example.com:99999/a" }, []string{"auth_url"}, "port"},
		{"tenant placeholder", func(p *ParamSet) { p.AuthURL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize" }, []string{"auth_url"}, "{tenant}"},
		{"device url same rule", func(p *ParamSet) { p.DeviceURL = "http://example.com/device" }, []string{"device_url"}, "https://"},
		{"redirect https refused", func(p *ParamSet) { p.RedirectURL = "https://127.0.0.1:8765/" }, []string{"redirect_url"}, "http:// on a loopback host"},
		{"redirect remote refused", func(p *ParamSet) { p.RedirectURL = "http://example.com:8765/" }, []string{"redirect_url"}, "loopback"},
		{"redirect no port", func(p *ParamSet) { p.RedirectURL = "http://127.0.0.1/" }, []string{"redirect_url"}, "explicit port"},
		{"redirect port 0", func(p *ParamSet) { p.RedirectURL = "http://127.0.0.1:0/" }, []string{"redirect_url"}, "use 1 to 65535"},
		{"scope empty", func(p *ParamSet) { p.Scope = "  " }, []string{"scope"}, "at least one scope"},
		{"scope control char", func(p *ParamSet) { p.Scope = "a\x01b" }, []string{"scope"}, "control characters"},
		{"scope DEL", func(p *ParamSet) { p.Scope = "a\x7fb" }, []string{"scope"}, "control characters"},
		{"scope quote", func(p *ParamSet) { p.Scope = `mail "x"` }, []string{"scope"}, `"\"x\""`},
		{"scope backslash", func(p *ParamSet) { p.Scope = `a\b` }, []string{"scope"}, "not allowed in a scope"},
		{"scope non-ascii", func(p *ParamSet) { p.Scope = "mäil" }, []string{"scope"}, "not allowed in a scope"},
		{"account with space", func(p *ParamSet) { p.Account = "alice smith" }, []string{"account"}, "mailbox address"},
		{"account control", func(p *ParamSet) { p.Account = "al\x00ice" }, []string{"account"}, "control"},
		{"account bad address", func(p *ParamSet) { p.Account = "alice@" }, []string{"account"}, "mailbox address"},
		{"account display name", func(p *ParamSet) { p.Account = "<alice@example.com>" }, []string{"account"}, "mailbox address"},
		{"protected state", func(p *ParamSet) { p.ExtraParams = map[string]string{"state": "x"} }, []string{"extra_params.state"}, `"state"`},
		{"protected scope any case", func(p *ParamSet) { p.ExtraParams = map[string]string{"Scope": "x"} }, []string{"extra_params.Scope"}, `"Scope"`},
		{"protected redirect_uri", func(p *ParamSet) { p.ExtraParams = map[string]string{"redirect_uri": "x"} }, []string{"extra_params.redirect_uri"}, "cannot be overridden"},
		{"extra param empty key dropped", func(p *ParamSet) { p.ExtraParams = map[string]string{" ": "x"} }, nil, ""},
		{"extra param value control", func(p *ParamSet) { p.ExtraParams = map[string]string{"login_hint": "a\nb"} }, []string{"extra_params.login_hint"}, "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := psValid()
			tt.mod(&p)
			err := p.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want ValidationError", err)
			}
			var got []string
			for _, pr := range ve.Problems {
				got = append(got, pr.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("problem fields = %q, want %q (%v)", got, tt.fields, err)
			}
			if !strings.Contains(ve.Problems[0].Message, tt.want) {
				t.Errorf("message %q does not contain %q", ve.Problems[0].Message, tt.want)
			}
		})
	}
}

func TestValidateReportsAllProblemsAtOnce(t *testing.T) {
	p := ParamSet{
		Name:        "",
		ClientID:    "",
		AuthURL:     "http://example.com/auth",
		TokenURL:    "",
		Scope:       "",
		ExtraParams: map[string]string{"state": "x", "prompt": "consent"},
		Secrets:     Secrets{ClientSecret: "very secret value"},
	}
	err := p.Validate()
	var ve ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate() = %v", err)
	}
	want := []string{"name", "client_id", "client_secret", "auth_url", "token_url", "scope", "extra_params.state"}
	for _, f := range want {
		if !ve.Has(f) {
			t.Errorf("no problem reported for %s:\n%v", f, err)
		}
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("Error() has %d lines, want %d:\n%s", len(lines), len(want), err)
	}
	if lines[0] != "name: must not be empty" {
		t.Errorf("first line = %q", lines[0])
	}
	if strings.Contains(err.Error(), "very secret") {
		t.Errorf("the secret leaked into the message: %s", err)
	}
}

func TestNormalizeAndNames(t *testing.T) {
	p := ParamSet{Name: "  Work  ", Scope: " a \n b\t\tc ", ClientID: " id ", GrantedScope: "x  y",
		ExtraParams: map[string]string{" prompt ": " consent ", "  ": "dropped"},
		Secrets:     Secrets{ClientSecret: "secret\n"}}
	p.Normalize()
	if p.Name != "Work" || p.Scope != "a b c" || p.ClientID != "id" || p.GrantedScope != "x y" ||
		p.Secrets.ClientSecret != "secret" {
		t.Errorf("Normalize() = %+v", p)
	}
	if len(p.ExtraParams) != 1 || p.ExtraParams["prompt"] != "consent" {
		t.Errorf("ExtraParams = %q", p.ExtraParams)
	}
	if NormalizeName("  Work ") != "Work" || NameKey(" WORK mail ") != NameKey("work Mail") || NameKey("Work") != "work" {
		t.Error("NormalizeName/NameKey do not fold case and trim")
	}
}

func TestCloneAndMasked(t *testing.T) {
	p := psValid()
	p.Secrets = Secrets{ClientSecret: "cs-value", RefreshToken: "rt-value", AccessExpiry: time.Unix(100, 0)}
	c := p.Clone()
	c.ExtraParams["prompt"] = "changed"
	if p.ExtraParams["prompt"] != "consent" {
		t.Fatal("Clone shares ExtraParams")
	}
	m := p.Masked()
	if m.Secrets.ClientSecret != "(set)" || m.Secrets.RefreshToken != "(set)" || m.Secrets.AccessToken != "" {
		t.Errorf("Masked secrets = %+v", m.Secrets)
	}
	if !m.Secrets.AccessExpiry.Equal(p.Secrets.AccessExpiry) || m.Name != p.Name || m.ClientID != p.ClientID {
		t.Errorf("Masked changed plain fields: %+v", m)
	}
	b, _ := json.Marshal(m)
	if strings.Contains(string(b), "cs-value") || strings.Contains(string(b), "rt-value") {
		t.Errorf("masked JSON shows a secret: %s", b)
	}
	m.ExtraParams["x"] = "y"
	if _, ok := p.ExtraParams["x"]; ok {
		t.Error("Masked shares ExtraParams")
	}
	if p.Secrets.ClientSecret != "cs-value" {
		t.Error("Masked changed the original")
	}
}

// psTokenServer records the form and Authorization header of every token request.
type psTokenServer struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values
	auth  []string
}

func psNewTokenServer(t *testing.T) *psTokenServer {
	ts := &psTokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("ParseForm: %v", err)
		}
		ts.mu.Lock()
		ts.forms = append(ts.forms, r.PostForm)
		ts.auth = append(ts.auth, r.Header.Get("Authorization"))
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt"}`))
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestOAuth2ConfigSecretOnTheWire(t *testing.T) {
	for _, secret := range []string{"", "the-client-secret"} {
		t.Run("secret="+secret, func(t *testing.T) {
			ts := psNewTokenServer(t)
			p := psValid()
			p.TokenURL = ts.URL + "/token"
			p.Secrets.ClientSecret = secret
			cfg := p.OAuth2Config("http://127.0.0.1:5555/cb")
			if cfg.Endpoint.AuthStyle != oauth2.AuthStyleInParams || cfg.RedirectURL != "http://127.0.0.1:5555/cb" ||
				strings.Join(cfg.Scopes, "|") != "https://mail.example.com/imap|offline_access" {
				t.Fatalf("config = %+v", cfg)
			}
			if _, err := cfg.Exchange(context.Background(), "the-code", oauth2.VerifierOption("v")); err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			form, auth := ts.forms[0], ts.auth[0]
			if form.Get("client_id") != "client-123" || form.Get("code") != "the-code" {
				t.Errorf("form = %v", form)
			}
			if auth != "" {
				t.Errorf("Authorization header sent: %q", auth)
			}
			_, has := form["client_secret"]
			if secret == "" && has {
				t.Errorf("public client sent client_secret: %v", form)
			}
			if secret != "" && form.Get("client_secret") != secret {
				t.Errorf("client_secret = %q, want %q", form.Get("client_secret"), secret)
			}
		})
	}
}

func TestOAuth2ConfigDefaultsAndAuthCodeOptions(t *testing.T) {
	p := psValid()
	p.RedirectURL = "http://127.0.0.1:8765/"
	p.DeviceURL = "https://login.example.com/device"
	p.ExtraParams = map[string]string{"access_type": "offline", "prompt": "consent", "state": "evil", "redirect_uri": "http://evil/"}
	cfg := p.OAuth2Config("")
	if cfg.RedirectURL != p.RedirectURL || cfg.Endpoint.DeviceAuthURL != p.DeviceURL {
		t.Fatalf("config = %+v", cfg)
	}
	opts := p.AuthCodeOptions()
	if len(opts) != 2 {
		t.Fatalf("AuthCodeOptions: %d options, want 2 (protected keys skipped)", len(opts))
	}
	u, err := url.Parse(cfg.AuthCodeURL("good-state", opts...))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("access_type") != "offline" || q.Get("prompt") != "consent" || q.Get("state") != "good-state" ||
		q.Get("redirect_uri") != p.RedirectURL {
		t.Errorf("auth URL query = %v", q)
	}
}

func TestStatus(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	ready := psValid()
	ready.Secrets.RefreshToken = "rt"
	ready.LastRefresh = now.Add(-time.Hour)
	tests := []struct {
		name   string
		mod    func(p *ParamSet)
		state  State
		reason string
	}{
		{"ready", func(p *ParamSet) {}, StateReady, "signed in"},
		{"ready with access token", func(p *ParamSet) {
			p.Secrets.AccessToken, p.Secrets.AccessExpiry = "at", now.Add(42*time.Minute)
		}, StateReady, "valid for another 42m"},
		{"incomplete", func(p *ParamSet) { p.ClientID, p.Scope = "", "" }, StateIncomplete, "client_id: must not be empty"},
		{"no refresh token", func(p *ParamSet) { p.Secrets.RefreshToken = "" }, StateSignInNeeded, "no refresh token yet: click Get Refresh Token"},
		{"sign-in needed", func(p *ParamSet) { p.MarkSignInNeeded("imported without secrets") }, StateSignInNeeded, "imported without secrets"},
		{"sign-in needed without token", func(p *ParamSet) {
			p.Secrets.RefreshToken = ""
			p.MarkSignInNeeded("imported without secrets")
		}, StateSignInNeeded, "imported without secrets"},
		{"revoked", func(p *ParamSet) { p.MarkTokenRevoked("the refresh token expired") }, StateTokenRevoked, "token revoked: the refresh token expired"},
		{"revoked by code", func(p *ParamSet) { p.SignInNeeded = "invalid_grant from provider" }, StateTokenRevoked, "invalid_grant"},
		{"scope changed", func(p *ParamSet) {
			p.GrantedScope = "https://mail.example.com/imap"
			p.Scope = "https://mail.example.com/imap https://mail.example.com/smtp offline_access"
		}, StateScopeChanged, "the scope asks for https://mail.example.com/smtp which the last sign-in did not grant: click Get Refresh Token"},
		{"granted superset", func(p *ParamSet) {
			p.GrantedScope = "https://mail.example.com/imap https://mail.example.com/smtp"
		}, StateReady, "signed in"},
		{"granted short names", func(p *ParamSet) {
			p.Scope = "https://graph.microsoft.com/Mail.Read offline_access"
			p.GrantedScope = "Mail.Read User.Read"
		}, StateReady, "signed in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ready.Clone()
			tt.mod(&p)
			st := p.Status(now)
			if st.State != tt.state || !strings.Contains(st.Reason, tt.reason) {
				t.Errorf("Status = %+v, want %s containing %q", st, tt.state, tt.reason)
			}
			if !st.LastRefresh.Equal(p.LastRefresh) {
				t.Errorf("LastRefresh = %v", st.LastRefresh)
			}
		})
	}
}

func TestScopeChanged(t *testing.T) {
	p := ParamSet{Scope: "a b c b offline_access openid", GrantedScope: "B"}
	if got := strings.Join(p.ScopeChanged(), " "); got != "a c" {
		t.Errorf("ScopeChanged = %q, want \"a c\"", got)
	}
	p.GrantedScope = ""
	if got := p.ScopeChanged(); got != nil {
		t.Errorf("ScopeChanged without GrantedScope = %q", got)
	}
}

func TestApplyPresetLeavesIdentityAlone(t *testing.T) {
	p := psValid()
	p.ExtraParams = map[string]string{"login_hint": "alice@example.com", "prompt": "select_account"}
	p.Secrets = Secrets{ClientSecret: "cs", RefreshToken: "rt", AccessToken: "at"}
	before := p.Clone()
	google, ok := FindPreset("google")
	if !ok {
		t.Fatal("no google preset")
	}
	p.ApplyPreset(google, ProtocolIMAP)
	if p.Name != before.Name || p.Account != before.Account || p.ClientID != before.ClientID || p.Secrets != before.Secrets {
		t.Errorf("ApplyPreset changed identity or secrets: %+v", p)
	}
	if p.AuthURL != google.AuthURL || p.TokenURL != google.TokenURL || p.DeviceURL != "" || p.Scope != "https://mail.google.com/" || p.Preset != "google" {
		t.Errorf("ApplyPreset endpoints/scope = %+v", p)
	}
	want := map[string]string{"login_hint": "alice@example.com", "prompt": "consent", "access_type": "offline"}
	for k, v := range want {
		if p.ExtraParams[k] != v {
			t.Errorf("ExtraParams[%s] = %q, want %q", k, p.ExtraParams[k], v)
		}
	}
	if p.SignInNeeded != "" {
		t.Errorf("ApplyPreset set SignInNeeded = %q", p.SignInNeeded)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("set after ApplyPreset does not validate: %v", err)
	}

	var empty ParamSet
	empty.ApplyPreset(google)
	if empty.ExtraParams["access_type"] != "offline" {
		t.Error("ApplyPreset on a nil ExtraParams map lost the preset's params")
	}
	google.ExtraParams["prompt"] = "mutated"
	if empty.ExtraParams["prompt"] != "consent" {
		t.Error("ApplyPreset shares the preset's map")
	}
}
