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

// MaxFileSize is the largest task file Parse reads (16 MiB); larger files are refused.
const MaxFileSize = 16 << 20

// MaxNameLength is the longest task name accepted, in characters (names become file names).
const MaxNameLength = 100

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
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read task: %w", err)
	}
	if len(data) > MaxFileSize {
		// Cutting the file short would only give a puzzling "unexpected end of JSON".
		return nil, fmt.Errorf("task file is larger than %d MiB: a task is a few kilobytes of JSON; check that this is the right file", MaxFileSize>>20)
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
	// The probe above has checked the syntax and bounded the nesting depth.
	if key, line, ok := duplicateKey(data); ok {
		return nil, fmt.Errorf("task file line %d: %q is given twice in the same object: keep one (JSON would silently use the last)", line, key)
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

// duplicateKey finds the first key that appears twice in one object of data (compared
// case-insensitively, as encoding/json matches field names), with its line. data must be
// valid JSON of bounded depth (json.Unmarshal succeeded on it).
func duplicateKey(data []byte) (key string, line int, found bool) {
	type frame struct {
		obj, wantKey bool
		keys         map[string]bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", 0, false
		}
		if k, isString := tok.(string); isString && len(stack) > 0 && stack[len(stack)-1].wantKey {
			top := stack[len(stack)-1]
			lk := strings.ToLower(k)
			if top.keys[lk] {
				return k, lineOf(data, dec.InputOffset()), true
			}
			top.keys[lk] = true
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, wantKey: true, keys: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: in an object, a key comes next.
		if len(stack) == 0 {
			return "", 0, false
		}
		if top := stack[len(stack)-1]; top.obj {
			top.wantKey = true
		}
	}
}
