package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportLayering keeps the import graph one-way (app → task → actions → oauthparams,
// cli beside app) and the graphics driver out of everything but app/desktop and main.
func TestImportLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f", "{{.ImportPath}}:{{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/mailwright/mailwright/"
	rank := map[string]int{"oauthparams": 1, "actions": 2, "task": 3, "cli": 4, "app": 4}
	layer := func(pkg string) (string, int) {
		rel := strings.TrimPrefix(pkg, mod)
		top, _, _ := strings.Cut(rel, "/")
		return top, rank[top]
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ":")
		top, r := layer(pkg)
		for _, dep := range strings.Fields(deps) {
			if dep == "fyne.io/fyne/v2/app" && pkg != mod+"app/desktop" && pkg != strings.TrimSuffix(mod, "/") {
				t.Errorf("%s imports the Fyne driver (fyne.io/fyne/v2/app); only app/desktop may", pkg)
			}
			if strings.HasPrefix(dep, "fyne.io/") && r > 0 && r < 4 {
				t.Errorf("%s (a logic package) imports Fyne (%s)", pkg, dep)
			}
			if !strings.HasPrefix(dep, mod) || r == 0 {
				continue
			}
			dtop, dr := layer(dep)
			if dtop == top || dr == 0 {
				continue
			}
			if dr >= r {
				t.Errorf("%s imports %s: imports must run app → task → actions → oauthparams", pkg, dep)
			}
		}
	}
}
