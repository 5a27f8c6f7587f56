package actions

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Values are a step's parameters after {variable} expansion and defaults, by name. Build
// them with Schema.Resolve, which validates; the typed getters then cannot fail.
type Values map[string]string

// ParamError lists every problem with a step's parameters, so the user fixes them at once.
type ParamError struct {
	Action   string   // the action's title
	Problems []string // e.g. `"Port": "abc" is not a number`
}

// Error implements error.
func (e *ParamError) Error() string {
	return e.Action + ": " + strings.Join(e.Problems, "; ")
}

// Resolve applies the schema's defaults to raw, checks required parameters and each value
// against its kind, and returns the values or a *ParamError naming every problem. Names
// that the schema does not declare are errors too (a typo would otherwise be ignored).
func (s Schema) Resolve(raw map[string]string) (Values, error) {
	v := Values{}
	var problems []string
	for _, p := range s.Params {
		val := strings.TrimSpace(raw[p.Name])
		if p.Kind == KindMultiline || p.Kind == KindSecret {
			val = raw[p.Name]
		}
		if val == "" {
			val = p.Default
		}
		if val == "" {
			if p.Required {
				problems = append(problems, fmt.Sprintf("%q is required", p.Label))
			}
			continue
		}
		if err := checkValue(p, val); err != nil {
			problems = append(problems, fmt.Sprintf("%q: %v", p.Label, err))
			continue
		}
		v[p.Name] = val
	}
	var unknown []string
	for name := range raw {
		if _, ok := s.Param(name); !ok {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		problems = append(problems, fmt.Sprintf("unknown parameter %q", name))
	}
	if len(problems) > 0 {
		return nil, &ParamError{Action: s.Title, Problems: problems}
	}
	return v, nil
}

// checkValue checks one non-empty value against its parameter's kind.
func checkValue(p Param, val string) error {
	switch p.Kind {
	case KindNumber:
		if _, err := strconv.ParseInt(val, 10, 64); err != nil {
			return fmt.Errorf("%q is not a whole number", val)
		}
	case KindBool:
		if _, err := strconv.ParseBool(val); err != nil {
			return fmt.Errorf("%q is not true or false", val)
		}
	case KindDuration:
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30s or 5m", val)
		}
		if d < 0 {
			return fmt.Errorf("%q is negative", val)
		}
	case KindEnum:
		if !slices.Contains(p.Choices, val) {
			return fmt.Errorf("%q is not one of %s", val, strings.Join(p.Choices, ", "))
		}
	}
	return nil
}

// String returns the value of name ("" if unset).
func (v Values) String(name string) string { return v[name] }

// Int returns the value of name as an integer (0 if unset).
func (v Values) Int(name string) int64 {
	n, _ := strconv.ParseInt(v[name], 10, 64)
	return n
}

// Bool returns the value of name as a bool (false if unset).
func (v Values) Bool(name string) bool {
	b, _ := strconv.ParseBool(v[name])
	return b
}

// Duration returns the value of name as a duration (0 if unset).
func (v Values) Duration(name string) time.Duration {
	d, _ := time.ParseDuration(v[name])
	return d
}

// List splits the value of name on commas, semicolons and newlines, trimming each item and
// dropping empty ones: "a@x, b@y" → [a@x b@y].
func (v Values) List(name string) []string {
	f := strings.FieldsFunc(v[name], func(r rune) bool { return r == ',' || r == ';' || r == '\n' || r == '\r' })
	out := f[:0]
	for _, s := range f {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
