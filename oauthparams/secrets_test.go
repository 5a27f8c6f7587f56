package oauthparams

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"
)

// noSecretIn fails if err's text contains one of the test secret values.
func noSecretIn(t *testing.T, err error) {
	t.Helper()
	for _, v := range []string{testClientSecret, testRefresh, testAccess} {
		if err != nil && strings.Contains(err.Error(), v) {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
	noSecretIn(t, err)
}

func TestFileBackendPassphrase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openFile(t, dir, "correct horse")
	if info := s.Backend(); info.Name != BackendFile || !strings.Contains(info.Detail, "passphrase from MAILWRIGHT_PASSPHRASE") {
		t.Errorf("Backend() = %+v", info)
	}
	mustPut(t, s, sampleSet("work"))
	if _, err := os.Stat(filepath.Join(dir, keyFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Error("passphrase mode created a key file")
	}
	// secrets.age is encrypted to the X25519 key that secrets.key.age holds, encrypted
	// with the passphrase (see secrets_wrapped_test.go).
	data, _ := os.ReadFile(filepath.Join(dir, secretsFileName))
	if !strings.Contains(string(data), "-> X25519 ") || strings.Contains(string(data), "-> scrypt ") {
		t.Error("secrets.age is not encrypted to the wrapped X25519 key")
	}
	noSecretIn(t, errors.New(string(data)))
	wrapped, _ := os.ReadFile(filepath.Join(dir, wrappedKeyFileName))
	if !strings.Contains(string(wrapped), "-> scrypt ") {
		t.Error("secrets.key.age is not scrypt-encrypted")
	}

	sameSecrets(t, mustGet(t, openFile(t, dir, "correct horse"), "work").Secrets, sampleSet("").Secrets)

	secrets := filepath.Join(dir, secretsFileName)
	_, err := openFile(t, dir, "wrong horse").Get("work")
	wantErr(t, err, secrets, "wrong passphrase", "set MAILWRIGHT_PASSPHRASE to the passphrase used when the secrets were saved")
	_, err = openFile(t, dir, "").Get("work")
	wantErr(t, err, secrets, "set MAILWRIGHT_PASSPHRASE")
	err = openFile(t, dir, "").Put(sampleSet("other"))
	wantErr(t, err, "set MAILWRIGHT_PASSPHRASE")
}

func TestFileBackendKeyFileProblems(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openFile(t, dir, "")
	if info := s.Backend(); info.Name != BackendFile || !strings.Contains(info.Detail, filepath.Join(dir, keyFileName)) {
		t.Errorf("Backend() = %+v", info)
	}
	mustPut(t, s, sampleSet("work"))
	keyPath := filepath.Join(dir, keyFileName)
	secretsPath := filepath.Join(dir, secretsFileName)
	key, _ := os.ReadFile(keyPath)

	// A key file in place but a passphrase given.
	_, err := openFile(t, dir, "pass").Get("work")
	wantErr(t, err, keyPath, "unset MAILWRIGHT_PASSPHRASE")

	// Missing key file.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	_, err = openFile(t, dir, "").Get("work")
	wantErr(t, err, keyPath, "missing", "restore")
	// ... and a write must not silently create a new key that cannot read the old secrets.
	err = openFile(t, dir, "").Put(sampleSet("new"))
	wantErr(t, err, keyPath, "missing")

	// Damaged key file.
	if err := os.WriteFile(keyPath, []byte("AGE-SECRET-KEY-1GARBAGE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openFile(t, dir, "").Get("work")
	wantErr(t, err, keyPath, "damaged")

	// Another valid key.
	other := openFile(t, filepath.Join(t.TempDir(), "other"), "")
	mustPut(t, other, sampleSet("x"))
	otherKey, _ := os.ReadFile(filepath.Join(other.dir, keyFileName))
	if err := os.WriteFile(keyPath, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openFile(t, dir, "").Get("work")
	wantErr(t, err, secretsPath, keyPath, "not encrypted with the key")

	// Damaged secrets file.
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(secretsPath)
	data[len(data)-5] ^= 0xff
	if err := os.WriteFile(secretsPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openFile(t, dir, "").Get("work")
	wantErr(t, err, secretsPath, "damaged")
	if err := os.WriteFile(secretsPath, []byte("not age at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openFile(t, dir, "").Get("work")
	wantErr(t, err, secretsPath, "damaged")
}

// TestKeyringBackendMock uses go-keyring's in-memory mock (a package global of
// go-keyring: not parallel).
func TestKeyringBackendMock(t *testing.T) {
	keyring.MockInit()
	service := "mailwright-test-" + t.Name()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(dir, StoreOptions{Backend: BackendKeyring, KeyringService: service})
	if err != nil {
		t.Fatal(err)
	}
	if info := s.Backend(); info.Name != BackendKeyring || !strings.Contains(info.Detail, service) {
		t.Errorf("Backend() = %+v", info)
	}
	mustPut(t, s, sampleSet("Work"))
	id := storedID(t, s, "work")
	raw, err := keyring.Get(service, id)
	if err != nil || !strings.Contains(raw, testRefresh) {
		t.Fatalf("keyring item: %v", err)
	}
	sameSecrets(t, mustGet(t, s, "WORK").Secrets, sampleSet("").Secrets)

	if err := s.Rename("work", "Job"); err != nil {
		t.Fatal(err)
	}
	sameSecrets(t, mustGet(t, s, "job").Secrets, sampleSet("").Secrets)

	// Long tokens (Microsoft's are) are split over several items.
	long := sampleSet("Job")
	long.Secrets.AccessToken = strings.Repeat("a.b-c_", 1000)
	mustPut(t, s, long)
	head, _ := keyring.Get(service, id)
	if !strings.HasPrefix(head, chunkHeadPrefix) {
		t.Fatalf("long value not chunked: head %.40q", head)
	}
	if got := mustGet(t, s, "job"); got.Secrets.AccessToken != long.Secrets.AccessToken {
		t.Fatal("chunked value read back differently")
	}
	mustPut(t, s, sampleSet("Job")) // short again: the chunks go
	if _, err := keyring.Get(service, chunkUser(id, 1)); !errors.Is(err, keyring.ErrNotFound) {
		t.Errorf("chunk left over: %v", err)
	}
	sameSecrets(t, mustGet(t, s, "job").Secrets, sampleSet("").Secrets)

	if err := s.Delete("job"); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Get(service, id); !errors.Is(err, keyring.ErrNotFound) {
		t.Errorf("keyring item still there after Delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, secretsFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Error("keyring store wrote secrets.age")
	}
}

// failingKeyring is a keyring that does not answer properly.
type failingKeyring struct{}

func (failingKeyring) Set(string, string, string) error {
	return errors.New("dbus: connection refused")
}
func (failingKeyring) Get(string, string) (string, error) {
	return "", errors.New("dbus: connection refused")
}
func (failingKeyring) Delete(string, string) error { return errors.New("dbus: connection refused") }

// TestRecordedKeyringIsStable: secrets saved in the keyring stay there; a later store
// without a working keyring gets a clear error instead of switching to the file.
func TestRecordedKeyringIsStable(t *testing.T) {
	keyring.MockInit()
	service := "mailwright-test-" + t.Name()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(dir, StoreOptions{Backend: BackendKeyring, KeyringService: service})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, sampleSet("work"))

	// A keyring that errors (auto, nothing probed since the choice is recorded).
	broken, err := open(dir, StoreOptions{KeyringService: service}, storeDeps{keyring: failingKeyring{}})
	if err != nil {
		t.Fatal(err)
	}
	if info := broken.Backend(); info.Name != BackendKeyring {
		t.Errorf("Backend() = %+v, want keyring", info)
	}
	_, err = broken.Get("work")
	wantErr(t, err, "OS keyring", service, "connection refused")
	wantErr(t, broken.Put(sampleSet("other")), "OS keyring")
	if list, err := broken.List(); err != nil || len(list) != 1 {
		t.Errorf("List without the keyring: %d sets, %v", len(list), err)
	}

	// No D-Bus session bus at all (auto).
	noBus := func() error { return errors.New("no D-Bus session bus") }
	headless, err := open(dir, StoreOptions{KeyringService: service}, storeDeps{keyring: osKeyring{}, busCheck: noBus})
	if err != nil {
		t.Fatal(err)
	}
	_, err = headless.Get("work")
	wantErr(t, err, "saved in the OS keyring", "not reachable", "does not switch")
	wantErr(t, headless.Put(sampleSet("other")), "not reachable")
	if !strings.Contains(headless.Backend().Detail, "unusable") {
		t.Errorf("Backend() = %+v", headless.Backend())
	}

	// An explicit file backend conflicts with the record.
	fileStore, err := open(dir, StoreOptions{Backend: BackendFile, KeyringService: service}, testDeps())
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, fileStore.Put(sampleSet("other")), "saved in the OS keyring")
	if info := fileStore.Backend(); info.Name != BackendKeyring || !strings.Contains(info.Detail, "unusable") {
		t.Errorf("Backend() = %+v, want the recorded keyring, unusable", info)
	}
	if _, err := os.Stat(filepath.Join(dir, secretsFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Error("a store switched to the file backend")
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Errorf("%d sets, want 1", len(list))
	}
	// The working keyring still has everything.
	sameSecrets(t, mustGet(t, s, "work").Secrets, sampleSet("").Secrets)
}

// TestAutoWithoutKeyring: on a machine without a D-Bus Secret Service (like CI), auto
// picks the file backend, says so, and records it.
func TestAutoWithoutKeyring(t *testing.T) {
	if sessionBusCheck() == nil {
		t.Skip("a D-Bus session bus is present: auto may pick the keyring here")
	}
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(dir, StoreOptions{KeyringService: "mailwright-test-" + t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	info := s.Backend()
	if info.Name != BackendFile || !strings.Contains(info.Detail, "age-encrypted file") || !strings.Contains(info.Detail, "D-Bus") {
		t.Errorf("Backend() = %+v", info)
	}
	mustPut(t, s, sampleSet("work"))
	doc, _ := s.readDoc()
	if doc.Secrets == nil || doc.Secrets.Backend != BackendFile {
		t.Errorf("record %+v", doc.Secrets)
	}
}

// TestAutoProbeFailsOver: a keyring that errors makes auto choose the file backend; one
// that hangs is given up on after the probe timeout.
func TestAutoProbeFailsOver(t *testing.T) {
	s, err := open(filepath.Join(t.TempDir(), "data"), StoreOptions{}, storeDeps{keyring: failingKeyring{}})
	if err != nil {
		t.Fatal(err)
	}
	if info := s.Backend(); info.Name != BackendFile || !strings.Contains(info.Detail, "connection refused") {
		t.Errorf("Backend() = %+v", info)
	}
	if testing.Short() {
		return
	}
	start := time.Now()
	s, err = open(filepath.Join(t.TempDir(), "data"), StoreOptions{}, storeDeps{keyring: hangingKeyring{}})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > keyringProbeTimeout+2*time.Second {
		t.Errorf("probe took %v", d)
	}
	if info := s.Backend(); info.Name != BackendFile || !strings.Contains(info.Detail, "no answer") {
		t.Errorf("Backend() = %+v", info)
	}
}

// hangingKeyring never answers, like go-keyring with a half-working D-Bus.
type hangingKeyring struct{}

func (hangingKeyring) Set(string, string, string) error   { select {} }
func (hangingKeyring) Get(string, string) (string, error) { select {} }
func (hangingKeyring) Delete(string, string) error        { select {} }

func TestSplitChunks(t *testing.T) {
	v := strings.Repeat("é", 10) // 2-byte runes: cuts must not split them
	parts := splitChunks(v, 5)
	if strings.Join(parts, "") != v {
		t.Fatal("chunks do not join back")
	}
	for _, p := range parts {
		if len(p) > 5 || !strings.HasPrefix(p, "é") {
			t.Errorf("bad chunk %q", p)
		}
	}
}

func TestFilesModesAndNoSecretsInClear(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openFile(t, dir, "")
	mustPut(t, s, sampleSet("work"))
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("data dir mode %v, %v; want 0700", fi.Mode().Perm(), err)
		}
		for _, name := range []string{paramsFileName, secretsFileName, keyFileName} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, %v; want 0600", name, fi.Mode().Perm(), err)
			}
		}
	}
	for _, name := range []string{paramsFileName, secretsFileName} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{testClientSecret, testRefresh, testAccess} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s contains a secret value in clear", name)
			}
		}
	}
	key, _ := os.ReadFile(filepath.Join(dir, keyFileName))
	if !bytes.Contains(key, []byte("AGE-SECRET-KEY-1")) {
		t.Error("key file holds no age identity")
	}
	onlyEntries(t, dir, paramsFileName, lockFileName, secretsFileName, keyFileName)
}

func TestStoredFormat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openFile(t, dir, "")
	mustPut(t, s, sampleSet("work"))
	data, err := os.ReadFile(filepath.Join(dir, paramsFileName))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Version int               `json:"version"`
		Secrets map[string]string `json:"secrets"`
		Sets    []map[string]any  `json:"sets"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Version != 1 || raw.Secrets["backend"] != "file" || raw.Secrets["encryption"] != "x25519" {
		t.Errorf("header: %s", data)
	}
	if len(raw.Sets) != 1 || raw.Sets[0]["id"] == "" || raw.Sets[0]["id"] == nil || raw.Sets[0]["name"] != "work" || raw.Sets[0]["client_id"] != "client-id-123" {
		t.Errorf("set: %s", data)
	}
	if _, ok := raw.Sets[0]["Secrets"]; ok {
		t.Error("Secrets marshalled")
	}
}
