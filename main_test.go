package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildBinary builds mailwright into a temp folder with the given go build flags.
func buildBinary(t *testing.T, env []string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailwright")
	args := append([]string{"build", "-o", bin}, flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", flags, err, out)
	}
	return bin
}

// headlessEnv is the environment of a server: no display at all.
func headlessEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISPLAY=") && !strings.HasPrefix(kv, "WAYLAND_DISPLAY=") && !strings.HasPrefix(kv, "MAILWRIGHT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func runBinary(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("run %v: %v", args, err)
	return 0, "", ""
}

func TestBinaryHeadlessFace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	builds := map[string]string{
		"gui":   buildBinary(t, nil),
		"nogui": buildBinary(t, []string{"CGO_ENABLED=0"}, "-tags", "nogui"),
	}
	for name, bin := range builds {
		t.Run(name, func(t *testing.T) {
			env := headlessEnv()
			code, out, _ := runBinary(t, bin, env, "--help")
			if code != 0 || !strings.Contains(out, "Commands:") {
				t.Fatalf("--help with no DISPLAY: exit %d\n%s", code, out)
			}
			code, out, _ = runBinary(t, bin, env, "version")
			if code != 0 || !strings.HasPrefix(out, "mailwright 0.") {
				t.Fatalf("version: exit %d %q", code, out)
			}
			code, out, errOut := runBinary(t, bin, env, "no-such-command")
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("unknown command: exit %d stdout %q stderr %q", code, out, errOut)
			}
			code, _, errOut = runBinary(t, bin, env, "--no-such-flag")
			if code != 2 || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("unknown flag: exit %d stderr %q", code, errOut)
			}
			dir := t.TempDir()
			_, out, _ = runBinary(t, bin, headlessEnv("MAILWRIGHT_DATA_DIR="+dir), "info")
			if !strings.Contains(out, dir+" (MAILWRIGHT_DATA_DIR") {
				t.Fatalf("info did not use MAILWRIGHT_DATA_DIR: %q", out)
			}
			// No command means the window: without a display that is a clear error, not a crash.
			code, _, errOut = runBinary(t, bin, env, "--data-dir", dir)
			if code == 0 || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "goroutine") {
				t.Fatalf("window without display: exit %d stderr %q", code, errOut)
			}
		})
	}
}
