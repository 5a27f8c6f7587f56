package oauthparams

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"filippo.io/age"
)

const (
	secretsFileName = "secrets.age"
	keyFileName     = "secrets.key"
	// defaultScryptLogN is age's own default scrypt work factor (2^18: about a second and
	// 256 MiB per encryption or decryption).
	defaultScryptLogN = 18
)

// fileBackend keeps the secrets of all sets in one age-encrypted JSON object
// {"<set id>": {...secrets...}} in <dataDir>/secrets.age, encrypted to an X25519
// identity: in key-file mode the one in <dataDir>/secrets.key (created on first write);
// in passphrase mode the one in <dataDir>/secrets.key.age, wrapped with the passphrase
// (see secrets_wrapped.go). Callers serialize writers across processes (the store's file
// lock); the mutex only guards this value's caches inside one process.
type fileBackend struct {
	path, keyPath  string
	wrappedKeyPath string // passphrase mode's key file
	passphrase     string // "" → key file
	scryptLogN     int
	onScrypt       func() // test hook, may be nil

	mu       sync.Mutex
	identity *age.X25519Identity // loaded, unwrapped or created key
	keySum   [sha256.Size]byte   // passphrase mode: hash of the secrets.key.age identity came from
	sum      [sha256.Size]byte   // hash of the ciphertext that cache was decrypted from
	cache    map[string]secretsWire
	format   string // passphrase mode: form of secrets.age as last read or written ("": none)
}

func (s *Store) newFileBackend() *fileBackend {
	logN := s.deps.scryptLogN
	if logN == 0 {
		logN = defaultScryptLogN
	}
	return &fileBackend{path: s.secretsPath(), keyPath: s.keyPath(), wrappedKeyPath: s.wrappedKeyPath(),
		passphrase: s.opts.Passphrase, scryptLogN: logN, onScrypt: s.deps.onScrypt}
}

// Info describes the encrypted file for the user.
func (b *fileBackend) Info() BackendInfo {
	how := "key file " + b.keyPath
	if b.passphrase != "" {
		how = "key file " + b.wrappedKeyPath + ", encrypted with the passphrase from MAILWRIGHT_PASSPHRASE"
	}
	return BackendInfo{Name: BackendFile, Detail: fmt.Sprintf("age-encrypted file %s (%s)", b.path, how)}
}

// Get returns the secrets stored under key.
func (b *fileBackend) Get(key string) (Secrets, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.load()
	if err != nil {
		return Secrets{}, false, err
	}
	w, ok := m[key]
	return w.secrets(), ok, nil
}

// Set stores s under key (read, change, encrypt, write atomically).
func (b *fileBackend) Set(key string, s Secrets) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.load()
	if err != nil {
		return err
	}
	m[key] = toWire(s)
	return b.save(m)
}

// Delete removes the secrets stored under key.
func (b *fileBackend) Delete(key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.load()
	if err != nil {
		return err
	}
	if _, ok := m[key]; !ok {
		return nil
	}
	delete(m, key)
	return b.save(m)
}

// keys lists the stored keys (for tests and diagnostics).
func (b *fileBackend) keys() ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.load()
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(m)), nil
}

// load reads and decrypts the file (or reuses the last decryption when the ciphertext is
// unchanged) and returns a copy the caller may modify. A missing file is an empty map.
func (b *fileBackend) load() (map[string]secretsWire, error) {
	data, err := os.ReadFile(b.path)
	if errors.Is(err, fs.ErrNotExist) {
		b.format = ""
		return map[string]secretsWire{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("params store secrets %s: %w", b.path, err)
	}
	sum := sha256.Sum256(data)
	if b.cache != nil && sum == b.sum {
		return maps.Clone(b.cache), nil
	}
	id, format, err := b.decryptIdentity(data)
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		return nil, b.decryptError(err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("params store secrets %s: the file is damaged (%v): restore it from a backup, or delete it and sign in again", b.path, err)
	}
	m := map[string]secretsWire{}
	if err := json.Unmarshal(plain, &m); err != nil {
		// No JSON error text: it could quote a secret.
		return nil, fmt.Errorf("params store secrets %s: decrypted, but the content is not valid JSON: restore it from a backup, or delete it and sign in again", b.path)
	}
	b.sum, b.cache, b.format = sum, m, format
	return maps.Clone(m), nil
}

// save encrypts m and replaces the file atomically.
func (b *fileBackend) save(m map[string]secretsWire) error {
	plain, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("params store secrets %s: encode: unexpected JSON error", b.path)
	}
	rcpt, err := b.encryptRecipient()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcpt)
	if err != nil {
		return fmt.Errorf("params store secrets %s: encrypt: %w", b.path, err)
	}
	if _, err := w.Write(plain); err != nil {
		return fmt.Errorf("params store secrets %s: encrypt: %w", b.path, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("params store secrets %s: encrypt: %w", b.path, err)
	}
	if err := WriteFileAtomic(b.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("params store secrets: %w", err)
	}
	b.sum, b.cache = sha256.Sum256(buf.Bytes()), m
	if b.passphrase != "" {
		b.format = encScryptWrapped
	}
	return nil
}

// decryptIdentity returns the identity that decrypts data, the content of secrets.age,
// and (passphrase mode) the form data is in.
func (b *fileBackend) decryptIdentity(data []byte) (age.Identity, string, error) {
	if b.passphrase != "" {
		return b.passphraseIdentity(data)
	}
	id, err := b.loadKey(false)
	if err != nil {
		return nil, "", err
	}
	return id, encX25519, nil
}

// encryptRecipient returns the recipient secrets.age is written to. In passphrase mode
// that is the wrapped identity, created here if secrets.age does not need an existing
// one (see wrappedKey); save runs under the store's exclusive lock, right after load.
func (b *fileBackend) encryptRecipient() (age.Recipient, error) {
	if b.passphrase != "" {
		id, err := b.wrappedKey(b.format != encScryptWrapped)
		if err != nil {
			return nil, err
		}
		return id.Recipient(), nil
	}
	id, err := b.loadKey(true)
	if err != nil {
		return nil, err
	}
	return id.Recipient(), nil
}

// loadKey reads the X25519 identity from the key file, creating the file if create is
// set and it does not exist yet. Creating only happens while writing, under the store's
// exclusive lock, so two processes cannot create two different keys.
func (b *fileBackend) loadKey(create bool) (*age.X25519Identity, error) {
	if b.identity != nil {
		return b.identity, nil
	}
	data, err := os.ReadFile(b.keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("params store secrets %s: its key file %s is missing: restore %s from a backup (without it the saved secrets cannot be decrypted; to start over, delete %s and sign in again)", b.path, b.keyPath, keyFileName, b.path)
		}
		return b.createKey()
	}
	if err != nil {
		return nil, fmt.Errorf("params store key file %s: %w", b.keyPath, err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	// The parse error is not included: it may quote the key line.
	var id *age.X25519Identity
	if err == nil && len(ids) == 1 {
		id, _ = ids[0].(*age.X25519Identity)
	}
	if id == nil {
		return nil, fmt.Errorf("params store key file %s is damaged (expected one AGE-SECRET-KEY-1... line): restore it from a backup; without it the secrets in %s cannot be decrypted", b.keyPath, b.path)
	}
	b.identity = id
	return id, nil
}

func (b *fileBackend) createKey() (*age.X25519Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("params store key file %s: generate: %w", b.keyPath, err)
	}
	content := fmt.Sprintf("# Mailwright: the key that decrypts %s in this folder.\n"+
		"# Keep it private; back it up together with %s.\n"+
		"# created: %s\n# public key: %s\n%s\n",
		secretsFileName, secretsFileName, time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	if err := WriteFileAtomic(b.keyPath, []byte(content), 0o600); err != nil {
		return nil, fmt.Errorf("params store key file: %w", err)
	}
	b.identity = id
	return id, nil
}

// decryptError turns an age decryption error into advice naming the files.
func (b *fileBackend) decryptError(err error) error {
	var noMatch *age.NoIdentityMatchError
	if !errors.As(err, &noMatch) {
		return fmt.Errorf("params store secrets %s cannot be decrypted, the file is damaged (%v): restore it from a backup, or delete it and sign in again", b.path, err)
	}
	scrypt := slices.Contains(noMatch.StanzaTypes, "scrypt")
	switch {
	case b.passphrase != "" && scrypt:
		return fmt.Errorf("params store secrets %s: wrong passphrase: set MAILWRIGHT_PASSPHRASE to the passphrase used when the secrets were saved", b.path)
	case b.passphrase != "":
		return fmt.Errorf("params store secrets %s was not encrypted with the key in %s: restore the %s saved together with it (both files come as a pair)", b.path, b.wrappedKeyPath, wrappedKeyFileName)
	case scrypt:
		return fmt.Errorf("params store secrets %s is encrypted with a passphrase: set MAILWRIGHT_PASSPHRASE to the passphrase used when the secrets were saved", b.path)
	}
	return fmt.Errorf("params store secrets %s was not encrypted with the key in %s: restore the key file that was used when the secrets were saved", b.path, b.keyPath)
}
