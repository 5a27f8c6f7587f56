package oauthparams

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	paramsFileName     = "paramsets.json"
	lockFileName       = "paramsets.lock"
	fileFormatVersion  = 1
	defaultLockTimeout = 10 * time.Second
)

// ErrNotFound is returned (wrapped, with the name) when no parameter set has the name.
var ErrNotFound = errors.New("parameter set not found")

// ErrExists is returned (wrapped, with the name) when another parameter set already has
// the name, compared case-insensitively.
var ErrExists = errors.New("a parameter set with that name already exists")

// errUnchanged tells mutate that nothing needs writing.
var errUnchanged = errors.New("unchanged")

// StoreOptions configure Open.
type StoreOptions struct {
	// Backend is where secrets go: "auto" (the default when empty: the OS keyring if it
	// answers, else the encrypted file), "keyring" or "file". Once secrets are saved the
	// choice is recorded in paramsets.json and later Stores use the recorded backend; a
	// conflicting explicit choice, or an unreachable recorded keyring, is an error, never
	// a silent switch.
	Backend string
	// Passphrase, for the file backend: if set (e.g. from env MAILWRIGHT_PASSPHRASE, read
	// by the caller), secrets are encrypted to an X25519 identity kept in
	// <dataDir>/secrets.key.age, itself encrypted with the passphrase (age scrypt, run
	// once per Store); else to an X25519 identity kept in clear in <dataDir>/secrets.key.
	// Both key files are 0600 and created on the first write of secrets.
	Passphrase string
	// KeyringService is the keyring service name; default "mailwright". Tests set a
	// unique one.
	KeyringService string
	// LockTimeout is how long an operation waits for the lock file held by another
	// Mailwright process; default 10 s.
	LockTimeout time.Duration
}

// Store keeps the parameter sets of one data folder: plain fields in paramsets.json,
// secrets in a SecretBackend. Every mutation is a read-modify-write under an exclusive
// lock on paramsets.lock (shared with other processes, e.g. the window and a scheduled
// headless run); reads take a shared lock. A Store is safe for concurrent use.
type Store struct {
	dir, path, lockPath string
	opts                StoreOptions
	deps                storeDeps

	mu         sync.Mutex    // guards the fields below
	backend    SecretBackend // selected backend (may be set with backendErr for Info)
	note       string        // why the keyring was not chosen by "auto"
	backendErr error         // why the backend cannot be used
}

// fileDoc is the content of paramsets.json.
type fileDoc struct {
	Version int            `json:"version"`
	Secrets *secretsRecord `json:"secrets,omitempty"`
	Sets    []storedSet    `json:"sets"`
}

// storedSet is a ParamSet as stored: with a stable internal ID that keys its secrets, so
// that renaming does not move them. ParamSet.Secrets is tagged `json:"-"`.
type storedSet struct {
	ID string `json:"id"`
	ParamSet
}

// Open opens (creating it 0700 if needed) the data folder dataDir as a parameter set
// store. It fails if the folder or paramsets.json cannot be used; a problem with the
// secrets backend (e.g. the recorded keyring is unreachable) is reported by Backend()
// and by the methods that need the secrets (Get, Put, Update, Delete), so that List
// still works.
func Open(dataDir string, opts StoreOptions) (*Store, error) {
	return open(dataDir, opts, storeDeps{keyring: osKeyring{}, busCheck: sessionBusCheck})
}

func open(dataDir string, opts StoreOptions, deps storeDeps) (*Store, error) {
	if strings.TrimSpace(dataDir) == "" {
		return nil, errors.New("params store: no data folder given")
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("params store %s: %w", dataDir, err)
	}
	switch opts.Backend {
	case "":
		opts.Backend = BackendAuto
	case BackendAuto, BackendKeyring, BackendFile:
	default:
		return nil, fmt.Errorf("params store %s: unknown secrets backend %q (want auto, keyring or file)", dir, opts.Backend)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = defaultLockTimeout
	}
	if deps.busCheck == nil {
		deps.busCheck = func() error { return nil }
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("params store %s: %w", dir, err)
	}
	s := &Store{dir: dir, path: filepath.Join(dir, paramsFileName),
		lockPath: filepath.Join(dir, lockFileName), opts: opts, deps: deps}
	var rec *secretsRecord
	err = s.withLock(false, func() error {
		doc, err := s.readDoc()
		rec = doc.Secrets
		return err
	})
	if err != nil {
		return nil, err
	}
	_, _ = s.backendFor(rec) // an error is kept for Backend() and the methods needing secrets
	return s, nil
}

func (s *Store) secretsPath() string { return filepath.Join(s.dir, secretsFileName) }
func (s *Store) keyPath() string     { return filepath.Join(s.dir, keyFileName) }

// withLock runs fn holding the lock file, exclusively or shared. Each call opens its own
// descriptor, so the lock also excludes other goroutines and Stores of this process.
func (s *Store) withLock(exclusive bool, fn func() error) error {
	release, err := lockFile(context.Background(), s.lockPath, exclusive, s.opts.LockTimeout)
	if err != nil {
		return fmt.Errorf("params store: %w", err)
	}
	defer release()
	return fn()
}

// readDoc reads paramsets.json; a missing file is an empty store.
func (s *Store) readDoc() (fileDoc, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileDoc{Version: fileFormatVersion}, nil
	}
	if err != nil {
		return fileDoc{}, fmt.Errorf("params store %s: %w", s.path, err)
	}
	var doc fileDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return fileDoc{}, fmt.Errorf("params store %s: not valid JSON (%v): fix it or restore it from a backup", s.path, err)
	}
	if doc.Version != fileFormatVersion {
		return fileDoc{}, fmt.Errorf("params store %s: format version %d, this Mailwright reads version %d (written by a newer Mailwright?)", s.path, doc.Version, fileFormatVersion)
	}
	return doc, nil
}

// writeDoc replaces paramsets.json atomically (0600).
func (s *Store) writeDoc(doc fileDoc) error {
	doc.Version = fileFormatVersion
	if doc.Sets == nil {
		doc.Sets = []storedSet{}
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("params store %s: encode: %w", s.path, err)
	}
	if err := WriteFileAtomic(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("params store: %w", err)
	}
	return nil
}

// find returns the index of the set named name (case-insensitively), or -1.
func (doc *fileDoc) find(name string) int {
	key := NameKey(name)
	return slices.IndexFunc(doc.Sets, func(st storedSet) bool { return NameKey(st.Name) == key })
}

func newID() string { return rand.Text() }

// mutate runs fn on the current file content under the exclusive lock and writes the
// result, unless fn returns errUnchanged. If needSecrets, fn gets the backend (and the
// file records it). If the write fails, undo (when fn returned one) rolls back secrets.
func (s *Store) mutate(needSecrets bool, fn func(doc *fileDoc, b SecretBackend) (undo func(), err error)) error {
	return s.withLock(true, func() error {
		doc, err := s.readDoc()
		if err != nil {
			return err
		}
		var b SecretBackend
		if needSecrets {
			if b, err = s.backendFor(doc.Secrets); err != nil {
				return err
			}
			if doc.Secrets == nil {
				rec := record(b)
				doc.Secrets = &rec
			}
		}
		undo, err := fn(&doc, b)
		if errors.Is(err, errUnchanged) {
			return nil
		}
		if err != nil {
			return err
		}
		if needSecrets {
			noteEncryption(doc.Secrets, b)
		}
		for i := range doc.Sets {
			if doc.Sets[i].ID == "" {
				doc.Sets[i].ID = newID()
			}
		}
		if err := s.writeDoc(doc); err != nil {
			if undo != nil {
				undo()
			}
			return err
		}
		return nil
	})
}

// List returns all parameter sets sorted by name, case-insensitively, without secrets.
func (s *Store) List() ([]ParamSet, error) {
	var doc fileDoc
	err := s.withLock(false, func() (err error) {
		doc, err = s.readDoc()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]ParamSet, 0, len(doc.Sets))
	for _, st := range doc.Sets {
		out = append(out, st.ParamSet)
	}
	slices.SortStableFunc(out, func(a, b ParamSet) int {
		if c := strings.Compare(NameKey(a.Name), NameKey(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// Get returns the set named name (case-insensitively) with its secrets loaded, or an
// error wrapping ErrNotFound.
func (s *Store) Get(name string) (ParamSet, error) {
	var p ParamSet
	err := s.withLock(false, func() error {
		doc, err := s.readDoc()
		if err != nil {
			return err
		}
		i := doc.find(name)
		if i < 0 {
			return fmt.Errorf("params store: %q: %w", strings.TrimSpace(name), ErrNotFound)
		}
		p = doc.Sets[i].ParamSet
		if doc.Sets[i].ID == "" {
			return nil // never saved by a Store: no secrets
		}
		b, err := s.backendFor(doc.Secrets)
		if err != nil {
			return err
		}
		p.Secrets, _, err = b.Get(doc.Sets[i].ID)
		return err
	})
	if err != nil {
		return ParamSet{}, err
	}
	return p, nil
}

// Put creates the set, or replaces the set with the same name (case-insensitively):
// plain fields and secrets (zero Secrets remove the stored ones). The name is trimmed
// and must not be empty.
func (s *Store) Put(p ParamSet) error {
	p.Name = strings.TrimSpace(p.Name)
	if p.Name == "" {
		return errors.New("params store: put: the parameter set has no name")
	}
	return s.mutate(true, func(doc *fileDoc, b SecretBackend) (func(), error) {
		i := doc.find(p.Name)
		id, isNew := "", i < 0
		if !isNew {
			id = doc.Sets[i].ID
		}
		if id == "" {
			id = newID()
		}
		if err := s.putSecrets(b, id, p.Secrets, isNew); err != nil {
			return nil, err
		}
		st := storedSet{ID: id, ParamSet: p}
		st.Secrets = Secrets{}
		if isNew {
			doc.Sets = append(doc.Sets, st)
			return func() { _ = b.Delete(id) }, nil
		}
		doc.Sets[i] = st
		return nil, nil
	})
}

// Update runs fn on the current stored value of the set named name (with secrets) and
// saves the result, all under the exclusive lock, so that concurrent updates from other
// goroutines or processes are never lost: this is how the token refresher saves a
// rotated refresh token and LastRefresh. fn may rename the set (not onto another set's
// name). If fn returns an error nothing is saved and Update returns it, wrapped.
func (s *Store) Update(name string, fn func(p *ParamSet) error) error {
	return s.mutate(true, func(doc *fileDoc, b SecretBackend) (func(), error) {
		i := doc.find(name)
		if i < 0 {
			return nil, fmt.Errorf("params store: update %q: %w", strings.TrimSpace(name), ErrNotFound)
		}
		st := doc.Sets[i]
		var old Secrets
		if st.ID == "" {
			st.ID = newID()
		} else {
			var err error
			if old, _, err = b.Get(st.ID); err != nil {
				return nil, err
			}
		}
		before, _ := json.Marshal(st)
		p := st.ParamSet
		p.Secrets = old
		if err := fn(&p); err != nil {
			return nil, fmt.Errorf("params store: update %q: %w", st.Name, err)
		}
		p.Name = strings.TrimSpace(p.Name)
		if p.Name == "" {
			return nil, fmt.Errorf("params store: update %q: the new name is empty", st.Name)
		}
		if j := doc.find(p.Name); j >= 0 && j != i {
			return nil, fmt.Errorf("params store: update %q: rename to %q: %w", st.Name, p.Name, ErrExists)
		}
		newSt := storedSet{ID: st.ID, ParamSet: p}
		newSt.Secrets = Secrets{}
		after, _ := json.Marshal(newSt)
		secretsChanged := !secretsEqual(p.Secrets, old)
		if !secretsChanged && bytes.Equal(before, after) {
			return nil, errUnchanged
		}
		var undo func()
		if secretsChanged {
			if err := s.putSecrets(b, st.ID, p.Secrets, false); err != nil {
				return nil, err
			}
			undo = func() { _ = s.putSecrets(b, st.ID, old, false) }
		}
		doc.Sets[i] = newSt
		return undo, nil
	})
}

// Rename renames a set, keeping its secrets (they are keyed by an internal ID). It fails
// with ErrNotFound if oldName does not exist and with ErrExists if newName is taken by
// another set; changing only the case (or spacing) of a name is allowed.
func (s *Store) Rename(oldName, newName string) error {
	newName = strings.TrimSpace(newName)
	if newName == "" {
		return fmt.Errorf("params store: rename %q: the new name is empty", strings.TrimSpace(oldName))
	}
	return s.mutate(false, func(doc *fileDoc, _ SecretBackend) (func(), error) {
		i := doc.find(oldName)
		if i < 0 {
			return nil, fmt.Errorf("params store: rename %q: %w", strings.TrimSpace(oldName), ErrNotFound)
		}
		if j := doc.find(newName); j >= 0 && j != i {
			return nil, fmt.Errorf("params store: rename %q to %q: %w", doc.Sets[i].Name, newName, ErrExists)
		}
		if doc.Sets[i].Name == newName {
			return nil, errUnchanged
		}
		doc.Sets[i].Name = newName
		return nil, nil
	})
}

// Delete removes the set named name and its secrets (secrets first: if that fails, the
// set stays and Delete can be retried).
func (s *Store) Delete(name string) error {
	return s.mutate(true, func(doc *fileDoc, b SecretBackend) (func(), error) {
		i := doc.find(name)
		if i < 0 {
			return nil, fmt.Errorf("params store: delete %q: %w", strings.TrimSpace(name), ErrNotFound)
		}
		if id := doc.Sets[i].ID; id != "" {
			if err := b.Delete(id); err != nil {
				return nil, err
			}
		}
		doc.Sets = slices.Delete(doc.Sets, i, i+1)
		return nil, nil
	})
}
