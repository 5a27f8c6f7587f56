package oauthparams

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

const tokScope = "https://mail.test/imap https://mail.test/smtp offline_access"

// tokStore opens a file-backend store (key file) on dir.
func tokStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, StoreOptions{Backend: BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serverSet is a set for srv's confidential test client, without tokens.
func serverSet(srv *testmail.OAuthServer, name string) ParamSet {
	return ParamSet{Name: name, Account: "alice@example.test", ClientID: testmail.OAuthTestClientID,
		AuthURL: srv.AuthURL, TokenURL: srv.TokenURL, DeviceURL: srv.DeviceURL, Scope: tokScope,
		Secrets: Secrets{ClientSecret: testmail.OAuthTestClientSecret}}
}

// mintedSet stores a set holding a minted token pair whose access token expires at expiry.
func mintedSet(t testing.TB, srv *testmail.OAuthServer, s *Store, name string, expiry time.Time) (access, refresh string) {
	t.Helper()
	access, refresh = srv.Mint("", tokScope)
	p := serverSet(srv, name)
	p.GrantedScope = tokScope
	p.Secrets.AccessToken, p.Secrets.RefreshToken, p.Secrets.AccessExpiry = access, refresh, expiry
	if err := s.Put(p); err != nil {
		t.Fatal(err)
	}
	return access, refresh
}

// noSecrets fails if text contains one of the secrets.
func noSecrets(t testing.TB, text string, secrets ...string) {
	t.Helper()
	for _, sec := range append(secrets, testmail.OAuthTestClientSecret) {
		if sec != "" && strings.Contains(text, sec) {
			t.Errorf("text contains a secret: %q", text)
		}
	}
}

// hammer calls get n times from each of g goroutines and returns the distinct tokens.
func hammer(t *testing.T, g, n int, get func() (string, error)) map[string]int {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for range n {
				tok, err := get()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[tok]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return seen
}

func TestTokenCachedThenOneRefresh(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	dir := t.TempDir()
	s := tokStore(t, dir)
	access, refresh := mintedSet(t, srv, s, "work", time.Now().Add(time.Hour))
	m := NewTokenManager(s, nil)
	ctx := context.Background()

	seen := hammer(t, 50, 20, func() (string, error) {
		tok, err := m.Token(ctx, "Work")
		if err != nil {
			return "", err
		}
		return tok.AccessToken, nil
	})
	if len(seen) != 1 || seen[access] != 1000 || srv.Counts().TokenRefresh != 0 {
		t.Fatalf("valid token: %d distinct tokens, %d refreshes; want the stored one, 0", len(seen), srv.Counts().TokenRefresh)
	}

	// The stored token is about to expire (within the margin): exactly one refresh.
	if err := s.Update("work", func(p *ParamSet) error {
		p.Secrets.AccessExpiry = time.Now().Add(30 * time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m = NewTokenManager(s, nil)
	seen = hammer(t, 50, 20, func() (string, error) {
		tok, err := m.Source("work").Token()
		if err != nil {
			return "", err
		}
		return tok.AccessToken, nil
	})
	if n := srv.Counts().TokenRefresh; n != 1 || len(seen) != 1 {
		t.Fatalf("after expiry: %d refreshes, %d distinct tokens; want 1, 1", n, len(seen))
	}
	for tok := range seen {
		if _, _, ok := srv.ValidAccessToken(tok); !ok || tok == access {
			t.Fatal("the refreshed access token is not a new valid one")
		}
	}
	p, err := s.Get("work")
	if err != nil {
		t.Fatal(err)
	}
	if p.Secrets.RefreshToken == refresh || p.Secrets.RefreshToken == "" {
		t.Fatal("the rotated refresh token was not saved")
	}
	if p.LastRefresh.IsZero() || p.GrantedScope != tokScope || p.Status(time.Now()).State != StateReady {
		t.Errorf("after refresh: LastRefresh %v, GrantedScope %q, Status %+v", p.LastRefresh, p.GrantedScope, p.Status(time.Now()))
	}

	// A fresh Store and manager use the rotated refresh token successfully.
	m2 := NewTokenManager(tokStore(t, dir), nil)
	tok, err := m2.ForceRefresh(ctx, "work", "")
	if err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	if _, _, ok := srv.ValidAccessToken(tok.AccessToken); !ok || srv.Counts().TokenRefresh != 2 {
		t.Fatalf("second refresh: valid %v, %d refreshes", ok, srv.Counts().TokenRefresh)
	}
	if tok.RefreshToken != "" {
		t.Error("Token handed out the refresh token")
	}
}

func TestTokenTwoStoresOneRefresh(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	dir := filepath.Join(t.TempDir(), "data")
	s1 := tokStore(t, dir)
	mintedSet(t, srv, s1, "work", time.Now().Add(-time.Minute))
	m1, m2 := NewTokenManager(s1, nil), NewTokenManager(tokStore(t, dir), nil)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 20 {
		m := m1
		if i%2 == 1 {
			m = m2
		}
		wg.Go(func() {
			tok, err := m.Token(ctx, "work")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[tok.AccessToken] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := srv.Counts().TokenRefresh; n != 1 || len(seen) != 1 {
		t.Fatalf("%d refreshes, %d distinct tokens; want 1, 1", n, len(seen))
	}
}

func TestTokenForceRefreshOnce(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	access, _ := mintedSet(t, srv, s, "work", time.Now().Add(time.Hour))
	m := NewTokenManager(s, nil)
	seen := hammer(t, 20, 5, func() (string, error) {
		tok, err := m.ForceRefresh(context.Background(), "work", access)
		if err != nil {
			return "", err
		}
		return tok.AccessToken, nil
	})
	if n := srv.Counts().TokenRefresh; n != 1 || len(seen) != 1 || seen[access] != 0 {
		t.Fatalf("%d refreshes, %d distinct tokens; want 1 new one", n, len(seen))
	}
}

func TestTokenInvalidGrantMarksSet(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	access, refresh := mintedSet(t, srv, s, "work", time.Now().Add(-time.Hour))
	srv.RevokeUser("alice@example.test")
	m := NewTokenManager(s, nil)
	_, err := m.Token(context.Background(), "work")
	pe, ok := errors.AsType[*ProviderError](err)
	if !ok || pe.Kind != KindInvalidGrant || pe.Temporary {
		t.Fatalf("err = %v, want an invalid_grant ProviderError", err)
	}
	noSecrets(t, err.Error(), access, refresh)
	p, _ := s.Get("work")
	if st := p.Status(time.Now()); st.State != StateTokenRevoked || p.LastError == "" {
		t.Fatalf("status %+v, LastError %q", st, p.LastError)
	}
	noSecrets(t, p.LastError+p.SignInNeeded, access, refresh)
	for range 5 {
		_, err = m.Token(context.Background(), "work")
		if err == nil || !strings.Contains(err.Error(), "Get Refresh Token") {
			t.Fatalf("again: err = %v", err)
		}
	}
	if _, err := NewTokenManager(s, nil).Token(context.Background(), "work"); err == nil {
		t.Fatal("another manager refreshed a marked set")
	}
	if n := srv.Counts().TokenRefresh; n != 1 {
		t.Fatalf("%d refreshes; a marked set must not be sent again", n)
	}
}

func TestTokenServerErrorTemporary(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	access, refresh := mintedSet(t, srv, s, "work", time.Now().Add(-time.Hour))
	srv.SetFailure(testmail.Failure{Kind: testmail.FailServerError, Count: 1})
	m := NewTokenManager(s, nil)
	_, err := m.Token(context.Background(), "work")
	pe, ok := errors.AsType[*ProviderError](err)
	if !ok || !pe.Temporary {
		t.Fatalf("err = %v, want a temporary ProviderError", err)
	}
	noSecrets(t, err.Error(), access, refresh)
	p, _ := s.Get("work")
	if st := p.Status(time.Now()); st.State != StateReady || p.Secrets.RefreshToken != refresh {
		t.Fatalf("a temporary failure changed the set: %+v", st)
	}
	if _, err := m.Token(context.Background(), "work"); err != nil {
		t.Fatalf("after the failure: %v", err)
	}
	if n := srv.Counts().TokenRefresh; n != 2 {
		t.Fatalf("%d refreshes, want 2", n)
	}
}

func TestTokenSlowAndCanceled(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	_, refresh := mintedSet(t, srv, s, "work", time.Now().Add(-time.Hour))
	srv.SetFailure(testmail.Failure{Kind: testmail.FailSlow, Delay: 10 * time.Second, Count: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := NewTokenManager(s, nil).Token(ctx, "work")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	p, _ := s.Get("work")
	if p.SignInNeeded != "" || p.Secrets.RefreshToken != refresh {
		t.Fatal("a canceled refresh changed the set")
	}
}

func TestTokenNoRefreshToken(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	if err := s.Put(serverSet(srv, "Home")); err != nil {
		t.Fatal(err)
	}
	_, err := NewTokenManager(s, nil).Token(context.Background(), "home")
	want := "parameter set Home has no refresh token: click Get Refresh Token (or `mailwright params authorize Home`)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if _, err := NewTokenManager(s, nil).Token(context.Background(), "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing set: %v", err)
	}
	if srv.Counts().TokenRefresh != 0 {
		t.Fatal("the server was asked")
	}
}

// A refresh stuck on a slow token endpoint holds only its own set's refresh lock: another
// process's store operations (here a second Store with a short lock timeout) go on.
func TestTokenSlowRefreshDoesNotBlockStore(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	dir := t.TempDir()
	s := tokStore(t, dir)
	mintedSet(t, srv, s, "slow", time.Now().Add(-time.Minute))
	srv.SetFailure(testmail.Failure{Kind: testmail.FailSlow, Delay: 1500 * time.Millisecond})

	m := NewTokenManager(s, nil)
	done := make(chan error, 1)
	go func() {
		_, err := m.Token(t.Context(), "slow")
		done <- err
	}()
	for srv.Counts().TokenRefresh == 0 { // wait until the refresh is at the token endpoint
		select {
		case err := <-done:
			t.Fatalf("refresh ended before reaching the slow endpoint: %v", err)
		case <-time.After(2 * time.Millisecond):
		}
	}
	other, err := Open(dir, StoreOptions{Backend: BackendFile, LockTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Put(ParamSet{Name: "meanwhile", ClientID: "c", AuthURL: srv.AuthURL, TokenURL: srv.TokenURL, Scope: tokScope}); err != nil {
		t.Fatalf("store blocked by a slow refresh: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("slow refresh: %v", err)
	}
	if got := srv.Counts().TokenRefresh; got != 1 {
		t.Fatalf("token endpoint refreshes = %d, want 1", got)
	}
}
