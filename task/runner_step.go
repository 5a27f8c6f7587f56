package task

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailwright/mailwright/actions"
)

// DefaultBackoff is the first wait of the retry policy when the task sets none.
const DefaultBackoff = 5 * time.Second

// StepError is a failed step: where it is, which action, and why.
type StepError struct {
	Path   string // e.g. steps[2].body[0]
	Title  string // the step's label, or its action's title
	Action string // the action ID
	Err    error
}

// Error implements error.
func (e *StepError) Error() string {
	return fmt.Sprintf("%s (%s): %v", e.Path, e.Title, e.Err)
}

// Unwrap returns the action's error.
func (e *StepError) Unwrap() error { return e.Err }

// step runs one step under its error policy.
func (ru *run) step(ctx context.Context, path string, s *Step) error {
	a, _ := ru.r.Registry.Get(s.Action) // Validate has checked it exists
	sc := a.Schema()
	title := s.Label
	if title == "" {
		title = sc.Title
	}
	pol := ru.policy(s)
	backoff := DefaultBackoff
	if d, err := time.ParseDuration(pol.Backoff); err == nil && d > 0 {
		backoff = d
	}
	var err error
	for attempt := 0; ; attempt++ {
		ru.r.emit(Event{Kind: EventStepStart, Path: path, Title: title})
		ru.res.Steps++
		err = ru.once(ctx, path, s, a)
		if err == nil || ctx.Err() != nil || pol.Policy != PolicyRetry || attempt >= pol.Retries || !actions.Temporary(err) {
			break
		}
		wait := backoff << attempt
		ru.log.Warn("step failed with a temporary error; retrying", "step", path, "action", sc.ID, "attempt", attempt+1, "wait", wait.String(), "error", err.Error())
		if serr := ru.sleep(ctx, wait); serr != nil {
			err = serr
			break
		}
	}
	ru.r.emit(Event{Kind: EventStepDone, Path: path, Title: title, Err: err})
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		ru.log.Info("run cancelled", "step", path)
		return fmt.Errorf("cancelled during %s (%s): %w", path, title, cerr)
	}
	ru.res.Failures++
	serr := &StepError{Path: path, Title: title, Action: sc.ID, Err: err}
	ru.vars["LastError"] = err.Error()
	ru.vars["LastErrorStep"] = path + " (" + title + ")"
	if pol.Policy == PolicyContinue {
		ru.log.Warn("step failed; continuing as its policy says", "step", path, "action", sc.ID, "error", err.Error())
		return nil
	}
	ru.log.Error("step failed", "step", path, "action", sc.ID, "error", err.Error())
	return serr
}

func (ru *run) sleep(ctx context.Context, d time.Duration) error {
	if ru.r.Sleep != nil {
		return ru.r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// once runs a step one time: expand its params, resolve them, run the action (or drive
// the loop).
func (ru *run) once(ctx context.Context, path string, s *Step, a actions.Action) error {
	sc := a.Schema()
	expanded := make(map[string]string, len(s.Params))
	for k, v := range s.Params {
		x, err := Expand(v, ru.lookup)
		if err != nil {
			if p, ok := sc.Param(k); ok && p.Kind == actions.KindSecret {
				return fmt.Errorf("parameter %q: %s", k, secretRefProblem) // the error would quote the secret
			}
			return fmt.Errorf("parameter %q: %w", k, err)
		}
		expanded[k] = x
	}
	vals, err := sc.Resolve(expanded)
	if err != nil {
		return err
	}
	env := &actions.Env{
		Params:   vals,
		Sessions: ru.sessions,
		Log:      ru.log.With("step", path, "action", sc.ID),
		Tokens:   ru.r.Tokens,
		State:    ru.state,
		Set:      func(name, value string) { ru.vars[name] = value },
		Get:      ru.lookup,
		DryRun:   ru.dryRun,
		Progress: func(done, total int64, what string) {
			ru.r.emit(Event{Kind: EventProgress, Path: path, Title: sc.Title, Index: int(done), Total: int(total), What: what})
		},
	}
	l, isLoop := a.(actions.Looper)
	if !isLoop {
		return a.Run(ctx, env)
	}
	return ru.loop(ctx, path, s, l, env)
}

func (ru *run) lookup(name string) (string, bool) {
	v, ok := ru.vars[name]
	return v, ok
}

// loop drives a loop action: per item the body runs, then the item is committed with
// whether every body step succeeded (only then is it marked done in the checkpoint).
func (ru *run) loop(ctx context.Context, path string, s *Step, l actions.Looper, env *actions.Env) (err error) {
	it, err := l.Loop(ctx, env)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		more, err := it.Next(ctx)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		ru.res.Items++
		ru.r.emit(Event{Kind: EventItem, Path: path, Title: l.Schema().Title, Index: n})
		before := ru.res.Failures
		berr := ru.steps(ctx, path+".body", s.Body)
		ok := berr == nil && ru.res.Failures == before
		// The body's outcome is committed even when the run was cancelled meanwhile: a
		// message whose body succeeded must count as done.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		cerr := it.Commit(cctx, ok)
		cancel()
		if berr != nil {
			if cerr != nil {
				return errors.Join(berr, cerr)
			}
			return berr
		}
		if cerr != nil {
			return fmt.Errorf("record message %d as done: %w", n, cerr)
		}
	}
}
