package oauthparams

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Names of the secrets backends, as used in StoreOptions.Backend, BackendInfo.Name and
// the "secrets" record of paramsets.json.
const (
	BackendAuto    = "auto"    // keyring when reachable, else file (only for StoreOptions)
	BackendKeyring = "keyring" // the OS keyring (Secret Service, macOS Keychain, Windows Credential Manager)
	BackendFile    = "file"    // an age-encrypted file in the data folder
)

// Encryption modes of the file backend, as recorded in paramsets.json.
const (
	encX25519 = "x25519" // recipient from the key file <dataDir>/secrets.key
	// encScrypt: passphrase (StoreOptions.Passphrase) used directly as an age scrypt
	// recipient for secrets.age. Written by earlier versions only: it is still read, and
	// the next write converts it to encScryptWrapped.
	encScrypt = "scrypt"
	// encScryptWrapped: passphrase mode; secrets.age is encrypted to an X25519 identity
	// kept in <dataDir>/secrets.key.age, itself age-encrypted with the passphrase
	// (scrypt), so that scrypt runs once per Store instead of on every read and write.
	encScryptWrapped = "scrypt-wrapped"
)

// passphraseEncryption reports whether enc, a recorded Encryption, needs the passphrase.
func passphraseEncryption(enc string) bool { return enc == encScrypt || enc == encScryptWrapped }

// BackendInfo describes where a Store keeps the secrets, in words for the user.
type BackendInfo struct {
	// Name is "keyring" or "file".
	Name string
	// Detail says where exactly, e.g. "Secret Service (D-Bus), service \"mailwright\"" or
	// "age-encrypted file /home/u/.config/mailwright/secrets.age (key file ...)".
	Detail string
}

// SecretBackend keeps the Secrets of parameter sets under stable keys (the store's
// internal set IDs, not the set names, so that renaming a set does not move its secrets).
// Implementations serialize Secrets as JSON and never put secret values in errors.
type SecretBackend interface {
	// Get returns the secrets stored under key; ok is false (and err nil) if there are none.
	Get(key string) (s Secrets, ok bool, err error)
	// Set stores s under key, replacing what was there.
	Set(key string, s Secrets) error
	// Delete removes the secrets stored under key; deleting a missing key is not an error.
	Delete(key string) error
	// Info describes the backend for the user.
	Info() BackendInfo
}

// storeDeps are the parts tests replace.
type storeDeps struct {
	keyring    keyringAPI
	busCheck   func() error // nil error: a D-Bus session bus may be there
	scryptLogN int          // 0: age's default
	onScrypt   func()       // test hook: called each time the file backend runs scrypt
}

// secretsRecord is the "secrets" object of paramsets.json: which backend holds the
// secrets, so that a later process (possibly without a keyring) does not silently use
// another backend and lose them.
type secretsRecord struct {
	Backend    string `json:"backend"`              // BackendKeyring or BackendFile
	Service    string `json:"service,omitempty"`    // keyring service name
	Encryption string `json:"encryption,omitempty"` // file backend: encX25519 or encScrypt
}

// secretsWire is the JSON form of Secrets inside a backend.
type secretsWire struct {
	ClientSecret string    `json:"client_secret,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	AccessExpiry time.Time `json:"access_expiry,omitzero"`
}

func toWire(s Secrets) secretsWire {
	return secretsWire{ClientSecret: s.ClientSecret, RefreshToken: s.RefreshToken,
		AccessToken: s.AccessToken, AccessExpiry: s.AccessExpiry}
}

func (w secretsWire) secrets() Secrets {
	return Secrets{ClientSecret: w.ClientSecret, RefreshToken: w.RefreshToken,
		AccessToken: w.AccessToken, AccessExpiry: w.AccessExpiry}
}

// marshalSecrets encodes s as JSON for a backend.
func marshalSecrets(s Secrets) ([]byte, error) {
	b, err := json.Marshal(toWire(s))
	if err != nil {
		return nil, errors.New("encode secrets: unexpected JSON error") // never echo values
	}
	return b, nil
}

// unmarshalSecrets decodes what marshalSecrets wrote. The JSON error is not included:
// its text could quote part of a secret.
func unmarshalSecrets(b []byte) (Secrets, error) {
	var w secretsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Secrets{}, errors.New("stored secrets are not valid JSON (damaged?)")
	}
	return w.secrets(), nil
}

// secretsEqual reports whether a and b hold the same values.
func secretsEqual(a, b Secrets) bool {
	return a.ClientSecret == b.ClientSecret && a.RefreshToken == b.RefreshToken &&
		a.AccessToken == b.AccessToken && a.AccessExpiry.Equal(b.AccessExpiry)
}

// secretsZero reports whether s holds nothing worth storing.
func secretsZero(s Secrets) bool { return secretsEqual(s, Secrets{}) }

// putSecrets stores sec under id, or removes what is stored if sec is zero.
func (s *Store) putSecrets(b SecretBackend, id string, sec Secrets, isNew bool) error {
	if secretsZero(sec) {
		if isNew {
			return nil
		}
		return b.Delete(id)
	}
	return b.Set(id, sec)
}

// record returns the secretsRecord describing backend b.
func record(b SecretBackend) secretsRecord {
	switch b := b.(type) {
	case *keyringBackend:
		return secretsRecord{Backend: BackendKeyring, Service: b.service}
	case *fileBackend:
		if b.passphrase != "" {
			return secretsRecord{Backend: BackendFile, Encryption: encScryptWrapped}
		}
		return secretsRecord{Backend: BackendFile, Encryption: encX25519}
	}
	return secretsRecord{}
}

// sameBackendRecord reports whether a and b name the same backend. The two passphrase
// encryptions are one backend: the old direct-scrypt file is read (and converted on the
// next write) by the backend that writes the wrapped form.
func sameBackendRecord(a, b secretsRecord) bool {
	if passphraseEncryption(a.Encryption) && passphraseEncryption(b.Encryption) {
		a.Encryption, b.Encryption = encScryptWrapped, encScryptWrapped
	}
	return a == b
}

// noteEncryption updates rec, the record about to be written, once b has converted a
// direct-scrypt secrets.age to the wrapped form. It only ever upgrades "scrypt" to
// "scrypt-wrapped": the backend reads either form whatever the record says, so a stale
// record is harmless, but the record should say what the file is.
func noteEncryption(rec *secretsRecord, b SecretBackend) {
	fb, ok := b.(*fileBackend)
	if !ok || rec == nil || rec.Backend != BackendFile || rec.Encryption != encScrypt {
		return
	}
	if fb.observedFormat() == encScryptWrapped {
		rec.Encryption = encScryptWrapped
	}
}

// selectBackend picks the backend for a store whose paramsets.json records rec (nil: no
// secrets saved yet, the choice is free). It never falls back from a recorded backend to
// another one. note is a remark for the user (why the keyring was not chosen), or "".
func (s *Store) selectBackend(rec *secretsRecord) (b SecretBackend, note string, err error) {
	want := s.opts.Backend
	if rec == nil {
		switch want {
		case BackendFile:
			return s.newFileBackend(), "", nil
		case BackendKeyring:
			kb := s.newKeyringBackend(s.opts.KeyringService)
			if err := kb.probe(); err != nil {
				return kb, "", fmt.Errorf("params store %s: the OS keyring was requested but is not reachable: %w", s.dir, err)
			}
			return kb, "", nil
		}
		// auto
		kb := s.newKeyringBackend(s.opts.KeyringService)
		if err := s.deps.busCheck(); err != nil {
			return s.newFileBackend(), "OS keyring not used: " + err.Error(), nil
		}
		if err := kb.probe(); err != nil {
			return s.newFileBackend(), "OS keyring not used: " + err.Error(), nil
		}
		return kb, "", nil
	}

	switch rec.Backend {
	case BackendKeyring:
		if want == BackendFile {
			return s.newKeyringBackend(rec.Service), "", fmt.Errorf("params store %s: the secrets were saved in the OS keyring (service %q), but the file backend was requested: run with the keyring backend (or auto)", s.path, rec.Service)
		}
		service := rec.Service
		if service == "" {
			service = defaultKeyringService
		}
		if s.opts.KeyringService != "" && s.opts.KeyringService != service {
			return nil, "", fmt.Errorf("params store %s: the secrets were saved in the OS keyring under service %q, not %q", s.path, service, s.opts.KeyringService)
		}
		kb := s.newKeyringBackend(service)
		if want != BackendKeyring {
			if err := s.deps.busCheck(); err != nil {
				return kb, "", fmt.Errorf("params store %s: the secrets were saved in the OS keyring (service %q), which is not reachable now: %w; Mailwright does not switch to another backend by itself: run it where the keyring is available (the desktop session)", s.path, service, err)
			}
		}
		return kb, "", nil
	case BackendFile:
		if want == BackendKeyring {
			return s.newFileBackend(), "", fmt.Errorf("params store %s: the secrets were saved in the encrypted file %s, but the keyring backend was requested: run with the file backend (or auto)", s.path, s.secretsPath())
		}
		fb := s.newFileBackend()
		switch {
		case passphraseEncryption(rec.Encryption) && s.opts.Passphrase == "":
			return fb, "", fmt.Errorf("params store %s: the secrets in %s are encrypted with a passphrase: set MAILWRIGHT_PASSPHRASE to the passphrase used when the secrets were saved", s.path, s.secretsPath())
		case !passphraseEncryption(rec.Encryption) && s.opts.Passphrase != "":
			return fb, "", fmt.Errorf("params store %s: the secrets in %s are encrypted with the key file %s, not with a passphrase: unset MAILWRIGHT_PASSPHRASE", s.path, s.secretsPath(), s.keyPath())
		}
		return fb, "", nil
	}
	return nil, "", fmt.Errorf("params store %s: unknown secrets backend %q recorded (written by a newer Mailwright?)", s.path, rec.Backend)
}

// backendFor returns the backend to use with a file that records rec, re-selecting only
// when the record differs from what this Store selected before (another process saved
// the first secrets meanwhile) or when the previous selection failed.
func (s *Store) backendFor(rec *secretsRecord) (SecretBackend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend != nil && s.backendErr == nil && (rec == nil || sameBackendRecord(*rec, record(s.backend))) {
		return s.backend, nil
	}
	b, note, err := s.selectBackend(rec)
	s.backend, s.note, s.backendErr = b, note, err
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Backend describes where the secrets are kept. If the recorded backend cannot be used
// (say the keyring is unreachable), Detail ends with the reason.
func (s *Store) Backend() BackendInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var info BackendInfo
	if s.backend != nil {
		info = s.backend.Info()
	}
	var parts []string
	if info.Detail != "" {
		parts = append(parts, info.Detail)
	}
	if s.note != "" {
		parts = append(parts, s.note)
	}
	if s.backendErr != nil {
		parts = append(parts, "unusable: "+s.backendErr.Error())
	}
	info.Detail = strings.Join(parts, "; ")
	return info
}
