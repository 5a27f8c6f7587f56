package oauthparams

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// Secret values used by the tests; scanned for in files and errors.
const (
	testClientSecret = "cs-Zq8YHx1vT4nM-client-secret"
	testRefresh      = "rt-1//0gW3kP9sLq7Vv-refresh-token"
	testAccess       = "at-ya29.a0AfB_byC8-access-token"
)

// testDeps are the real dependencies, with a cheap scrypt work factor.
func testDeps() storeDeps {
	return storeDeps{keyring: osKeyring{}, busCheck: sessionBusCheck, scryptLogN: 10}
}

// openFile opens a file-backend store on dir (key file unless passphrase is set).
func openFile(t testing.TB, dir, passphrase string) *Store {
	t.Helper()
	s, err := open(dir, StoreOptions{Backend: BackendFile, Passphrase: passphrase}, testDeps())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleSet(name string) ParamSet {
	return ParamSet{
		Name:        name,
		Account:     "user@example.com",
		ClientID:    "client-id-123",
		AuthURL:     "https://auth.example.com/authorize",
		TokenURL:    "https://auth.example.com/token",
		Scope:       "https://mail.example.com/ offline_access",
		ExtraParams: map[string]string{"prompt": "consent"},
		LastRefresh: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Secrets: Secrets{
			ClientSecret: testClientSecret,
			RefreshToken: testRefresh,
			AccessToken:  testAccess,
			AccessExpiry: time.Date(2026, 1, 2, 4, 4, 5, 0, time.UTC),
		},
	}
}

func mustPut(t testing.TB, s *Store, p ParamSet) {
	t.Helper()
	if err := s.Put(p); err != nil {
		t.Fatal(err)
	}
}

func mustGet(t testing.TB, s *Store, name string) ParamSet {
	t.Helper()
	p, err := s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sameSecrets(t testing.TB, got, want Secrets) {
	t.Helper()
	if !secretsEqual(got, want) {
		t.Fatalf("secrets differ (got refresh token length %d, want %d)", len(got.RefreshToken), len(want.RefreshToken))
	}
}

// storedID returns the internal ID of a set, read from paramsets.json.
func storedID(t testing.TB, s *Store, name string) string {
	t.Helper()
	doc, err := s.readDoc()
	if err != nil {
		t.Fatal(err)
	}
	i := doc.find(name)
	if i < 0 {
		t.Fatalf("%q not in file", name)
	}
	return doc.Sets[i].ID
}

func TestPutGetList(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "data"), "")
	want := sampleSet("  Work Mail  ")
	mustPut(t, s, want)
	mustPut(t, s, sampleSet("archive"))
	mustPut(t, s, sampleSet("Zed"))

	got := mustGet(t, s, "WORK mail")
	if got.Name != "Work Mail" {
		t.Errorf("name %q, want trimmed %q", got.Name, "Work Mail")
	}
	if got.ClientID != want.ClientID || got.ExtraParams["prompt"] != "consent" || !got.LastRefresh.Equal(want.LastRefresh) {
		t.Errorf("plain fields differ: %+v", got)
	}
	sameSecrets(t, got.Secrets, want.Secrets)

	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
		if !secretsZero(p.Secrets) {
			t.Errorf("List loaded the secrets of %q", p.Name)
		}
	}
	if strings.Join(names, ",") != "archive,Work Mail,Zed" {
		t.Errorf("List order %v", names)
	}

	// Put with another case replaces the same set (and keeps its id).
	id := storedID(t, s, "work mail")
	repl := sampleSet("work MAIL")
	repl.ClientID = "other"
	repl.Secrets = Secrets{RefreshToken: "rt-new"}
	mustPut(t, s, repl)
	if list, _ := s.List(); len(list) != 3 {
		t.Fatalf("%d sets after replacing, want 3", len(list))
	}
	got = mustGet(t, s, "Work Mail")
	if got.Name != "work MAIL" || got.ClientID != "other" || got.Secrets.RefreshToken != "rt-new" || got.Secrets.ClientSecret != "" {
		t.Errorf("replace: %+v", got)
	}
	if storedID(t, s, "work mail") != id {
		t.Error("replacing changed the internal id")
	}

	// Zero secrets remove the stored ones.
	repl.Secrets = Secrets{}
	mustPut(t, s, repl)
	if got := mustGet(t, s, "work mail"); !secretsZero(got.Secrets) {
		t.Error("Put with zero secrets kept the old ones")
	}
	keys, err := s.newFileBackend().keys()
	if err != nil || len(keys) != 2 {
		t.Errorf("backend keys %v, %v; want the 2 other sets", keys, err)
	}
}

func TestErrors(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "data"), "")
	mustPut(t, s, sampleSet("one"))
	mustPut(t, s, sampleSet("two"))

	if _, err := s.Get("missing"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Get missing: %v", err)
	}
	if err := s.Put(ParamSet{Name: "   "}); err == nil {
		t.Error("Put with an empty name succeeded")
	}
	if err := s.Rename("one", "TWO"); !errors.Is(err, ErrExists) {
		t.Errorf("Rename onto another set: %v", err)
	}
	if err := s.Rename("nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Rename missing: %v", err)
	}
	if err := s.Rename("one", " "); err == nil {
		t.Error("Rename to an empty name succeeded")
	}
	if err := s.Delete("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete missing: %v", err)
	}
	if err := s.Update("nope", func(*ParamSet) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update missing: %v", err)
	}
	if err := s.Update("one", func(p *ParamSet) error { p.Name = "Two"; return nil }); !errors.Is(err, ErrExists) {
		t.Errorf("Update renaming onto another set: %v", err)
	}
	boom := errors.New("boom")
	err := s.Update("one", func(p *ParamSet) error { p.LastError = "changed"; p.Secrets.RefreshToken = "x"; return boom })
	if !errors.Is(err, boom) {
		t.Errorf("Update fn error: %v", err)
	}
	if got := mustGet(t, s, "one"); got.LastError != "" || got.Secrets.RefreshToken != testRefresh {
		t.Error("a failed Update saved something")
	}
	if strings.Contains(err.Error(), testRefresh) {
		t.Error("secret in error")
	}
}

func TestRenameKeepsSecretsDeleteRemovesThem(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "data"), "")
	mustPut(t, s, sampleSet("Old"))
	id := storedID(t, s, "old")
	if err := s.Rename("OLD", "  New  "); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("old"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old name still there: %v", err)
	}
	got := mustGet(t, s, "new")
	if got.Name != "New" {
		t.Errorf("name %q", got.Name)
	}
	sameSecrets(t, got.Secrets, sampleSet("").Secrets)
	if storedID(t, s, "new") != id {
		t.Error("rename changed the internal id")
	}
	if err := s.Rename("new", "NEW"); err != nil { // same set, other case
		t.Fatal(err)
	}
	if got := mustGet(t, s, "new"); got.Name != "NEW" {
		t.Errorf("case-only rename: %q", got.Name)
	}

	if err := s.Delete("new"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.newFileBackend().Get(id); ok || err != nil {
		t.Errorf("secrets still in the backend after Delete (ok=%v, err=%v)", ok, err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("%d sets left", len(list))
	}
}

func TestUpdate(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "data"), "")
	mustPut(t, s, sampleSet("a"))
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	err := s.Update("A", func(p *ParamSet) error {
		if p.Secrets.RefreshToken != testRefresh {
			t.Error("fn does not see the stored secrets")
		}
		p.Secrets.RefreshToken = "rotated"
		p.LastRefresh = now
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, "a")
	if got.Secrets.RefreshToken != "rotated" || !got.LastRefresh.Equal(now) || got.Secrets.ClientSecret != testClientSecret {
		t.Errorf("after Update: %+v", got)
	}
	// An Update that changes nothing does not rewrite the files (an atomic rewrite would
	// rename a new file into place, so the file's identity would change).
	before, _ := os.Stat(s.path)
	if err := s.Update("a", func(*ParamSet) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(s.path); !os.SameFile(before, after) {
		t.Error("no-op Update rewrote paramsets.json")
	}
	// Update may rename.
	if err := s.Update("a", func(p *ParamSet) error { p.Name = " b "; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "B"); got.Secrets.RefreshToken != "rotated" {
		t.Error("rename by Update lost the secrets")
	}
}

func TestBadFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, paramsFileName)
	for content, want := range map[string]string{
		"{not json":                        "not valid JSON",
		`{"version":2,"sets":[]}`:          "format version 2",
		`{"sets":[{"name":"no version"}]}`: "format version 0",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, StoreOptions{Backend: BackendFile})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: %v", content, err)
		}
	}
	if _, err := Open(dir, StoreOptions{Backend: "vault"}); err == nil {
		t.Error("unknown backend accepted")
	}
}

func TestLockTimeout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := open(dir, StoreOptions{Backend: BackendFile, LockTimeout: 150 * time.Millisecond}, testDeps())
	if err != nil {
		t.Fatal(err)
	}
	other := flock.New(filepath.Join(dir, lockFileName))
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	defer other.Unlock()
	start := time.Now()
	err = s.Put(sampleSet("x"))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, lockFileName)) {
		t.Fatalf("Put while locked: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %v", d)
	}
	if _, err := s.List(); err == nil {
		t.Error("List got a shared lock while another holds it exclusively")
	}
}

// counterUpdate increments the counter kept in LastError and the refresh token.
func counterUpdate(p *ParamSet) error {
	n, _ := strconv.Atoi(p.LastError)
	p.LastError = strconv.Itoa(n + 1)
	p.Secrets.RefreshToken = "rt-" + strconv.Itoa(n+1)
	p.LastRefresh = time.Now()
	return nil
}

func checkCounter(t *testing.T, s *Store, want int) {
	t.Helper()
	got := mustGet(t, s, "counter")
	if got.LastError != strconv.Itoa(want) || got.Secrets.RefreshToken != "rt-"+strconv.Itoa(want) {
		t.Fatalf("counter %q, refresh token %q; want %d (lost updates)", got.LastError, got.Secrets.RefreshToken, want)
	}
}

func TestConcurrentUpdatesTwoStores(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, b := openFile(t, dir, ""), openFile(t, dir, "")
	mustPut(t, a, ParamSet{Name: "counter", Secrets: Secrets{ClientSecret: testClientSecret}})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			if err := s.Update("counter", counterUpdate); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkCounter(t, a, 100)
	checkCounter(t, b, 100)
}

const helperEnv = "MAILWRIGHT_OAUTHPARAMS_HELPER_DIR"

// TestHelperProcess is not a test: TestConcurrentProcesses runs the test binary with it
// as a separate process doing 25 Updates.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestConcurrentProcesses")
	}
	s, err := Open(dir, StoreOptions{Backend: BackendFile, LockTimeout: time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for range 25 {
		if err := s.Update("counter", counterUpdate); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(0)
}

func TestConcurrentProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openFile(t, dir, "")
	mustPut(t, s, ParamSet{Name: "counter", Secrets: Secrets{ClientSecret: testClientSecret}})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("helper %d: %v\n%s", i, err, out)
			}
		})
	}
	wg.Wait()
	checkCounter(t, s, 100)
}

func BenchmarkUpdate(b *testing.B) {
	for _, tc := range []struct {
		name string
		fn   func(p *ParamSet) error
	}{
		{"plain-field", func(p *ParamSet) error { p.LastRefresh = time.Now(); return nil }},
		{"rotate-refresh-token", counterUpdate},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := openFile(b, filepath.Join(b.TempDir(), "data"), "")
			for i := range 20 {
				mustPut(b, s, sampleSet(fmt.Sprintf("set %d", i)))
			}
			mustPut(b, s, ParamSet{Name: "counter", Secrets: Secrets{ClientSecret: testClientSecret}})
			for b.Loop() {
				if err := s.Update("counter", tc.fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
