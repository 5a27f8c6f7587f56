package oauthparams

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// visited is what the fake browser saw at the end of a navigation.
type visited struct {
	status int
	header http.Header
	body   string
	err    error
}

// visit GETs u (or POSTs form when not nil), following redirects, as a browser would.
func visit(u string, form url.Values) visited {
	var resp *http.Response
	var err error
	if form == nil {
		resp, err = http.Get(u)
	} else {
		resp, err = http.PostForm(u, form)
	}
	if err != nil {
		return visited{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return visited{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

// browser returns an OpenBrowser that runs act on the URL in a goroutine and sends the
// final page to the returned channel.
func browser(act func(authURL string) visited) (func(string) error, <-chan visited) {
	pages := make(chan visited, 1)
	return func(u string) error {
		go func() { pages <- act(u) }()
		return nil
	}, pages
}

func signInDirectly(u string) visited { return visit(u, nil) }

func redirectOf(t *testing.T, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Error(err)
		return ""
	}
	return u.Query().Get("redirect_uri")
}

func TestAuthorizeBrowser(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	if err := s.Put(serverSet(srv, "work")); err != nil {
		t.Fatal(err)
	}
	var strays []visited
	open, pages := browser(func(u string) visited {
		redirect := redirectOf(t, u)
		strays = append(strays, visit(redirect+"favicon.ico", nil), visit(redirect+"?code=forged&state=wrong", nil),
			visit(redirect+"?state=wrong&error=access_denied", nil))
		return visit(u, nil)
	})
	var prompt bytes.Buffer
	saved, err := s.Authorize(context.Background(), "work", AuthorizeOptions{OpenBrowser: open, Prompt: &prompt})
	if err != nil {
		t.Fatal(err)
	}
	pg := <-pages
	if pg.err != nil || pg.status != http.StatusOK || !strings.Contains(pg.body, "Successfully Authenticated. You can now close this tab/window") ||
		pg.header.Get("Cache-Control") != "no-store" {
		t.Errorf("success page: %d %v %q %v", pg.status, pg.err, pg.body, pg.header)
	}
	for i, want := range []int{http.StatusNotFound, http.StatusBadRequest, http.StatusBadRequest} {
		if strays[i].status != want {
			t.Errorf("stray request %d: status %d, want %d", i, strays[i].status, want)
		}
	}
	if c := srv.Counts(); c.TokenCode != 1 {
		t.Errorf("%d code exchanges, want 1", c.TokenCode)
	}
	p, _ := s.Get("work")
	if st := p.Status(time.Now()); st.State != StateReady || p.GrantedScope != tokScope || p.LastRefresh.IsZero() ||
		p.Secrets.RefreshToken == "" || p.Secrets.RefreshToken != saved.Secrets.RefreshToken {
		t.Fatalf("after sign-in: %+v, granted %q", st, p.GrantedScope)
	}
	if _, _, ok := srv.ValidAccessToken(p.Secrets.AccessToken); !ok {
		t.Error("the stored access token is not valid")
	}
	noSecrets(t, prompt.String(), p.Secrets.RefreshToken, p.Secrets.AccessToken)
	if !strings.Contains(prompt.String(), "Waiting for sign-in") || !strings.Contains(prompt.String(), srv.AuthURL) {
		t.Errorf("prompt: %q", prompt.String())
	}
	if _, err := NewTokenManager(s, nil).ForceRefresh(context.Background(), "work", ""); err != nil {
		t.Errorf("refresh with the new refresh token: %v", err)
	}
}

func TestAuthorizePublicClientFixedPort(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := tokStore(t, t.TempDir())
	p := serverSet(srv, "public")
	p.ClientID, p.Secrets.ClientSecret = testmail.OAuthPublicClientID, ""
	p.RedirectURL = fmt.Sprintf("http://127.0.0.1:%d/callback", port)
	if err := s.Put(p); err != nil {
		t.Fatal(err)
	}
	open, pages := browser(func(u string) visited {
		if got := redirectOf(t, u); got != p.RedirectURL {
			t.Errorf("redirect_uri %q, want %q", got, p.RedirectURL)
		}
		return visit(u, nil)
	})
	saved, err := s.Authorize(context.Background(), "public", AuthorizeOptions{OpenBrowser: open})
	if err != nil {
		t.Fatal(err)
	}
	if pg := <-pages; pg.status != http.StatusOK {
		t.Errorf("page status %d", pg.status)
	}
	if st := saved.Status(time.Now()); st.State != StateReady {
		t.Fatalf("status %+v", st)
	}
}

var requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)

func TestAuthorizeDenied(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{LoginForm: true})
	s := tokStore(t, t.TempDir())
	_, refresh := mintedSet(t, srv, s, "work", time.Now().Add(time.Hour))
	open, pages := browser(func(u string) visited {
		form := visit(u, nil)
		m := requestField.FindStringSubmatch(form.body)
		if m == nil {
			return visited{err: fmt.Errorf("no login form: %d %q", form.status, form.body)}
		}
		return visit(srv.URL+"/authorize/consent", url.Values{"request": {m[1]}, "username": {"alice@example.test"}, "consent": {"deny"}})
	})
	_, err := s.Authorize(context.Background(), "work", AuthorizeOptions{OpenBrowser: open})
	pe, ok := errors.AsType[*ProviderError](err)
	if !ok || pe.Kind != KindAccessDenied {
		t.Fatalf("err = %v, want access_denied", err)
	}
	if pg := <-pages; pg.err != nil || pg.status != http.StatusBadRequest || !strings.Contains(pg.body, "access_denied") {
		t.Errorf("error page: %d %v %q", pg.status, pg.err, pg.body)
	}
	if p, _ := s.Get("work"); p.Secrets.RefreshToken != refresh || p.SignInNeeded != "" {
		t.Fatal("a denied sign-in changed the stored set")
	}
}

func TestAuthorizeCancelAndTimeout(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	_, refresh := mintedSet(t, srv, s, "work", time.Now().Add(time.Hour))
	idle := func(string) error { return nil }

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := s.Authorize(ctx, "work", AuthorizeOptions{OpenBrowser: idle}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: err = %v", err)
	}
	var prompt bytes.Buffer
	_, err := s.Authorize(context.Background(), "work", AuthorizeOptions{NoBrowser: true, Prompt: &prompt, Timeout: 100 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no sign-in within") {
		t.Errorf("timeout: err = %v", err)
	}
	if !strings.Contains(prompt.String(), "Open this URL") {
		t.Errorf("NoBrowser prompt: %q", prompt.String())
	}
	if p, _ := s.Get("work"); p.Secrets.RefreshToken != refresh {
		t.Fatal("the stored token changed")
	}
	if _, err := s.Authorize(context.Background(), "missing", AuthorizeOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing set: %v", err)
	}
}

func TestAuthorizeScopeChanged(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	mintedSet(t, srv, s, "work", time.Now().Add(time.Hour))
	if err := s.Update("work", func(p *ParamSet) error {
		p.GrantedScope = "https://mail.test/imap offline_access"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Get("work"); p.Status(time.Now()).State != StateScopeChanged {
		t.Fatalf("status %+v, want scope changed", p.Status(time.Now()))
	}
	open, pages := browser(signInDirectly)
	saved, err := s.Authorize(context.Background(), "work", AuthorizeOptions{OpenBrowser: open})
	if err != nil {
		t.Fatal(err)
	}
	<-pages
	if st := saved.Status(time.Now()); st.State != StateReady || saved.GrantedScope != tokScope {
		t.Fatalf("after re-authorizing: %+v, granted %q", st, saved.GrantedScope)
	}
}
