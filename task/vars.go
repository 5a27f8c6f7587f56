package task

import (
	"fmt"
	"strings"
)

// Expand replaces every {Name} in s with lookup(Name). "{{" stands for a literal "{" and "}}"
// for a literal "}" (a lone "}" is kept as it is). A reference to a name lookup does not
// know, an unclosed "{" or a "{" not followed by a variable name is an error naming the
// position, so a typo never becomes silent text.
func Expand(s string, lookup func(name string) (string, bool)) (string, error) {
	if !strings.ContainsAny(s, "{}") {
		return s, nil
	}
	var b strings.Builder
	err := scan(s, func(lit string) { b.WriteString(lit) }, func(name string, pos int) error {
		v, ok := lookup(name)
		if !ok {
			return fmt.Errorf("unknown variable {%s} at character %d", name, pos+1)
		}
		b.WriteString(v)
		return nil
	})
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

// References returns the variable names s refers to, in order, or the syntax error Expand
// would report.
func References(s string) ([]string, error) {
	var names []string
	err := scan(s, func(string) {}, func(name string, _ int) error {
		names = append(names, name)
		return nil
	})
	return names, err
}

// scan walks s, calling lit for literal text and ref for each {Name}.
func scan(s string, lit func(string), ref func(name string, pos int) error) error {
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				lit(s[start:i] + "}")
				i++
				start = i + 1
			}
		case '{':
			if i+1 < len(s) && s[i+1] == '{' {
				lit(s[start:i] + "{")
				i++
				start = i + 1
				continue
			}
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return fmt.Errorf("unclosed { at character %d (write {{ for a literal brace)", i+1)
			}
			name := s[i+1 : i+1+end]
			if !ValidName(name) {
				return fmt.Errorf("{%s} at character %d is not a variable name (letters, digits and _; write {{ for a literal brace)", clip(name), i+1)
			}
			lit(s[start:i])
			if err := ref(name, i); err != nil {
				return err
			}
			i += end + 1
			start = i + 1
		}
	}
	lit(s[start:])
	return nil
}

// ValidName reports whether name can be a variable name: a letter or _ first, then
// letters, digits and _.
func ValidName(name string) bool {
	if name == "" || len(name) > 100 {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 30 {
		return s[:30] + "…"
	}
	return s
}
