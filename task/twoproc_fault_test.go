package task

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
)

// twoProcSpec tells a child process of TestFaultTwoProcesses what to do.
type twoProcSpec struct {
	Dir   string // the shared data folder
	Role  string // "window" or "serve"
	Iters int
}

const (
	twoProcIters        = 40
	twoProcRefreshEvery = 4 // each process refreshes the shared set's token this often
	twoProcChildEnv     = "MAILWRIGHT_TWOPROC_FAULT_CHILD"
)

// TestFaultTwoProcesses runs two processes on one data folder at once, as the window and
// `mailwright serve` do: both keep changing the same parameter set (a counter, and token
// refreshes that rotate its refresh token), add sets of their own, and write the run
// history and checkpoints (runs with log lines; the window also reads the history and
// prunes it). Afterwards: no update is lost (the counter is exact, every set is there, the
// rotated refresh token still works — the harness's OAuth server revokes the grant if an
// old one is ever spent again), paramsets.json is valid, every run is in the history with
// its log and its checkpoints, and no operation failed (no "database is locked"). The
// children run with the race detector when the tests do.
func TestFaultTwoProcesses(t *testing.T) {
	oauth := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	dir := t.TempDir()
	store, err := oauthparams.Open(dir, oauthparams.StoreOptions{Backend: oauthparams.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	_, refresh := oauth.Mint("alice@example.test", "https://mail.test/imap")
	if err := store.Put(oauthparams.ParamSet{Name: "Shared", Account: "alice@example.test", ClientID: testmail.OAuthTestClientID,
		AuthURL: oauth.AuthURL, TokenURL: oauth.TokenURL, Scope: "https://mail.test/imap",
		ExtraParams: map[string]string{"count": "0"},
		Secrets:     oauthparams.Secrets{ClientSecret: testmail.OAuthTestClientSecret, RefreshToken: refresh}}); err != nil {
		t.Fatal(err)
	}
	h, err := OpenHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()

	var wg sync.WaitGroup
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	for i, role := range []string{"window", "serve"} {
		spec, _ := json.Marshal(twoProcSpec{Dir: dir, Role: role, Iters: twoProcIters})
		cmd := exec.Command(os.Args[0], "-test.run=^TestFaultTwoProcessChild$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), twoProcChildEnv+"="+string(spec))
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil || !bytes.Contains(outs[i], []byte("--- PASS: TestFaultTwoProcessChild")) {
			t.Fatalf("child %d: %v\n%s", i, errs[i], outs[i])
		}
	}

	// The parameter sets: valid file, no lost update.
	sets, err := store.List()
	if err != nil {
		t.Fatalf("paramsets.json after the two processes: %v", err)
	}
	if want := 1 + 2*twoProcIters; len(sets) != want {
		t.Fatalf("%d parameter sets, want %d", len(sets), want)
	}
	p, err := store.Get("Shared")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.ExtraParams["count"]; got != strconv.Itoa(2*twoProcIters) {
		t.Fatalf("shared counter %s, want %d: updates were lost", got, 2*twoProcIters)
	}
	refreshes := 2 * (twoProcIters / twoProcRefreshEvery)
	if n := oauth.Counts().TokenRefresh; n != refreshes {
		t.Fatalf("%d token refreshes reached the provider, want %d", n, refreshes)
	}
	if _, err := oauthparams.NewTokenManager(store, nil).ForceRefresh(context.Background(), "Shared", ""); err != nil {
		t.Fatalf("the stored refresh token no longer works (a rotated one was lost): %v", err)
	}

	// The history: every run, its log and its checkpoint.
	h, err = OpenHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, role := range []string{"window", "serve"} {
		runs, err := h.Runs(role+" task", 1000)
		if err != nil || len(runs) != twoProcIters {
			t.Fatalf("%s: %d runs in the history, want %d (%v)", role, len(runs), twoProcIters, err)
		}
		for _, r := range runs {
			_, lines, err := h.Run(r.ID)
			if err != nil || r.Outcome != OutcomeSuccess || len(lines) < 3 {
				t.Fatalf("%s run %s: %s, %d log lines, %v", role, r.ID, r.Outcome, len(lines), err)
			}
		}
		if v, ok, err := h.Checkpoints(role + " task").Load("progress"); !ok || v != strconv.Itoa(twoProcIters) || err != nil {
			t.Fatalf("%s checkpoint %q %v %v", role, v, ok, err)
		}
	}
}

// twoProcNote is a step that logs a line and stores a checkpoint.
type twoProcNote struct{}

func (twoProcNote) Schema() actions.Schema {
	return actions.Schema{ID: "fault.note", Title: "Note", Params: []actions.Param{{Name: "n", Label: "N", Kind: actions.KindText}}}
}

func (twoProcNote) Run(_ context.Context, env *actions.Env) error {
	env.Logger().Info("note", "n", env.Params.String("n"))
	return env.State.Store("progress", env.Params.String("n"))
}

// TestFaultTwoProcessChild is one process of TestFaultTwoProcesses; any error fails it.
func TestFaultTwoProcessChild(t *testing.T) {
	raw := os.Getenv(twoProcChildEnv)
	if raw == "" {
		return // only as a child
	}
	var spec twoProcSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := oauthparams.Open(spec.Dir, oauthparams.StoreOptions{Backend: oauthparams.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	tm := oauthparams.NewTokenManager(store, nil)
	h, err := OpenHistory(spec.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	reg := actions.NewRegistry()
	if err := reg.Register(twoProcNote{}); err != nil {
		t.Fatal(err)
	}
	eng := &Engine{DataDir: spec.Dir, Registry: reg, History: h}
	for i := 1; i <= spec.Iters; i++ {
		if err := store.Update("Shared", func(p *oauthparams.ParamSet) error {
			n, err := strconv.Atoi(p.ExtraParams["count"])
			if err != nil {
				return err
			}
			p.ExtraParams["count"] = strconv.Itoa(n + 1)
			return nil
		}); err != nil {
			t.Fatalf("%s: update %d: %v", spec.Role, i, err)
		}
		if i%twoProcRefreshEvery == 0 {
			if _, err := tm.ForceRefresh(ctx, "Shared", ""); err != nil {
				t.Fatalf("%s: refresh %d: %v", spec.Role, i, err)
			}
		}
		if err := store.Put(oauthparams.ParamSet{Name: fmt.Sprintf("%s %d", spec.Role, i), ClientID: "c", AuthURL: "https://a.test/auth",
			TokenURL: "https://a.test/token", Scope: "s"}); err != nil {
			t.Fatalf("%s: put %d: %v", spec.Role, i, err)
		}
		tk := &Task{Name: spec.Role + " task", Steps: []Step{{Action: "fault.note", Params: map[string]string{"n": strconv.Itoa(i)}}}}
		res, err := eng.Run(ctx, tk, RunOptions{Trigger: spec.Role})
		if err != nil || res.Outcome != OutcomeSuccess {
			t.Fatalf("%s: run %d: %v %+v", spec.Role, i, err, res)
		}
		if spec.Role == "window" { // the window lists runs and prunes old ones meanwhile
			if _, err := h.Runs("", 50); err != nil {
				t.Fatalf("window: read history: %v", err)
			}
			if _, err := h.Prune(time.Now().Add(-24 * time.Hour)); err != nil {
				t.Fatalf("window: prune: %v", err)
			}
			if _, err := store.List(); err != nil {
				t.Fatalf("window: list sets: %v", err)
			}
		}
	}
}
