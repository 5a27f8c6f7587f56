package oauthparams

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"filippo.io/age"
)

// Passphrase mode of the file backend.
//
// scrypt (age's work factor 2^18: about a second of CPU and 256 MiB of memory) must not
// run on every read and write of the secrets, so the passphrase does not encrypt
// secrets.age itself: it wraps a random X25519 identity kept in secrets.key.age (an age
// file encrypted with the passphrase), and secrets.age is encrypted to that identity.
// A fileBackend unwraps the identity once and keeps it in memory (its identity field);
// further reads and writes use X25519 only. On disk everything secret stays encrypted,
// and without the passphrase neither file opens.
//
// secrets.age written by earlier versions directly with scrypt (record "scrypt") is still
// read; the next write converts it (record "scrypt-wrapped"). Which form secrets.age is
// in is read from its header, so a record left behind by a crash between the two file
// writes does no harm.
//
// The wrapped key is only created by a write (under the store's exclusive lock, so two
// processes never create two keys), only when secrets.age is absent or still in the
// direct-scrypt form, and never over an existing secrets.key.age: a missing or damaged
// key file while secrets.age needs it is an error telling what to restore.

const wrappedKeyFileName = "secrets.key.age"

func (s *Store) wrappedKeyPath() string { return filepath.Join(s.dir, wrappedKeyFileName) }

// observedFormat returns the form of secrets.age last read or written in passphrase mode
// (encScrypt or encScryptWrapped), or "" when unknown or not in passphrase mode.
func (b *fileBackend) observedFormat() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.passphrase == "" {
		return ""
	}
	return b.format
}

// scryptRan tells the test hook that scrypt runs once more.
func (b *fileBackend) scryptRan() {
	if b.onScrypt != nil {
		b.onScrypt()
	}
}

// stanzaProbe is an age identity that matches nothing: decrypting with it yields the
// header's stanza types (in age.NoIdentityMatchError) without running any KDF.
type stanzaProbe struct{}

func (stanzaProbe) Unwrap([]*age.Stanza) ([]byte, error) { return nil, age.ErrIncorrectIdentity }

// ageStanzaTypes returns the recipient stanza types in the header of the age file data.
// The error (the file is not an age file) quotes nothing of data.
func ageStanzaTypes(data []byte) ([]string, error) {
	_, err := age.Decrypt(bytes.NewReader(data), stanzaProbe{})
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return noMatch.StanzaTypes, nil
	}
	return nil, errors.New("not an age file")
}

// passphraseIdentity returns the identity that decrypts data, the content of secrets.age
// in passphrase mode: the passphrase itself for the old direct-scrypt form, else the
// wrapped identity from secrets.key.age. format is the form found.
func (b *fileBackend) passphraseIdentity(data []byte) (id age.Identity, format string, err error) {
	types, err := ageStanzaTypes(data)
	if err != nil {
		return nil, "", fmt.Errorf("params store secrets %s cannot be decrypted, the file is damaged (%v): restore it from a backup, or delete it and sign in again", b.path, err)
	}
	if slices.Contains(types, "scrypt") {
		sid, err := age.NewScryptIdentity(b.passphrase)
		if err != nil {
			return nil, "", fmt.Errorf("params store secrets %s: %w", b.path, err)
		}
		b.scryptRan() // age.Decrypt will derive the key from the passphrase
		return sid, encScrypt, nil
	}
	xid, err := b.wrappedKey(false)
	if err != nil {
		return nil, "", err
	}
	return xid, encScryptWrapped, nil
}

// wrappedKey returns the identity kept in secrets.key.age: the one in memory while the
// file is unchanged, else unwrapped from the file with the passphrase (scrypt). If the
// file does not exist and create is set, a new identity is generated and stored.
func (b *fileBackend) wrappedKey(create bool) (*age.X25519Identity, error) {
	data, err := os.ReadFile(b.wrappedKeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if create {
			return b.createWrappedKey()
		}
		if _, err := os.Stat(b.keyPath); err == nil {
			// secrets.age belongs to the key-file mode (its record is missing).
			return nil, fmt.Errorf("params store secrets %s is encrypted with the key file %s, not with a passphrase: unset MAILWRIGHT_PASSPHRASE", b.path, b.keyPath)
		}
		return nil, fmt.Errorf("params store secrets %s: its key file %s is missing: restore %s from a backup (it holds the key that decrypts the secrets, encrypted with your passphrase; without it the saved secrets cannot be decrypted; to start over, delete %s and sign in again)", b.path, b.wrappedKeyPath, wrappedKeyFileName, b.path)
	}
	if err != nil {
		return nil, fmt.Errorf("params store key file %s: %w", b.wrappedKeyPath, err)
	}
	sum := sha256.Sum256(data)
	if b.identity != nil && sum == b.keySum {
		return b.identity, nil
	}
	id, err := b.unwrapKey(data)
	if err != nil {
		return nil, err
	}
	b.identity, b.keySum = id, sum
	return id, nil
}

// damagedKeyError says that secrets.key.age cannot be used. No parse or age error text is
// included: a hand-edited file could hold a key line that such a text would quote.
func (b *fileBackend) damagedKeyError(what string) error {
	return fmt.Errorf("params store key file %s is damaged (%s): restore it from a backup; without it the secrets in %s cannot be decrypted (to start over, delete both files and sign in again)", b.wrappedKeyPath, what, b.path)
}

// unwrapKey decrypts data, the content of secrets.key.age, with the passphrase.
func (b *fileBackend) unwrapKey(data []byte) (*age.X25519Identity, error) {
	types, err := ageStanzaTypes(data)
	if err != nil {
		return nil, b.damagedKeyError("not an age file")
	}
	if !slices.Equal(types, []string{"scrypt"}) {
		return nil, b.damagedKeyError("not encrypted with a passphrase")
	}
	sid, err := age.NewScryptIdentity(b.passphrase)
	if err != nil {
		return nil, fmt.Errorf("params store key file %s: %w", b.wrappedKeyPath, err)
	}
	b.scryptRan()
	r, err := age.Decrypt(bytes.NewReader(data), sid)
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return nil, fmt.Errorf("params store secrets %s: wrong passphrase (it does not open the key file %s): set MAILWRIGHT_PASSPHRASE to the passphrase used when the secrets were saved", b.path, b.wrappedKeyPath)
	}
	if err != nil {
		return nil, b.damagedKeyError("cannot be decrypted")
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return nil, b.damagedKeyError("cannot be decrypted")
	}
	ids, err := age.ParseIdentities(bytes.NewReader(plain))
	var id *age.X25519Identity
	if err == nil && len(ids) == 1 {
		id, _ = ids[0].(*age.X25519Identity)
	}
	if id == nil {
		return nil, b.damagedKeyError("it does not hold one X25519 key")
	}
	return id, nil
}

// createWrappedKey generates an identity and stores it in secrets.key.age, encrypted with
// the passphrase. The caller holds the store's exclusive lock and has checked that the
// file does not exist and that secrets.age does not need an older key.
func (b *fileBackend) createWrappedKey() (*age.X25519Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("params store key file %s: generate: %w", b.wrappedKeyPath, err)
	}
	plain := fmt.Sprintf("# Mailwright: the key that decrypts %s in this folder.\n"+
		"# created: %s\n# public key: %s\n%s\n",
		secretsFileName, time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	rcpt, err := age.NewScryptRecipient(b.passphrase)
	if err != nil {
		return nil, fmt.Errorf("params store key file %s: %w", b.wrappedKeyPath, err)
	}
	rcpt.SetWorkFactor(b.scryptLogN)
	var buf bytes.Buffer
	b.scryptRan()
	w, err := age.Encrypt(&buf, rcpt)
	if err == nil {
		_, err = io.WriteString(w, plain)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("params store key file %s: encrypt: %w", b.wrappedKeyPath, err)
	}
	if err := WriteFileAtomic(b.wrappedKeyPath, buf.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("params store key file: %w", err)
	}
	b.identity, b.keySum = id, sha256.Sum256(buf.Bytes())
	return id, nil
}
