package oauthparams

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// WriteFileAtomic replaces the file at path with data so that a reader (or a crash) sees
// either the old content or the new one, never a half-written file under the final name.
//
// It writes data to a temporary file in the same directory (named ".<base>.tmp-*"), sets
// its mode to perm (exactly, not filtered by the umask), fsyncs it, renames it over path
// and then fsyncs the directory so that the rename itself survives a power loss (the
// directory fsync is skipped on Windows, where it is not supported). On any error the
// temporary file is removed and the old file at path is left untouched.
//
// The directory must already exist: WriteFileAtomic does not create it (create data
// folders with os.MkdirAll(dir, 0o700)). It does not lock anything: callers that
// read-modify-write a file shared with other processes must hold their own lock around
// the read and the write (the params store uses a gofrs/flock lock file for that).
// Secrets-bearing files should be written with perm 0o600.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("write %s atomically: no file name", path)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s atomically: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close() // may already be closed: the error is irrelevant then
			_ = os.Remove(tmpName)
		}
	}()

	// CreateTemp makes the file 0600; Chmod sets the exact requested mode.
	if err = tmp.Chmod(perm); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("write %s atomically: %w", path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s atomically: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s atomically: fsync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s atomically: %w", path, err)
	}
	if err = os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write %s atomically: %w", path, err)
	}
	if err = syncDir(dir); err != nil {
		// The new content is in place; only its durability across a power loss is in
		// doubt. Report it, but the temp file is gone already (renamed).
		return fmt.Errorf("write %s atomically: fsync directory: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be fsynced there; NTFS journals the rename
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some file systems (e.g. certain network or FUSE mounts) refuse fsync on a
	// directory; the data itself was already fsynced, so treat that as best effort.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return err
}
