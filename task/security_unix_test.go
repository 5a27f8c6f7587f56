//go:build unix

package task

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSecurityHistoryFileModes: the run history (and SQLite's -wal and -shm files beside
// it, which hold recent log lines) is readable by its owner only, from the first run on,
// whatever the umask.
func TestSecurityHistoryFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	h, err := OpenHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.BeginRun(context.Background(), "r1", "T", "manual", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := h.Checkpoints("T").Store("k", "v"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 2 {
		t.Fatalf("expected the database and its WAL files while open, got %v", entries)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("data folder mode %v, %v; want 0700", info.Mode().Perm(), err)
	}
}
