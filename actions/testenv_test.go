package actions

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
)

// testEnv is a tiny stand-in for the task engine (issue 5): it resolves params against the
// schema, keeps variables, a state store in memory and the run's sessions, and drives
// loops. Actions are tested through it exactly as the engine will call them.
type testEnv struct {
	t        testing.TB
	Sessions *Sessions
	Tokens   TokenProvider
	State    *memState
	mu       sync.Mutex
	Vars     map[string]string
	Logs     *strings.Builder
	log      *slog.Logger
	// createTemp, when set, replaces os.CreateTemp for the steps' scratch files.
	createTemp func() (*os.File, error)
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	logs := &strings.Builder{}
	te := &testEnv{t: t, Sessions: NewSessions(), State: &memState{m: map[string]string{}}, Vars: map[string]string{}, Logs: logs}
	te.log = slog.New(slog.NewTextHandler(&lockedWriter{b: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() { te.Sessions.CloseAll(te.log) })
	return te
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// env builds the Env for one step of action a with raw params; params are validated
// against a's schema like the engine does.
func (te *testEnv) env(a Action, raw map[string]string) (*Env, error) {
	vals, err := a.Schema().Resolve(raw)
	if err != nil {
		return nil, err
	}
	return &Env{
		Params:   vals,
		Sessions: te.Sessions,
		Log:      te.log.With("step", a.Schema().ID),
		Tokens:   te.Tokens,
		State:    te.State,

		createTemp: te.createTemp,
		Set: func(name, value string) {
			te.mu.Lock()
			te.Vars[name] = value
			te.mu.Unlock()
		},
		Get: func(name string) (string, bool) {
			te.mu.Lock()
			defer te.mu.Unlock()
			v, ok := te.Vars[name]
			return v, ok
		},
	}, nil
}

// Var returns a variable set by an action.
func (te *testEnv) Var(name string) string {
	te.mu.Lock()
	defer te.mu.Unlock()
	return te.Vars[name]
}

// run runs one step.
func (te *testEnv) run(ctx context.Context, a Action, raw map[string]string) error {
	env, err := te.env(a, raw)
	if err != nil {
		return err
	}
	return a.Run(ctx, env)
}

// mustRun runs one step and fails the test on error.
func (te *testEnv) mustRun(a Action, raw map[string]string) {
	te.t.Helper()
	if err := te.run(context.Background(), a, raw); err != nil {
		te.t.Fatalf("%s: %v", a.Schema().Title, err)
	}
}

// loop drives a Looper like the engine: for each item it calls body (which may run other
// steps through te) and commits with whether body returned nil. A body error does not stop
// the loop unless stopOnError. It returns the number of items and the first error of
// Loop/Next/Commit.
func (te *testEnv) loop(ctx context.Context, a Looper, raw map[string]string, stopOnError bool, body func(i int) error) (int, error) {
	env, err := te.env(a, raw)
	if err != nil {
		return 0, err
	}
	it, err := a.Loop(ctx, env)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for {
		ok, err := it.Next(ctx)
		if err != nil {
			return n, err
		}
		if !ok {
			return n, nil
		}
		berr := body(n)
		n++
		if err := it.Commit(ctx, berr == nil); err != nil {
			return n, err
		}
		if berr != nil && stopOnError {
			return n, fmt.Errorf("body: %w", berr)
		}
	}
}

// memState is a StateStore in memory.
type memState struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memState) Load(key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok, nil
}

func (s *memState) Store(key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = value
	return nil
}

// oauthRig is Dovecot with OAuth logins plus a real parameter-set store whose set "Local"
// holds a refresh token from the harness's OAuth server; te.Tokens is wired to it.
type oauthRig struct {
	*oauthDovecot
	store *oauthparams.Store
	tm    *oauthparams.TokenManager
}

// oauthTestScope covers IMAP, POP3 and SMTP on the harness.
const oauthTestScope = "https://mail.test/imap https://mail.test/pop https://mail.test/smtp"

func startOAuthRig(t testing.TB, te *testEnv) *oauthRig {
	t.Helper()
	tt, ok := t.(*testing.T)
	if !ok {
		t.Fatal("startOAuthRig needs a *testing.T")
	}
	rig := &oauthRig{oauthDovecot: startOAuthDovecot(tt)}
	store, err := oauthparams.Open(t.TempDir(), oauthparams.StoreOptions{Backend: "file"})
	if err != nil {
		t.Fatal(err)
	}
	_, refresh := rig.oauth.Mint(rig.user, oauthTestScope)
	if err := store.Put(oauthparams.ParamSet{Name: "Local", Account: rig.user, ClientID: testmail.OAuthTestClientID,
		AuthURL: rig.oauth.AuthURL, TokenURL: rig.oauth.TokenURL, Scope: oauthTestScope, GrantedScope: oauthTestScope,
		Secrets: oauthparams.Secrets{ClientSecret: testmail.OAuthTestClientSecret, RefreshToken: refresh}}); err != nil {
		t.Fatal(err)
	}
	rig.store = store
	rig.tm = oauthparams.NewTokenManager(store, nil)
	te.Tokens = NewTokenProvider(store, rig.tm)
	return rig
}

// LoadScoped reads key under whatever per-mailbox prefix a loop gave it (there must be
// exactly one mailbox with that key in the store).
func (s *memState) LoadScoped(key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for k, v := range s.m {
		if strings.HasSuffix(k, ":"+key) {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		return "", false, nil
	}
	return found[0], true, nil
}
