package oauthparams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"filippo.io/age"
)

const wrappedPass = "correct horse battery staple"

// countingDeps are testDeps whose scrypt runs are counted in n.
func countingDeps(n *atomic.Int64) storeDeps {
	d := testDeps()
	d.onScrypt = func() { n.Add(1) }
	return d
}

// openPass opens a passphrase store on dir, counting its scrypt runs in n (may be nil).
func openPass(t testing.TB, dir, passphrase string, n *atomic.Int64) *Store {
	t.Helper()
	if n == nil {
		n = new(atomic.Int64)
	}
	s, err := open(dir, StoreOptions{Backend: BackendFile, Passphrase: passphrase}, countingDeps(n))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recordedEncryption returns the "encryption" of the secrets record in paramsets.json.
func recordedEncryption(t *testing.T, dir string) string {
	t.Helper()
	s := openFile(t, dir, "")
	doc, err := s.readDoc()
	if err != nil || doc.Secrets == nil {
		t.Fatalf("record: %+v, %v", doc.Secrets, err)
	}
	return doc.Secrets.Encryption
}

// setRecordedEncryption rewrites the "encryption" of the record by hand.
func setRecordedEncryption(t *testing.T, dir, enc string) {
	t.Helper()
	path := filepath.Join(dir, paramsFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	doc["secrets"].(map[string]any)["encryption"] = enc
	if data, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// snapshot returns the content of every file in dir but the lock file.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		if e.Name() == lockFileName {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(data)
	}
	return m
}

func sameSnapshot(t *testing.T, dir string, want map[string]string, what string) {
	t.Helper()
	got := snapshot(t, dir)
	if len(got) != len(want) {
		t.Fatalf("%s: files %v, want %v", what, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for name, data := range want {
		if got[name] != data {
			t.Fatalf("%s changed %s", what, name)
		}
	}
}

// wrappedIdentity returns the identity a store holds in memory (passphrase mode).
func wrappedIdentity(t *testing.T, s *Store) *age.X25519Identity {
	t.Helper()
	s.mu.Lock()
	fb, _ := s.backend.(*fileBackend)
	s.mu.Unlock()
	if fb == nil {
		t.Fatal("not a file backend")
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.identity == nil {
		t.Fatal("no identity in memory")
	}
	return fb.identity
}

func wantScrypt(t *testing.T, n *atomic.Int64, want int64, what string) {
	t.Helper()
	if got := n.Load(); got != want {
		t.Errorf("%s ran scrypt %d times, want %d", what, got, want)
	}
}

// TestPassphraseScryptOncePerStore: many writes and reads, by two Stores on one folder
// that see each other's changes, run scrypt once per Store.
func TestPassphraseScryptOncePerStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var na, nb, nc atomic.Int64
	a := openPass(t, dir, wrappedPass, &na)
	for i := range 5 {
		mustPut(t, a, sampleSet(fmt.Sprintf("set %d", i)))
	}
	mustPut(t, a, ParamSet{Name: "counter", Secrets: Secrets{ClientSecret: testClientSecret}})
	wantScrypt(t, &na, 1, "creating the store") // wrapping the new key
	b := openPass(t, dir, wrappedPass, &nb)
	for i := range 30 {
		s, other := a, b
		if i%2 == 1 {
			s, other = b, a
		}
		if err := s.Update("counter", counterUpdate); err != nil {
			t.Fatal(err)
		}
		checkCounter(t, other, i+1) // decrypts what s wrote
		sameSecrets(t, mustGet(t, s, fmt.Sprintf("set %d", i%5)).Secrets, sampleSet("").Secrets)
	}
	wantScrypt(t, &na, 1, "store a")
	wantScrypt(t, &nb, 1, "store b")

	// Concurrent first use inside one Store: still one unwrap.
	c := openPass(t, dir, wrappedPass, &nc)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := c.Get(fmt.Sprintf("set %d", i%5)); err != nil {
				t.Error(err)
			}
			if err := c.Update("counter", func(p *ParamSet) error { p.Secrets.AccessToken = fmt.Sprint("at-", i); return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wantScrypt(t, &nc, 1, "store c")
	if enc := recordedEncryption(t, dir); enc != encScryptWrapped {
		t.Errorf("record says %q, want %q", enc, encScryptWrapped)
	}
}

// TestPassphraseWrappedKeyProblems: wrong passphrase, missing, damaged or foreign
// secrets.key.age give errors naming the files, and never create a new key.
func TestPassphraseWrappedKeyProblems(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openPass(t, dir, wrappedPass, nil)
	mustPut(t, s, sampleSet("work"))
	secretsPath, keyPath := filepath.Join(dir, secretsFileName), filepath.Join(dir, wrappedKeyFileName)
	key, _ := os.ReadFile(keyPath)
	before := snapshot(t, dir)

	_, err := openPass(t, dir, "wrong horse", nil).Get("work")
	wantErr(t, err, secretsPath, keyPath, "wrong passphrase", "set MAILWRIGHT_PASSPHRASE to the passphrase used when the secrets were saved")
	wantErr(t, openPass(t, dir, "wrong horse", nil).Put(sampleSet("other")), "wrong passphrase")
	_, err = openFile(t, dir, "").Get("work")
	wantErr(t, err, secretsPath, "set MAILWRIGHT_PASSPHRASE")
	wantErr(t, openFile(t, dir, "").Put(sampleSet("other")), "set MAILWRIGHT_PASSPHRASE")
	sameSnapshot(t, dir, before, "a failed access")

	// Missing: reads and writes fail, also in a Store that holds the key in memory.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	delete(before, wrappedKeyFileName)
	_, err = openPass(t, dir, wrappedPass, nil).Get("work")
	wantErr(t, err, secretsPath, keyPath, "missing", "restore")
	wantErr(t, openPass(t, dir, wrappedPass, nil).Put(sampleSet("new")), keyPath, "missing")
	wantErr(t, s.Put(sampleSet("new")), keyPath, "missing")
	sameSnapshot(t, dir, before, "a write without the key file")

	// Damaged.
	flipped := bytes.Clone(key)
	flipped[len(flipped)-3] ^= 0xff
	id, _ := age.GenerateX25519Identity()
	var toX25519 bytes.Buffer
	w, _ := age.Encrypt(&toX25519, id.Recipient())
	_, _ = w.Write([]byte(id.String()))
	_ = w.Close()
	for name, content := range map[string][]byte{
		"garbage":        []byte("not an age file"),
		"flipped byte":   flipped,
		"key in clear":   []byte(id.String() + "\n"),
		"not passphrase": toX25519.Bytes(),
		"empty":          {},
	} {
		if err := os.WriteFile(keyPath, content, 0o600); err != nil {
			t.Fatal(err)
		}
		before[wrappedKeyFileName] = string(content)
		_, err = openPass(t, dir, wrappedPass, nil).Get("work")
		wantErr(t, err, keyPath, "damaged", "restore")
		if err != nil && strings.Contains(err.Error(), "AGE-SECRET-KEY") {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
		wantErr(t, openPass(t, dir, wrappedPass, nil).Put(sampleSet("new")), keyPath, "damaged")
		sameSnapshot(t, dir, before, name+": a failed write")
	}

	// Another folder's key, same passphrase.
	other := filepath.Join(t.TempDir(), "other")
	mustPut(t, openPass(t, other, wrappedPass, nil), sampleSet("x"))
	otherKey, _ := os.ReadFile(filepath.Join(other, wrappedKeyFileName))
	if err := os.WriteFile(keyPath, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openPass(t, dir, wrappedPass, nil).Get("work")
	wantErr(t, err, secretsPath, keyPath, "not encrypted with the key")

	// The right key back: all is well, in the old Store too.
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	sameSecrets(t, mustGet(t, openPass(t, dir, wrappedPass, nil), "work").Secrets, sampleSet("").Secrets)
	mustPut(t, s, sampleSet("new"))

	// Damaged secrets.age.
	data, _ := os.ReadFile(secretsPath)
	data[len(data)-5] ^= 0xff
	if err := os.WriteFile(secretsPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openPass(t, dir, wrappedPass, nil).Get("work")
	wantErr(t, err, secretsPath, "damaged")
	if err := os.WriteFile(secretsPath, []byte("not age at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openPass(t, dir, wrappedPass, nil).Get("work")
	wantErr(t, err, secretsPath, "damaged")

	// secrets.age deleted to start over: the existing key is kept and used.
	if err := os.Remove(secretsPath); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	mustPut(t, openPass(t, dir, wrappedPass, &n), sampleSet("work"))
	if k, _ := os.ReadFile(keyPath); !bytes.Equal(k, key) {
		t.Error("a write replaced secrets.key.age")
	}
	wantScrypt(t, &n, 1, "a write with an existing key")
	sameSecrets(t, mustGet(t, openPass(t, dir, wrappedPass, nil), "work").Secrets, sampleSet("").Secrets)
}

// TestPassphraseModeSwitch: a key-file store refuses a passphrase as before.
func TestPassphraseModeSwitch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustPut(t, openFile(t, dir, ""), sampleSet("work"))
	_, err := openPass(t, dir, wrappedPass, nil).Get("work")
	wantErr(t, err, filepath.Join(dir, keyFileName), "unset MAILWRIGHT_PASSPHRASE")
	wantErr(t, openPass(t, dir, wrappedPass, nil).Put(sampleSet("x")), "unset MAILWRIGHT_PASSPHRASE")
	if _, err := os.Stat(filepath.Join(dir, wrappedKeyFileName)); err == nil {
		t.Error("a passphrase store created secrets.key.age in a key-file folder")
	}
}

func TestPassphraseFilesModesAndNoSecretsInClear(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openPass(t, dir, wrappedPass, nil)
	mustPut(t, s, sampleSet("work"))
	mustPut(t, s, sampleSet("home"))
	if err := s.Update("work", counterUpdate); err != nil {
		t.Fatal(err)
	}
	ident := wrappedIdentity(t, s).String()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if runtime.GOOS != "windows" {
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if info.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), want)
			}
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, secret := range []string{testClientSecret, testRefresh, testAccess, "rt-1", wrappedPass, ident, "AGE-SECRET-KEY-1"} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s holds secret or key material in clear (%.12s...)", path, secret)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	onlyEntries(t, dir, paramsFileName, lockFileName, secretsFileName, wrappedKeyFileName)
}
