package task

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"Name": "Ann", "UID": "42", "Empty": "", "Brace": "{Name}"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	cases := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"Hi {Name}!", "Hi Ann!", ""},
		{"{UID}.eml", "42.eml", ""},
		{"{{literal}} and {Name}", "{literal} and Ann", ""},
		{`{{"json": 1}}`, `{"json": 1}`, ""},
		{"a } b", "a } b", ""},
		{"[{Empty}]", "[]", ""},
		{"{Brace}", "{Name}", ""}, // values are not expanded again
		{"{Nope}", "", "unknown variable {Nope} at character 1"},
		{"x {Name", "", "unclosed {"},
		{"{not a name}", "", "is not a variable name"},
		{"{}", "", "is not a variable name"},
		{"{1abc}", "", "is not a variable name"},
	}
	for _, c := range cases {
		got, err := Expand(c.in, lookup)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Expand(%q) error = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	refs, err := References("{A} {{B}} {C_1}")
	if err != nil || strings.Join(refs, ",") != "A,C_1" {
		t.Fatalf("References = %v, %v", refs, err)
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "{A}", "{{", "}}", "{A", "a{{b}}c{A}", "{ A }"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Expand(s, func(string) (string, bool) { return "v", true })
		refs, rerr := References(s)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Expand and References disagree on %q: %v / %v", s, err, rerr)
		}
		if err == nil && !strings.Contains(s, "{") && out != strings.ReplaceAll(s, "}}", "}") {
			t.Fatalf("text without { changed: %q → %q", s, out)
		}
		_ = refs
	})
}
