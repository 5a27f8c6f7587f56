package oauthparams

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/zalando/go-keyring"
)

const (
	defaultKeyringService = "mailwright"
	// keyringProbeTimeout bounds the set+get+delete probe of "auto": go-keyring calls can
	// hang when D-Bus is half there (or a locked collection waits for an unlock prompt).
	keyringProbeTimeout = 3 * time.Second
	// keyringOpTimeout bounds one backend operation; generous, since unlocking the
	// keyring may show a password prompt to the user.
	keyringOpTimeout = 30 * time.Second
	// keyringChunk is the most bytes put in one keyring item. Windows Credential Manager
	// takes at most 2560 bytes per secret and go-keyring's macOS backend about 3000 after
	// base64; Microsoft refresh + access tokens together exceed that, so longer values are
	// split over several items.
	keyringChunk = 1800
	// chunkHeadPrefix starts the main item of a value split into chunks: the item holds
	// "mailwright-chunks:N" and the chunks are items "<key>#1" ... "<key>#N".
	chunkHeadPrefix = "mailwright-chunks:"
)

// keyringAPI is the part of go-keyring the backend uses; tests inject failing ones.
// Get and Delete return keyring.ErrNotFound for a missing item.
type keyringAPI interface {
	Set(service, user, password string) error
	Get(service, user string) (string, error)
	Delete(service, user string) error
}

// osKeyring is go-keyring's package-level provider (the OS keyring, or its in-memory
// mock after keyring.MockInit).
type osKeyring struct{}

func (osKeyring) Set(service, user, password string) error {
	return keyring.Set(service, user, password)
}
func (osKeyring) Get(service, user string) (string, error) { return keyring.Get(service, user) }
func (osKeyring) Delete(service, user string) error        { return keyring.Delete(service, user) }

// sessionBusCheck tells, without starting anything, whether a D-Bus session bus can be
// reached. Without this check go-keyring (through godbus) runs dbus-launch when
// DBUS_SESSION_BUS_ADDRESS is unset, which starts a stray bus daemon on headless machines.
func sessionBusCheck() error {
	switch runtime.GOOS {
	case "darwin", "windows", "ios", "android", "plan9", "js", "wasip1":
		return nil
	}
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return nil
	}
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = filepath.Join("/run/user", strconv.Itoa(os.Getuid()))
	}
	if _, err := os.Stat(filepath.Join(dir, "bus")); err == nil {
		return nil
	}
	return errors.New("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set and there is no " + filepath.Join(dir, "bus") + ")")
}

// keyringBackend keeps each set's secrets as JSON in one OS keyring item (service =
// the configured service, user = set ID), split into chunks when long.
type keyringBackend struct {
	kr      keyringAPI
	service string
	timeout time.Duration
}

func (s *Store) newKeyringBackend(service string) *keyringBackend {
	if service == "" {
		service = defaultKeyringService
	}
	return &keyringBackend{kr: s.deps.keyring, service: service, timeout: keyringOpTimeout}
}

// Info describes the keyring for the user.
func (b *keyringBackend) Info() BackendInfo {
	var where string
	switch runtime.GOOS {
	case "darwin":
		where = "macOS Keychain"
	case "windows":
		where = "Windows Credential Manager"
	default:
		where = "Secret Service (D-Bus)"
	}
	return BackendInfo{Name: BackendKeyring, Detail: fmt.Sprintf("%s, service %q", where, b.service)}
}

// withTimeout runs fn in a goroutine and gives up after d. A call that times out keeps
// running in the background (go-keyring calls cannot be cancelled); its results are
// dropped.
func withTimeout(d time.Duration, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("no answer within %v (keyring locked and waiting for its password, or D-Bus not responding?)", d)
	}
}

// probe checks that the keyring works with a throw-away item.
func (b *keyringBackend) probe() error {
	user := "mailwright-probe-" + rand.Text()
	err := withTimeout(keyringProbeTimeout, func() error {
		if err := b.kr.Set(b.service, user, "probe"); err != nil {
			return err
		}
		got, err := b.kr.Get(b.service, user)
		if err != nil {
			return err
		}
		if got != "probe" {
			return errors.New("read back a different value than written")
		}
		return b.kr.Delete(b.service, user)
	})
	if err != nil {
		return fmt.Errorf("keyring probe (service %q): %w", b.service, err)
	}
	return nil
}

func (b *keyringBackend) wrap(op, key string, err error) error {
	return fmt.Errorf("the secrets are kept in the OS keyring (service %q); %s item %s failed: %w", b.service, op, key, err)
}

// Get returns the secrets stored under key.
func (b *keyringBackend) Get(key string) (Secrets, bool, error) {
	var raw string
	var found bool
	err := withTimeout(b.timeout, func() error {
		var err error
		raw, found, err = b.read(key)
		return err
	})
	if err != nil {
		return Secrets{}, false, b.wrap("reading", key, err)
	}
	if !found {
		return Secrets{}, false, nil
	}
	sec, err := unmarshalSecrets([]byte(raw))
	if err != nil {
		return Secrets{}, false, b.wrap("reading", key, err)
	}
	return sec, true, nil
}

// read returns the whole value of key, joining chunks.
func (b *keyringBackend) read(key string) (string, bool, error) {
	head, err := b.kr.Get(b.service, key)
	if errors.Is(err, keyring.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	n, chunked := chunkCount(head)
	if !chunked {
		return head, true, nil
	}
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		part, err := b.kr.Get(b.service, chunkUser(key, i))
		if err != nil {
			return "", false, fmt.Errorf("chunk %d of %d: %w", i, n, err)
		}
		sb.WriteString(part)
	}
	return sb.String(), true, nil
}

// chunkCount parses a chunk head item; chunked is false for a plain value.
func chunkCount(head string) (n int, chunked bool) {
	rest, ok := strings.CutPrefix(head, chunkHeadPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func chunkUser(key string, i int) string { return key + "#" + strconv.Itoa(i) }

// splitChunks splits v into pieces of at most max bytes, never inside a UTF-8 sequence.
func splitChunks(v string, max int) []string {
	var parts []string
	for len(v) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		if cut == 0 {
			cut = max
		}
		parts = append(parts, v[:cut])
		v = v[cut:]
	}
	return append(parts, v)
}

// Set stores s under key, removing chunks left over from a longer previous value.
func (b *keyringBackend) Set(key string, s Secrets) error {
	data, err := marshalSecrets(s)
	if err != nil {
		return b.wrap("writing", key, err)
	}
	err = withTimeout(b.timeout, func() error {
		oldN := b.oldChunks(key)
		newN := 0
		if len(data) <= keyringChunk {
			if err := b.kr.Set(b.service, key, string(data)); err != nil {
				return err
			}
		} else {
			parts := splitChunks(string(data), keyringChunk)
			newN = len(parts)
			for i, p := range parts {
				if err := b.kr.Set(b.service, chunkUser(key, i+1), p); err != nil {
					return err
				}
			}
			if err := b.kr.Set(b.service, key, chunkHeadPrefix+strconv.Itoa(newN)); err != nil {
				return err
			}
		}
		for i := newN + 1; i <= oldN; i++ {
			_ = b.kr.Delete(b.service, chunkUser(key, i)) // leftovers: best effort
		}
		return nil
	})
	if err != nil {
		return b.wrap("writing", key, err)
	}
	return nil
}

// oldChunks returns how many chunk items the current value of key has (0 if none).
func (b *keyringBackend) oldChunks(key string) int {
	head, err := b.kr.Get(b.service, key)
	if err != nil {
		return 0
	}
	n, _ := chunkCount(head)
	return n
}

// Delete removes the item of key and its chunks.
func (b *keyringBackend) Delete(key string) error {
	err := withTimeout(b.timeout, func() error {
		// Chunks first, head last: if this fails halfway, a retry still finds the count.
		n := b.oldChunks(key)
		for i := 1; i <= n; i++ {
			if err := b.kr.Delete(b.service, chunkUser(key, i)); err != nil && !errors.Is(err, keyring.ErrNotFound) {
				return err
			}
		}
		if err := b.kr.Delete(b.service, key); err != nil && !errors.Is(err, keyring.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return b.wrap("deleting", key, err)
	}
	return nil
}
