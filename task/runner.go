package task

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/mailwright/mailwright/actions"
)

// Runner runs tasks. One Runner serves many runs; it holds no per-run state.
type Runner struct {
	Registry *actions.Registry
	// Tokens gives access tokens of OAuth parameter sets (nil: runs have none).
	Tokens actions.TokenProvider
	// State returns the checkpoint store of a task (nil: loops keep no checkpoints).
	State func(taskName string) actions.StateStore
	// Log receives the runs' log lines; nil discards them.
	Log *slog.Logger
	// Events receives progress as the run goes; nil ignores it. Called on the run's
	// goroutine: keep it quick.
	Events func(Event)
	// DataDir is the {DataDir} built-in.
	DataDir string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits between retries; nil means a timer honouring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
}

// The run outcomes.
const (
	OutcomeSuccess   = "success"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
)

// RunOptions are the inputs of one run.
type RunOptions struct {
	Vars    map[string]string // overrides of task variables (--var)
	RunID   string            // empty: a random one
	Trigger string            // what started the run ("manual", "cron", …)
	// Events, if set, also receives this run's progress (the GUI's run view).
	Events func(Event)
	// LogHandler, if set, also receives this run's log lines (Engine.Run only).
	LogHandler slog.Handler
	// DryRun connects and reads but changes nothing on servers and sends nothing; loops
	// see their checkpoints but do not advance them.
	DryRun bool

	failureDepth int // >0 for a run started by on_error.run_task
}

// Result is how a run went.
type Result struct {
	RunID    string
	Task     string
	Start    time.Time
	End      time.Time
	Outcome  string
	Err      error // the error that ended the run, nil on success
	Steps    int   // steps run (each loop iteration's body steps count)
	Items    int   // loop items handled
	Failures int   // failed steps, including those whose policy was continue
}

// EventKind tells what an Event reports.
type EventKind string

// The event kinds.
const (
	EventStepStart EventKind = "step_start"
	EventStepDone  EventKind = "step_done"
	EventItem      EventKind = "item" // a loop moved to its next item
	EventProgress  EventKind = "progress"
)

// Event is one progress report of a run.
type Event struct {
	Kind  EventKind
	Path  string // e.g. steps[2].body[0]
	Title string // the action's title or the step's label
	Index int    // item number (1-based) for EventItem; done for EventProgress
	Total int    // items or bytes in all, 0 when unknown
	What  string // progress text
	Err   error  // for EventStepDone: the step's error, if any
}

// run is one run's state.
type run struct {
	r        *Runner
	task     *Task
	res      *Result
	vars     map[string]string
	sessions *actions.Sessions
	state    actions.StateStore
	log      *slog.Logger
	dryRun   bool
}

// Run validates t and runs it. It returns when the run ends: all steps done, a step failed
// under the stop policy, or ctx was cancelled (then at the next safe point: between steps
// or between loop items, with the current step's connection closed). Open connections are
// closed at the end either way.
func (r *Runner) Run(ctx context.Context, t *Task, opts RunOptions) *Result {
	r = r.withEvents(opts.Events)
	now := r.now()
	res := &Result{RunID: opts.RunID, Task: t.Name, Start: now}
	if res.RunID == "" {
		res.RunID = newRunID(now)
	}
	names := make([]string, 0, len(opts.Vars))
	for n := range opts.Vars {
		names = append(names, n)
	}
	if err := Validate(t, r.Registry, names...); err != nil {
		return r.finish(res, err)
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ru := &run{r: r, task: t, res: res, sessions: actions.NewSessions(),
		log: log.With("task", t.Name, "run", res.RunID)}
	if r.State != nil {
		ru.state = r.State(t.Name)
	}
	if opts.DryRun {
		ru.dryRun = true
		ru.state = &dryState{under: ru.state, mem: map[string]string{}}
		ru.log = ru.log.With("dry_run", true)
	}
	ru.vars = map[string]string{
		"Date": now.Format("2006-01-02"), "Time": now.Format("15-04-05"),
		"TaskName": t.Name, "RunID": res.RunID, "DataDir": r.DataDir, "LastError": "", "LastErrorStep": "",
		"FailedTask": "", "FailedRunID": "", "FailedError": "", "FailedStep": "",
	}
	for _, v := range t.Variables {
		ru.vars[v.Name] = v.Default
	}
	for k, v := range opts.Vars {
		ru.vars[k] = v
	}
	ru.log.Info("run started", "trigger", opts.Trigger)
	err := ru.steps(ctx, "steps", t.Steps)
	ru.sessions.CloseAll(ru.log)
	return r.finish(res, err)
}

func (r *Runner) finish(res *Result, err error) *Result {
	res.End = r.now()
	res.Err = err
	switch {
	case err == nil:
		res.Outcome = OutcomeSuccess
	case errors.Is(err, context.Canceled):
		res.Outcome = OutcomeCancelled
	default:
		res.Outcome = OutcomeFailed
	}
	return res
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) emit(e Event) {
	if r.Events != nil {
		r.Events(e)
	}
}

// withEvents returns a copy of r that also sends events to extra.
func (r *Runner) withEvents(extra func(Event)) *Runner {
	if extra == nil {
		return r
	}
	c := *r
	prev := r.Events
	c.Events = func(e Event) {
		if prev != nil {
			prev(e)
		}
		extra(e)
	}
	return &c
}

func newRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// steps runs a list of steps; it returns the error that must end the enclosing list
// (stop policy, cancellation), or nil.
func (ru *run) steps(ctx context.Context, path string, steps []Step) error {
	for i := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := &steps[i]
		if s.Disabled {
			continue
		}
		p := path + "[" + strconv.Itoa(i) + "]"
		if err := ru.step(ctx, p, s); err != nil {
			return err
		}
	}
	return nil
}

// policy returns the error policy of s (its own, else the task's, else stop).
func (ru *run) policy(s *Step) OnError {
	switch {
	case s.OnError != nil && s.OnError.Policy != "":
		return *s.OnError
	case ru.task.OnError != nil && ru.task.OnError.Policy != "":
		return *ru.task.OnError
	}
	return OnError{Policy: PolicyStop}
}

// dryState reads the real checkpoints but keeps writes in memory, so a dry run sees what
// a real run would and moves nothing forward.
type dryState struct {
	under actions.StateStore
	mem   map[string]string
}

func (d *dryState) Load(key string) (string, bool, error) {
	if v, ok := d.mem[key]; ok {
		return v, true, nil
	}
	if d.under == nil {
		return "", false, nil
	}
	return d.under.Load(key)
}

func (d *dryState) Store(key, value string) error {
	d.mem[key] = value
	return nil
}
