package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwright/mailwright/internal/buildinfo"
)

func fyneApp(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../FyneApp.toml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type result struct {
	code           int
	stdout, stderr string
	guiDir         string
}

func runMain(t *testing.T, env map[string]string, gui bool, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	var r result
	e := Env{Stdout: &out, Stderr: &errb, FyneApp: fyneApp(t), Getenv: func(k string) string { return env[k] }}
	if gui {
		e.GUI = func(dir string, info buildinfo.Info) error { r.guiDir = dir; return nil }
	}
	r.code = Main(args, e)
	r.stdout, r.stderr = out.String(), errb.String()
	return r
}

func TestHelpAndVersion(t *testing.T) {
	r := runMain(t, nil, true, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Commands:") || !strings.Contains(r.stdout, "--data-dir") || r.guiDir != "" {
		t.Fatalf("--help: %+v", r)
	}
	info, _ := buildinfo.Parse(fyneApp(t))
	r = runMain(t, nil, true, "version")
	if r.code != 0 || r.stdout != "mailwright "+info.Version+" (build 1)\n" {
		t.Fatalf("version: %+v", r)
	}
	for _, args := range [][]string{{"version", "--help"}, {"help", "info"}, {"info", "-h"}} {
		r = runMain(t, nil, true, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: mailwright "+strings.TrimPrefix(args[len(args)-1], "-")) && !strings.HasPrefix(r.stdout, "Usage: mailwright "+args[0]) {
			t.Fatalf("%v: %+v", args, r)
		}
	}
}

func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	cases := [][]string{{"frobnicate"}, {"--bogus"}, {"version", "--bogus"}, {"version", "extra"}, {"help", "nope"}, {"--data-dir"}}
	for _, args := range cases {
		r := runMain(t, nil, true, args...)
		if r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, r.code, ExitUsage, r.stderr)
		}
		if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "mailwright: ") {
			t.Errorf("%v: want one line on stderr, got %q", args, r.stderr)
		}
		if r.stdout != "" || r.guiDir != "" {
			t.Errorf("%v: unexpected output %q / window %q", args, r.stdout, r.guiDir)
		}
	}
}

func TestDataDirResolution(t *testing.T) {
	flagDir, envDir := t.TempDir(), t.TempDir()
	env := map[string]string{envDataDir: envDir}

	r := runMain(t, env, true, "info")
	if r.code != 0 || !strings.Contains(r.stdout, envDir+" ("+envDataDir) {
		t.Fatalf("env: %+v", r)
	}
	r = runMain(t, env, true, "--data-dir", flagDir, "info")
	if !strings.Contains(r.stdout, flagDir+" (--data-dir") {
		t.Fatalf("flag before command: %+v", r)
	}
	r = runMain(t, env, true, "info", "--data-dir="+flagDir)
	if !strings.Contains(r.stdout, flagDir+" (--data-dir") {
		t.Fatalf("flag after command: %+v", r)
	}
	r = runMain(t, nil, true, "info")
	base, err := os.UserConfigDir()
	if err == nil && !strings.Contains(r.stdout, filepath.Join(base, "mailwright")+" (default") {
		t.Fatalf("default: %+v", r)
	}
}

func TestNoCommandOpensWindowOnCreatedDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	r := runMain(t, nil, true, "--data-dir", dir)
	if r.code != 0 || r.guiDir != dir {
		t.Fatalf("want window on %s, got %+v", dir, r)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data folder not created 0700: %v %v", st, err)
	}

	r = runMain(t, nil, false, "--data-dir", dir)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "nogui") {
		t.Fatalf("headless build without command: %+v", r)
	}
}
