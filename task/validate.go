package task

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mailwright/mailwright/actions"
)

// BuiltinVariables returns the names of the variables every run has.
func BuiltinVariables() []string {
	return []string{"Date", "Time", "TaskName", "RunID", "DataDir", "LastError", "LastErrorStep",
		"FailedTask", "FailedRunID", "FailedError", "FailedStep"}
}

// Problem is one thing wrong with a task, at a path such as steps[2].body[0].params.folder.
type Problem struct {
	Path    string
	Message string
}

// ValidationError lists every problem of a task at once.
type ValidationError struct {
	Task     string
	Problems []Problem
}

// Error implements error.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %q has %d problem(s):", e.Task, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.Path + ": " + p.Message)
	}
	return b.String()
}

// Validate checks t against the actions in reg: known actions, required and well-typed
// params, only loop actions with a body, every {Variable} defined before it is used
// (task variables, built-ins, names in extraVars such as --var overrides, and the outputs
// of earlier steps; a loop's outputs inside its body), error policies and triggers. It
// returns nil or a *ValidationError with every problem.
func Validate(t *Task, reg *actions.Registry, extraVars ...string) error {
	v := &validator{reg: reg, err: &ValidationError{Task: t.Name}}
	v.name(t.Name)
	known := map[string]bool{}
	for _, n := range BuiltinVariables() {
		known[n] = true
	}
	firstVar := map[string]int{}
	for i, tv := range t.Variables {
		if !ValidName(tv.Name) {
			v.add(fmt.Sprintf("variables[%d].name", i), fmt.Sprintf("%q is not a variable name (letters, digits and _, not starting with a digit)", clip(tv.Name)))
		} else if j, dup := firstVar[tv.Name]; dup {
			v.add(fmt.Sprintf("variables[%d].name", i), fmt.Sprintf("%q is also the name of variables[%d]: give each variable its own name", tv.Name, j))
		} else {
			firstVar[tv.Name] = i
		}
		known[tv.Name] = true
	}
	for _, n := range extraVars {
		known[n] = true
	}
	if len(t.Steps) == 0 {
		v.add("steps", "the task has no steps")
	}
	v.steps("steps", t.Steps, known)
	if t.OnError != nil {
		v.onError("on_error", t.OnError)
	}
	for i, tr := range t.Triggers {
		v.trigger(fmt.Sprintf("triggers[%d]", i), tr)
	}
	if len(v.err.Problems) == 0 {
		return nil
	}
	return v.err
}

type validator struct {
	reg *actions.Registry
	err *ValidationError
}

func (v *validator) add(path, msg string) {
	v.err.Problems = append(v.err.Problems, Problem{Path: path, Message: msg})
}

// name checks the task's name, which also names its file, its history and its checkpoints.
func (v *validator) name(name string) {
	n := utf8.RuneCountInString(strings.TrimSpace(name))
	switch {
	case n == 0:
		v.add("name", "the task needs a name")
	case n > MaxNameLength:
		v.add("name", fmt.Sprintf("the name is %d characters long: use at most %d", n, MaxNameLength))
	case len(FileName(name)) > 255:
		v.add("name", fmt.Sprintf("the name takes %d bytes as a file name, more than file systems allow (255): shorten it", len(FileName(name))))
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		v.add("name", "the name must not contain control characters (line breaks, tabs, NUL, ...)")
	}
}

// secretRefProblem is the message for a secret parameter whose braces do not make valid
// {Variable} references. It never quotes the value: that would show part of the secret.
const secretRefProblem = "the value has a { that does not start a reference to a defined {Variable} (the value is not shown because it is secret): write {{ for a literal {"

// steps validates a list of steps; known grows with each step's outputs.
func (v *validator) steps(path string, steps []Step, known map[string]bool) {
	for i, s := range steps {
		p := fmt.Sprintf("%s[%d]", path, i)
		a, ok := v.reg.Get(s.Action)
		if !ok {
			v.add(p+".action", fmt.Sprintf("unknown action %q%s", s.Action, suggest(s.Action, v.reg.IDs())))
			continue
		}
		sc := a.Schema()
		v.params(p+".params", sc, s.Params, known)
		if s.OnError != nil {
			v.onError(p+".on_error", s.OnError)
			if s.OnError.RunTask != "" {
				v.add(p+".on_error.run_task", "run_task belongs to the task's own on_error (it runs when the whole run failed)")
			}
		}
		for _, o := range sc.Outputs {
			known[o.Name] = true
		}
		if len(s.Body) > 0 && !sc.IsLoop {
			v.add(p+".body", fmt.Sprintf("%s is not a loop, so it cannot have a body", sc.Title))
		}
		if sc.IsLoop {
			if len(s.Body) == 0 {
				v.add(p+".body", fmt.Sprintf("%s runs its body once per message, but the body is empty", sc.Title))
			}
			v.steps(p+".body", s.Body, known)
		}
	}
}

// params checks each parameter of one step.
func (v *validator) params(path string, sc actions.Schema, raw map[string]string, known map[string]bool) {
	names := make([]string, 0, len(raw))
	for n := range raw {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := sc.Param(n); !ok {
			v.add(path+"."+n, fmt.Sprintf("%s has no parameter %q%s", sc.Title, n, suggest(n, paramNames(sc))))
		}
	}
	for _, p := range sc.Params {
		val, set := raw[p.Name]
		refs, err := References(val)
		secret := p.Kind == actions.KindSecret
		if err != nil {
			if secret {
				v.add(path+"."+p.Name, secretRefProblem)
			} else {
				v.add(path+"."+p.Name, err.Error())
			}
			continue
		}
		for _, r := range refs {
			if !known[r] {
				if secret {
					v.add(path+"."+p.Name, secretRefProblem)
					break
				}
				v.add(path+"."+p.Name, fmt.Sprintf("unknown variable {%s}: define it under variables, or use an output of an earlier step", r))
			}
		}
		if len(refs) > 0 {
			continue // its type is only known at run time
		}
		one := actions.Schema{Title: sc.Title, Params: []actions.Param{p}}
		in := map[string]string{}
		if set {
			in[p.Name] = val
		}
		if _, err := one.Resolve(in); err != nil {
			msg := err.Error()
			if pe, ok := err.(*actions.ParamError); ok {
				msg = strings.Join(pe.Problems, "; ")
			}
			v.add(path+"."+p.Name, msg)
		}
	}
}

func paramNames(sc actions.Schema) []string {
	out := make([]string, len(sc.Params))
	for i, p := range sc.Params {
		out[i] = p.Name
	}
	return out
}

func (v *validator) onError(path string, oe *OnError) {
	switch oe.Policy {
	case PolicyStop, PolicyContinue, "":
	case PolicyRetry:
		if oe.Retries < 1 || oe.Retries > 100 {
			v.add(path+".retries", "retry needs retries between 1 and 100")
		}
	default:
		v.add(path+".policy", fmt.Sprintf("%q is not stop, continue or retry", oe.Policy))
	}
	if oe.Backoff != "" {
		if d, err := time.ParseDuration(oe.Backoff); err != nil || d <= 0 {
			v.add(path+".backoff", fmt.Sprintf("%q is not a duration such as 5s or 1m", oe.Backoff))
		}
	}
}

func (v *validator) trigger(path string, tr Trigger) {
	switch tr.Type {
	case TriggerCron:
		if _, err := ParseCron(tr.Cron); err != nil {
			v.add(path+".cron", err.Error())
		}
	case TriggerInterval:
		if d, err := time.ParseDuration(tr.Every); err != nil || d < time.Second {
			v.add(path+".every", fmt.Sprintf("%q is not a duration of at least 1s, such as 5m", tr.Every))
		}
	case TriggerOnce:
		if _, err := time.Parse(time.RFC3339, tr.At); err != nil {
			v.add(path+".at", fmt.Sprintf("%q is not a time such as 2026-12-01T08:00:00+01:00", tr.At))
		}
	case TriggerNewMail:
		if tr.Mail["host"] == "" {
			v.add(path+".mail.host", "a new_mail trigger needs the IMAP server's host")
		}
	default:
		v.add(path+".type", fmt.Sprintf("%q is not cron, interval, once or new_mail", tr.Type))
	}
	switch tr.Missed {
	case "", "skip", "run_once":
	default:
		v.add(path+".missed", fmt.Sprintf("%q is not skip or run_once", tr.Missed))
	}
}

// suggest returns ` (did you mean "x"?)` for the closest candidate, if any is close.
func suggest(got string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := distance(strings.ToLower(got), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
