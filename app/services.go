package app

import (
	"fmt"
	"sync"

	"fyne.io/fyne/v2"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/oauthparams"
	"github.com/mailwright/mailwright/task"
)

// Services are the packages every screen calls — the same ones the CLI uses. Open them
// once (OpenServices does file I/O: call it off the UI goroutine or before the window
// shows) and hand them to the screens.
type Services struct {
	DataDir string
	// Params is the parameter-set store; nil when it could not be opened, and then
	// ParamsErr says why (shown on the Parameter sets screen).
	Params    *oauthparams.Store
	ParamsErr error
	Tokens    *oauthparams.TokenManager // nil when Params is nil
	Tasks     *task.Store
	Registry  *actions.Registry
	History   *task.History
	Engine    *task.Engine

	// uiMu serialises the widget updates screens make from background goroutines (see do).
	uiMu *sync.Mutex
}

// do runs f on the UI goroutine (fyne.Do) while holding the UI lock. With the desktop
// driver the lock is never contended; under the headless test driver, which runs fyne.Do
// callbacks on the calling goroutine, tests take the same lock to read widgets. Call it
// only from background goroutines, never from inside f or a UI handler.
func (s *Services) do(f func()) {
	mu := s.uiMu
	fyne.Do(func() {
		if mu != nil {
			mu.Lock()
			defer mu.Unlock()
		}
		f()
	})
}

// OpenServices opens the stores of dataDir. passphrase is the secrets-file passphrase
// (MAILWRIGHT_PASSPHRASE), empty for the keyring or key-file backends. A parameter store
// that cannot be opened is not fatal (ParamsErr); a history that cannot be opened is.
func OpenServices(dataDir, passphrase string) (*Services, error) {
	s := &Services{DataDir: dataDir, Tasks: task.NewStore(dataDir), Registry: actions.NewDefaultRegistry(), uiMu: &sync.Mutex{}}
	s.Params, s.ParamsErr = oauthparams.Open(dataDir, oauthparams.StoreOptions{Passphrase: passphrase})
	var tokens actions.TokenProvider
	if s.ParamsErr == nil {
		s.Tokens = oauthparams.NewTokenManager(s.Params, nil)
		tokens = actions.NewTokenProvider(s.Params, s.Tokens)
	}
	h, err := task.OpenHistory(dataDir)
	if err != nil {
		return nil, fmt.Errorf("open run history: %w", err)
	}
	s.History = h
	s.Engine = &task.Engine{DataDir: dataDir, Registry: s.Registry, Tokens: tokens, History: h, Tasks: s.Tasks}
	return s, nil
}

// Close releases what OpenServices opened.
func (s *Services) Close() error {
	if s.History != nil {
		return s.History.Close()
	}
	return nil
}
