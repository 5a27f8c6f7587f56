package main

import (
	"path/filepath"
	"testing"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/task"
)

// TestExamplesValidate keeps examples/*.json loadable and valid against the shipped actions.
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("examples", "*.json"))
	if err != nil || len(files) < 5 {
		t.Fatalf("examples: %v %v", files, err)
	}
	reg := actions.NewDefaultRegistry()
	for _, f := range files {
		tk, err := task.LoadFile(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if err := task.Validate(tk, reg); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
