package actions

import (
	"context"
	"log/slog"
	"os"
)

// Kind is the kind of an action parameter; the GUI picks a widget from it and the task
// engine validates values against it.
type Kind string

// The parameter kinds.
const (
	KindText       Kind = "text"       // one line of text
	KindMultiline  Kind = "multiline"  // several lines (a body, a SEARCH expression)
	KindNumber     Kind = "number"     // an integer
	KindBool       Kind = "bool"       // "true" or "false"
	KindEnum       Kind = "enum"       // one of Param.Choices
	KindFile       Kind = "file"       // a file path (or glob, where the help says so)
	KindFolder     Kind = "folder"     // a local folder path
	KindParamSet   Kind = "paramset"   // the name of an OAuth parameter set
	KindConnection Kind = "connection" // the name of an open IMAP/POP3 connection in the run
	KindDuration   Kind = "duration"   // a Go duration such as "30s" or "5m"
	KindSecret     Kind = "secret"     // a password: masked in the GUI, never logged
)

// Param describes one parameter of an action.
type Param struct {
	Name     string   // key in the task file and in Values, e.g. "host"
	Label    string   // shown in the GUI form, e.g. "Host"
	Kind     Kind     // widget and validation
	Default  string   // value used when the step leaves the parameter empty
	Required bool     // the step must give a non-empty value (after expansion)
	Choices  []string // allowed values for KindEnum
	Help     string   // one or two sentences for the form's tooltip and the docs
	Advanced bool     // shown under "Advanced" in the form
}

// Output describes a variable an action sets.
type Output struct {
	Name string // variable name, e.g. "MessageSubject"
	Help string // what it holds
}

// Schema is what an action declares about itself: the GUI renders its form from it, the
// variable picker offers its outputs and the task engine validates steps against it.
type Schema struct {
	ID       string   // stable identifier used in task files, e.g. "imap.open"
	Title    string   // shown in the GUI, e.g. "IMAP Open"
	Group    string   // palette group: "IMAP", "POP3", "SMTP", "Email"
	Help     string   // a paragraph for the docs and the GUI
	Params   []Param  // in form order
	Outputs  []Output // variables set by Run (or per item, for a loop)
	IsLoop   bool     // the action is a Looper: the engine runs a body of steps per item
	Sessions string   // "imap", "pop3" or "smtp" when the action uses a named session
}

// Param returns the parameter named name, if the schema has one.
func (s Schema) Param(name string) (Param, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Action is one verb users build tasks from.
type Action interface {
	// Schema describes the action. It is constant.
	Schema() Schema
	// Run does the work once. It honours ctx: cancelling ctx makes it return promptly
	// (closing a connection if the protocol library has no context support).
	Run(ctx context.Context, env *Env) error
}

// Looper is an action that yields items (messages); the engine runs the loop's body once
// per item. Run of a Looper is not called by the engine.
type Looper interface {
	Action
	// Loop starts the iteration. The returned Iterator belongs to this run of the step.
	Loop(ctx context.Context, env *Env) (Iterator, error)
}

// Iterator yields a loop's items. The engine calls Next, runs the body, then Commit with
// whether the body succeeded, and finally Close (also after an error or cancel).
type Iterator interface {
	// Next moves to the next item, sets the item's output variables with env.Set and makes
	// it the run's current message (env.Sessions.SetCurrent). It returns false at the end.
	Next(ctx context.Context) (bool, error)
	// Commit records that the body ran for the current item: ok is true when every body
	// step succeeded. Only then may the item be marked (e.g. \Seen) and counted as done in
	// the checkpoint; a failed item is left for the next run.
	Commit(ctx context.Context, ok bool) error
	// Close ends the iteration; it does not close the session.
	Close() error
}

// Env is what a step gets when it runs.
type Env struct {
	// Params holds the step's parameters, already expanded ({variables} replaced). Read
	// them through Values' typed getters, which apply the schema's defaults.
	Params Values
	// Sessions are the run's open connections and its current loop message.
	Sessions *Sessions
	// Log receives the step's log lines. Never log secrets.
	Log *slog.Logger
	// Tokens gives access tokens of OAuth parameter sets. Nil when the run has none.
	Tokens TokenProvider
	// State keeps checkpoints across runs (e.g. the last UID a loop handled). Nil when the
	// run keeps none (then "only new" options fail with a clear error).
	State StateStore
	// Set sets an output variable. Nil means outputs are dropped.
	Set func(name, value string)
	// Get reads a variable of the run (used for defaults such as the loop's message).
	Get func(name string) (string, bool)
	// Progress reports long work (done of total, total 0 when unknown). May be nil.
	Progress func(done, total int64, what string)
	// DryRun asks for a run that changes nothing on servers and sends nothing: steps that
	// would set flags, move, delete or send log what they would do and return nil. Reads,
	// downloads and parsing still happen (they change only local files).
	DryRun bool

	// createTemp, when set (tests only), replaces os.CreateTemp for the spool files of
	// messages fetched ahead; see Env.tempFile.
	createTemp func() (*os.File, error)
}

// tempFile creates a temporary file for a step's own scratch data (never the user's
// copy of anything): in the system's temporary folder.
func (e *Env) tempFile(pattern string) (*os.File, error) {
	if e != nil && e.createTemp != nil {
		return e.createTemp()
	}
	return os.CreateTemp("", pattern)
}

// SkipDryRun logs what a step would do and reports whether it must stop there because the
// run is a dry run.
func (e *Env) SkipDryRun(what string, args ...any) bool {
	if e == nil || !e.DryRun {
		return false
	}
	e.Logger().Info("dry run: would "+what, args...)
	return true
}

// SetVar sets an output variable if the env has a setter.
func (e *Env) SetVar(name, value string) {
	if e != nil && e.Set != nil {
		e.Set(name, value)
	}
}

// Logger returns e.Log or a logger that discards.
func (e *Env) Logger() *slog.Logger {
	if e == nil || e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// ReportProgress calls e.Progress if set.
func (e *Env) ReportProgress(done, total int64, what string) {
	if e != nil && e.Progress != nil {
		e.Progress(done, total, what)
	}
}

// StateStore keeps small values across runs for one step (the task engine scopes keys to
// the task and step, and commits each Put durably before returning).
type StateStore interface {
	// Load returns the value stored under key, or false.
	Load(key string) (string, bool, error)
	// Store saves value under key durably.
	Store(key, value string) error
}

// scopeState returns a copy of e whose State keys all start with prefix (nil State stays
// nil), so an action can keep one record per mailbox within the task's store.
func (e *Env) scopeState(prefix string) *Env {
	if e.State == nil {
		return e
	}
	c := *e
	c.State = scopedState{under: e.State, prefix: prefix}
	return &c
}

type scopedState struct {
	under  StateStore
	prefix string
}

func (s scopedState) Load(key string) (string, bool, error) { return s.under.Load(s.prefix + key) }
func (s scopedState) Store(key, value string) error         { return s.under.Store(s.prefix+key, value) }
