package oauthparams

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// refreshLockWait bounds how long a token refresh waits for another process's refresh of
// the same set: that one makes at most one token request (30 s client timeout by default)
// and one short store update.
const refreshLockWait = 2 * time.Minute

// lockFile takes the lock file at path, exclusively or shared, polling until it is free,
// timeout has passed or ctx ends. Each call opens its own descriptor, so the lock also
// excludes other goroutines of this process. release unlocks it.
func lockFile(ctx context.Context, path string, exclusive bool, timeout time.Duration) (release func(), err error) {
	fl := flock.New(path, flock.SetPermissions(0o600))
	try := fl.TryRLock
	if exclusive {
		try = fl.TryLock
	}
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 20*time.Millisecond) {
		ok, err := try()
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			return func() { _ = fl.Unlock() }, nil // closing the descriptor releases it anyway
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("could not lock %s within %v: another Mailwright process (the window or a scheduled run) holds it; try again", path, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(delay): // poll interval while another process holds the lock
		}
	}
}

// refreshLockPath is the lock file that serialises token refreshes of the set named name
// across processes, so a refresh token is spent once even when the window and a scheduled
// run need a token at the same moment. It is separate from the store's lock, so a slow
// token endpoint never blocks other store operations.
func (s *Store) refreshLockPath(name string) string {
	sum := sha256.Sum256([]byte(NameKey(name)))
	return filepath.Join(s.dir, "refresh-"+hex.EncodeToString(sum[:8])+".lock")
}
