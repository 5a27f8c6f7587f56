package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/gofrs/flock"

	"github.com/mailwright/mailwright/actions"
)

// ErrAlreadyRunning is returned (wrapped) when a run of the same task is in progress, in
// this process or another (the window, the CLI, mailwright serve).
var ErrAlreadyRunning = errors.New("task is already running")

// Engine runs tasks of one data folder with history, checkpoints and one-run-per-task
// locking. The CLI, the window and the scheduler all run tasks through it.
type Engine struct {
	DataDir  string
	Registry *actions.Registry
	Tokens   actions.TokenProvider
	History  *History
	// Log receives every line (besides the history); nil: history only.
	Log *slog.Logger
	// Events receives progress; nil ignores it.
	Events func(Event)
	// Tasks finds the task an on_error.run_task names; nil disables that policy.
	Tasks *Store
}

// Run runs t once. A run of a task already running is refused with ErrAlreadyRunning. The
// run, its outcome and its log lines are recorded in the history whatever happens; the
// returned error is only about the engine itself (lock, history), the run's own failure is
// in the Result.
func (e *Engine) Run(ctx context.Context, t *Task, opts RunOptions) (*Result, error) {
	unlock, err := e.lock(t.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r := &Runner{Registry: e.Registry, Tokens: e.Tokens, Events: e.Events, DataDir: e.DataDir,
		State: func(name string) actions.StateStore { return e.History.Checkpoints(name) }}
	now := r.now()
	if opts.RunID == "" {
		opts.RunID = newRunID(now)
	}
	if opts.Trigger == "" {
		opts.Trigger = "manual"
	}
	if err := e.History.BeginRun(ctx, opts.RunID, t.Name, opts.Trigger, now); err != nil {
		return nil, err
	}
	rl := e.History.NewRunLog(opts.RunID)
	var next slog.Handler
	if e.Log != nil {
		next = e.Log.Handler()
	}
	if opts.LogHandler != nil {
		if next == nil {
			next = opts.LogHandler
		} else {
			next = teeHandler{next, opts.LogHandler}
		}
	}
	r.Log = slog.New(rl.Handler(next))
	res := r.Run(ctx, t, opts)
	if res.Err != nil {
		r.Log.Error("run ended", "outcome", res.Outcome, "error", res.Err.Error())
	} else {
		r.Log.Info("run ended", "outcome", res.Outcome, "steps", res.Steps, "items", res.Items)
	}
	ferr := rl.Flush()
	if err := e.History.EndRun(res); err != nil {
		return res, err
	}
	if res.Outcome == OutcomeFailed && t.OnError != nil && t.OnError.RunTask != "" {
		e.runFailureTask(ctx, t, res, opts, r.Log)
		if err := rl.Flush(); ferr == nil {
			ferr = err
		}
	}
	return res, ferr
}

// runFailureTask runs the task named by t's on_error.run_task after a failed run, with the
// failure as variables. A failure task's own failure does not start another (no chains).
func (e *Engine) runFailureTask(ctx context.Context, t *Task, res *Result, opts RunOptions, log *slog.Logger) {
	if opts.failureDepth > 0 || e.Tasks == nil {
		return
	}
	ft, err := e.Tasks.Get(t.OnError.RunTask)
	if err != nil {
		log.Error("on_error.run_task: cannot load the failure task", "run_task", t.OnError.RunTask, "error", err.Error())
		return
	}
	step := ""
	var se *StepError
	if errors.As(res.Err, &se) {
		step = se.Path + " (" + se.Title + ")"
	}
	vars := map[string]string{"FailedTask": t.Name, "FailedRunID": res.RunID, "FailedError": res.Err.Error(), "FailedStep": step}
	fres, err := e.Run(ctx, ft, RunOptions{Vars: vars, Trigger: "on failure of " + t.Name, failureDepth: opts.failureDepth + 1})
	switch {
	case err != nil:
		log.Error("on_error.run_task could not run", "run_task", ft.Name, "error", err.Error())
	case fres.Err != nil:
		log.Error("on_error.run_task failed too", "run_task", ft.Name, "run", fres.RunID, "error", fres.Err.Error())
	default:
		log.Info("on_error.run_task ran", "run_task", ft.Name, "run", fres.RunID)
	}
}

// lock takes the task's run lock without waiting.
func (e *Engine) lock(name string) (func(), error) {
	dir := filepath.Join(e.DataDir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock task %q: %w", name, err)
	}
	fl := flock.New(filepath.Join(dir, strings.TrimSuffix(FileName(name), ".json")+".lock"))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock task %q: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q has a run in progress (in this or another Mailwright process); wait for it to finish or stop it", ErrAlreadyRunning, name)
	}
	return func() { _ = fl.Unlock() }, nil
}

// teeHandler sends records to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if t.a.Enabled(ctx, r.Level) {
		err = t.a.Handle(ctx, r.Clone())
	}
	if t.b.Enabled(ctx, r.Level) {
		if e := t.b.Handle(ctx, r.Clone()); err == nil {
			err = e
		}
	}
	return err
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t.a.WithAttrs(as), t.b.WithAttrs(as)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t.a.WithGroup(name), t.b.WithGroup(name)}
}
