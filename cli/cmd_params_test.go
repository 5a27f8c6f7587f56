package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
)

// mw runs Main on dataDir (through MAILWRIGHT_DATA_DIR, as a scheduled run would).
func mw(t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	return runMain(t, map[string]string{envDataDir: dataDir}, false, args...)
}

func TestParamsSetShowListRenameDelete(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(t.TempDir(), "secret")
	const secret = "s3cret-client-value"
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mw(t, dir, "params", "set", "Work", "--preset", "google", "--account", "me@example.com",
		"--client-id", "123.apps.googleusercontent.com", "--client-secret-file", secretFile, "--param", "login_hint=me@example.com")
	if r.code != 0 || !strings.Contains(r.stdout, "created Work: sign-in needed") {
		t.Fatalf("set: %+v", r)
	}
	r = mw(t, dir, "params", "show", "work", "--json")
	var shown struct {
		Set     oauthparams.ParamSet `json:"set"`
		Secrets map[string]string    `json:"secrets"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &shown) != nil {
		t.Fatalf("show --json: %+v", r)
	}
	if shown.Set.AuthURL != "https://accounts.google.com/o/oauth2/v2/auth" || shown.Set.ExtraParams["access_type"] != "offline" ||
		shown.Set.ExtraParams["login_hint"] != "me@example.com" || shown.Secrets["client_secret"] == "" {
		t.Fatalf("show: %+v", shown)
	}
	r = mw(t, dir, "params", "show", "Work")
	if strings.Contains(r.stdout, secret) || !strings.Contains(r.stdout, "Client Secret:") {
		t.Fatalf("show must mask the secret: %s", r.stdout)
	}
	r = mw(t, dir, "params", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "Work") || !strings.Contains(r.stdout, "secrets: file") {
		t.Fatalf("list: %+v", r)
	}
	// Changing one field keeps the others.
	r = mw(t, dir, "params", "set", "Work", "--scope", "https://mail.google.com/ openid")
	if r.code != 0 || !strings.Contains(r.stdout, "updated Work") {
		t.Fatalf("set scope: %+v", r)
	}
	if r = mw(t, dir, "params", "rename", "Work", "Office"); r.code != 0 {
		t.Fatalf("rename: %+v", r)
	}
	r = mw(t, dir, "params", "show", "Office", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, "123.apps.googleusercontent.com") || !strings.Contains(r.stdout, `"client_secret": "`) {
		t.Fatalf("after rename: %+v", r)
	}
	if r = mw(t, dir, "params", "delete", "Office"); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r = mw(t, dir, "params", "show", "Office"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("show deleted: %+v", r)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "paramsets.json"))
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("plain store file holds the client secret")
	}
}

func TestParamsErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"params"}, ExitUsage, "needs a subcommand"},
		{[]string{"params", "frob"}, ExitUsage, "unknown command"},
		{[]string{"params", "show"}, ExitUsage, "needs NAME"},
		{[]string{"params", "set", "X", "--preset", "nope"}, ExitUsage, "unknown preset"},
		{[]string{"params", "set", "X", "--preset", "microsoft-tenant"}, ExitUsage, "--tenant"},
		{[]string{"params", "set", "X", "--client-id", "c", "--auth-url", "http://example.com/a", "--token-url", "https://x/t", "--scope", "s"}, 1, "auth_url"},
		{[]string{"params", "set", "X", "--param", "novalue"}, ExitUsage, "KEY=VALUE"},
	}
	for _, c := range cases {
		r := mw(t, dir, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: exit %d stderr %q; want exit %d mentioning %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
	if r := mw(t, dir, "params", "list", "--json"); !strings.Contains(r.stdout, `"sets": []`) {
		t.Errorf("a failed set must save nothing: %s", r.stdout)
	}
}

func TestParamsPresets(t *testing.T) {
	r := mw(t, t.TempDir(), "params", "presets", "--json")
	var presets []oauthparams.Preset
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &presets) != nil || len(presets) < 11 {
		t.Fatalf("presets: %d, %+v", len(presets), r)
	}
}

// TestParamsAuthorizeAndToken signs in headless (--no-browser): the test reads the printed
// URL and plays the browser, then gets tokens silently, then sees a revoked grant explained.
func TestParamsAuthorizeAndToken(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	dir := t.TempDir()
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(testmail.OAuthTestClientSecret), 0o600)
	r := mw(t, dir, "params", "set", "Test", "--account", "alice@example.test", "--client-id", testmail.OAuthTestClientID,
		"--client-secret-file", secretFile, "--auth-url", srv.AuthURL, "--token-url", srv.TokenURL,
		"--scope", "https://mail.test/imap offline_access")
	if r.code != 0 {
		t.Fatalf("set: %+v", r)
	}

	pr, pw := io.Pipe()
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := Main([]string{"params", "authorize", "Test", "--no-browser", "--timeout", "30s"},
			Env{Stdout: &out, Stderr: pw, FyneApp: fyneApp(t), Getenv: func(k string) string { return map[string]string{envDataDir: dir}[k] }})
		pw.Close()
		done <- code
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if u := strings.TrimSpace(sc.Text()); strings.HasPrefix(u, srv.AuthURL) {
			go func() {
				if resp, err := http.Get(u); err == nil { // follows the redirect to the loopback listener
					resp.Body.Close()
				}
			}()
		}
	}
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "signed in: Test is ready") {
			t.Fatalf("authorize: exit %d, %s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("authorize did not finish")
	}

	r = mw(t, dir, "params", "token", "Test")
	if r.code != 0 || !strings.Contains(r.stdout, "valid until") {
		t.Fatalf("token: %+v", r)
	}
	r = mw(t, dir, "params", "token", "Test", "--show")
	tok := strings.TrimSpace(r.stdout)
	if _, _, ok := srv.ValidAccessToken(tok); r.code != 0 || !ok {
		t.Fatalf("token --show printed no valid token: %+v", r)
	}
	if got := srv.Counts().TokenRefresh; got != 0 {
		t.Fatalf("cached token was refreshed %d times", got)
	}

	// The user revoked the app: the next refresh fails with words that say what to do.
	srv.RevokeUser("alice@example.test")
	st, err := oauthparams.Open(dir, oauthparams.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Update("Test", func(p *oauthparams.ParamSet) error { p.Secrets.AccessExpiry = time.Now(); return nil })
	r = mw(t, dir, "params", "token", "Test")
	if r.code != 1 || !strings.Contains(r.stderr, "Get Refresh Token") || strings.Contains(r.stderr, tok) {
		t.Fatalf("revoked: %+v", r)
	}
	if r = mw(t, dir, "params", "list"); !strings.Contains(r.stdout, "token revoked") {
		t.Fatalf("list after revocation: %s", r.stdout)
	}
}
