package actions

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultRegistry checks every shipped action: a valid schema, help on every
// parameter and output, and a section in docs/actions/ under its title and ID.
func TestDefaultRegistry(t *testing.T) {
	r := NewDefaultRegistry()
	var docs strings.Builder
	files, _ := filepath.Glob(filepath.Join("..", "docs", "actions", "*.md"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
	}
	for _, a := range r.List() {
		s := a.Schema()
		if s.Title == "" || s.Group == "" || s.Help == "" {
			t.Errorf("%s: title, group and help are required", s.ID)
		}
		for _, p := range s.Params {
			if p.Help == "" {
				t.Errorf("%s: parameter %s has no help", s.ID, p.Name)
			}
		}
		for _, o := range s.Outputs {
			if o.Help == "" {
				t.Errorf("%s: output %s has no help", s.ID, o.Name)
			}
		}
		if !strings.Contains(docs.String(), "## "+s.Title) || !strings.Contains(docs.String(), s.ID) {
			t.Errorf("%s (%s) has no section in docs/actions/", s.Title, s.ID)
		}
		if _, err := s.Resolve(nil); err != nil {
			// Only required parameters may be reported.
			pe, ok := err.(*ParamError)
			if !ok {
				t.Errorf("%s: %v", s.ID, err)
				continue
			}
			for _, prob := range pe.Problems {
				if !strings.Contains(prob, "is required") {
					t.Errorf("%s: defaults do not validate: %s", s.ID, prob)
				}
			}
		}
	}
}
