package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Version is the task file format this build reads and writes.
const Version = 1

// Task is one automation: steps run in order, started by hand or by its triggers. It is
// stored as JSON, one file per task in the data folder.
type Task struct {
	Version     int        `json:"version"`
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Enabled     bool       `json:"enabled"`
	Triggers    []Trigger  `json:"triggers,omitempty"`
	Variables   []Variable `json:"variables,omitempty"`
	Steps       []Step     `json:"steps"`
	// OnError is the task-wide error policy; a step's own OnError wins over it.
	OnError *OnError `json:"on_error,omitempty"`
}

// Variable is a task variable with its default value; `--var NAME=VALUE` overrides it.
type Variable struct {
	Name        string `json:"name"`
	Default     string `json:"default,omitempty"`
	Description string `json:"description,omitempty"`
}

// Step is one action of a task. A loop action's Body runs once per item.
type Step struct {
	Action   string            `json:"action"`
	Label    string            `json:"label,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	Body     []Step            `json:"body,omitempty"`
	OnError  *OnError          `json:"on_error,omitempty"`
	Disabled bool              `json:"disabled,omitempty"`
}

// The error policies.
const (
	PolicyStop     = "stop"     // end the run as failed (the default)
	PolicyContinue = "continue" // log, set {LastError}, go on with the next step
	PolicyRetry    = "retry"    // retry temporary errors Retries times with backoff, then stop
)

// OnError says what happens when a step fails.
type OnError struct {
	Policy  string `json:"policy"`             // stop, continue or retry
	Retries int    `json:"retries,omitempty"`  // for retry: attempts after the first
	Backoff string `json:"backoff,omitempty"`  // for retry: first wait, doubled each time (default 5s)
	RunTask string `json:"run_task,omitempty"` // a task to run after a failure, with the error as variables
}

// The trigger types.
const (
	TriggerCron     = "cron"     // Cron: a cron expression, seconds optional
	TriggerInterval = "interval" // Every: a duration
	TriggerOnce     = "once"     // At: an RFC 3339 time
	TriggerNewMail  = "new_mail" // Mail: an IMAP folder watched with IDLE (polling as fallback)
)

// Trigger starts a task unattended (mailwright serve).
type Trigger struct {
	Type  string `json:"type"`
	Cron  string `json:"cron,omitempty"`
	Every string `json:"every,omitempty"`
	At    string `json:"at,omitempty"`
	// Mail holds IMAP Open's parameters plus "folder" for a new_mail trigger.
	Mail map[string]string `json:"mail,omitempty"`
	// Missed is what happens to runs missed while the machine was off: "run_once" or "skip"
	// (the default).
	Missed string `json:"missed,omitempty"`
}

// Parse reads a task file. Unknown fields are errors (a misspelt "parmas" would otherwise
// be dropped silently), as is a version this build does not know.
func Parse(r io.Reader) (*Task, error) {
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read task: %w", err)
	}
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, jsonError(data, err)
	}
	if probe.Version == nil {
		return nil, errors.New(`task file has no "version": add "version": 1`)
	}
	if *probe.Version != Version {
		return nil, fmt.Errorf("task file version %d is not supported by this build (it reads version %d): update Mailwright", *probe.Version, Version)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var t Task
	if err := dec.Decode(&t); err != nil {
		return nil, jsonError(data, err)
	}
	if dec.More() {
		return nil, errors.New("task file has data after the task object")
	}
	return &t, nil
}

// Marshal writes t as indented JSON with the current version.
func (t *Task) Marshal() ([]byte, error) {
	c := *t
	c.Version = Version
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode task %q: %w", t.Name, err)
	}
	return append(b, '\n'), nil
}

// jsonError turns a JSON error into one that names the line and column.
func jsonError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
		if te.Field != "" {
			return fmt.Errorf("task file line %d: %q must be %s, not JSON %s", lineOf(data, off), te.Field, te.Type.String(), te.Value)
		}
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if off >= 0 {
		return fmt.Errorf("task file line %d: %s", lineOf(data, off), msg)
	}
	return fmt.Errorf("task file: %s", msg)
}

func lineOf(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}
