// Package benchtb is a minimal testing.TB for the benchmark programs under scripts/bench,
// so that they can start the test harness (internal/testmail) outside `go test`: the
// harness's servers take a testing.TB for logging, failing and their cleanups.
package benchtb

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// TB implements testing.TB for a program. Fatal and FailNow run the cleanups registered so
// far (stopping Dovecot and removing its folder) and exit with status 2. Skip is a failure:
// a benchmark that cannot run its servers has nothing to report.
type TB struct {
	// testing.TB is embedded only for its unexported method, which cannot be implemented
	// outside package testing; it is nil and never called.
	testing.TB

	name string
	out  io.Writer
	ctx  context.Context
	stop context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	temps    []string
}

// New returns a TB named name that logs to out (os.Stderr when nil).
func New(name string, out io.Writer) *TB {
	if out == nil {
		out = os.Stderr
	}
	ctx, stop := context.WithCancel(context.Background())
	return &TB{name: name, out: out, ctx: ctx, stop: stop}
}

// Close runs the cleanups in reverse order of registration, as testing does at the end of
// a test. It is safe to call more than once.
func (t *TB) Close() {
	t.stop()
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		f()
	}
	t.mu.Lock()
	temps := t.temps
	t.temps = nil
	t.mu.Unlock()
	for _, d := range temps {
		_ = os.RemoveAll(d)
	}
}

func (t *TB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *TB) Log(args ...any) { fmt.Fprintln(t.out, append([]any{t.name + ":"}, args...)...) }
func (t *TB) Logf(format string, args ...any) {
	fmt.Fprintf(t.out, t.name+": "+format+"\n", args...)
}
func (t *TB) Error(args ...any)                 { t.Log(args...); t.Fail() }
func (t *TB) Errorf(format string, args ...any) { t.Logf(format, args...); t.Fail() }
func (t *TB) Fatal(args ...any)                 { t.Log(args...); t.FailNow() }
func (t *TB) Fatalf(format string, args ...any) { t.Logf(format, args...); t.FailNow() }
func (t *TB) Skip(args ...any)                  { t.Fatal(append([]any{"cannot run:"}, args...)...) }
func (t *TB) Skipf(format string, args ...any)  { t.Fatalf("cannot run: "+format, args...) }
func (t *TB) SkipNow()                          { t.Fatal("cannot run") }
func (t *TB) Skipped() bool                     { return false }
func (t *TB) Helper()                           {}
func (t *TB) Name() string                      { return t.name }
func (t *TB) Context() context.Context          { return t.ctx }
func (t *TB) Output() io.Writer                 { return t.out }
func (t *TB) Attr(key, value string)            { t.Logf("%s=%s", key, value) }
func (t *TB) Setenv(key, value string)          { _ = os.Setenv(key, value) }
func (t *TB) Chdir(dir string)                  { _ = os.Chdir(dir) }

func (t *TB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

func (t *TB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

// FailNow runs the cleanups and exits the program with status 2.
func (t *TB) FailNow() {
	t.Fail()
	t.Close()
	os.Exit(2)
}

// TempDir returns a new directory that Close removes.
func (t *TB) TempDir() string {
	d, err := os.MkdirTemp("", "mw-bench-")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.mu.Lock()
	t.temps = append(t.temps, d)
	t.mu.Unlock()
	return d
}

// ArtifactDir returns a folder for output files, removed by Close like TempDir.
func (t *TB) ArtifactDir() string { return t.TempDir() }
