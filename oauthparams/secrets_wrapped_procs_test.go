package oauthparams

// Passphrase mode with several Stores and processes on one folder, and its benchmark.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
)

// TestPassphraseTwoStoresCreateOneKey: two Stores of a fresh folder write their first
// secrets at the same moment; the lock makes them share one key.
func TestPassphraseTwoStoresCreateOneKey(t *testing.T) {
	for round := range 5 {
		dir := filepath.Join(t.TempDir(), "data")
		var na, nb atomic.Int64
		a, b := openPass(t, dir, wrappedPass, &na), openPass(t, dir, wrappedPass, &nb)
		mustPut(t, a, ParamSet{Name: "counter"}) // no secrets: no key yet
		if _, err := os.Stat(filepath.Join(dir, wrappedKeyFileName)); err == nil {
			t.Fatal("key created without secrets")
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, s := range []*Store{a, b} {
			wg.Go(func() {
				<-start
				for range 10 {
					if err := s.Update("counter", counterUpdate); err != nil {
						t.Error(err)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		checkCounter(t, a, 20)
		checkCounter(t, b, 20)
		if wrappedIdentity(t, a).String() != wrappedIdentity(t, b).String() {
			t.Fatalf("round %d: the stores hold different keys", round)
		}
		wantScrypt(t, &na, 1, "store a")
		wantScrypt(t, &nb, 1, "store b")
		checkCounter(t, openPass(t, dir, wrappedPass, nil), 20)
	}
}

const wrappedHelperEnv = "MAILWRIGHT_OAUTHPARAMS_WRAPPED_HELPER_DIR"

// TestPassphraseHelperProcess is not a test: TestPassphraseConcurrentProcesses runs the
// test binary with it as a separate process doing 10 Updates in passphrase mode. It
// prints the public key of the key it used and fails if it ran scrypt more than once.
func TestPassphraseHelperProcess(t *testing.T) {
	dir := os.Getenv(wrappedHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestPassphraseConcurrentProcesses")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var n atomic.Int64
	s, err := open(dir, StoreOptions{Backend: BackendFile, Passphrase: wrappedPass, LockTimeout: time.Minute}, countingDeps(&n))
	if err != nil {
		fail(err)
	}
	for range 10 {
		if err := s.Update("counter", counterUpdate); err != nil {
			fail(err)
		}
	}
	if n.Load() != 1 {
		fail(fmt.Errorf("scrypt ran %d times", n.Load()))
	}
	fmt.Println("recipient", wrappedIdentity(t, s).Recipient())
	os.Exit(0)
}

// TestPassphraseConcurrentProcesses: four processes write the first secrets of a fresh
// folder concurrently; they create one key and lose no update.
func TestPassphraseConcurrentProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openPass(t, dir, wrappedPass, nil)
	mustPut(t, s, ParamSet{Name: "counter"})
	var wg sync.WaitGroup
	recipients := make([]string, 4)
	for i := range recipients {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestPassphraseHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), wrappedHelperEnv+"="+dir)
			out, err := cmd.Output()
			if err != nil {
				var stderr []byte
				if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
					stderr = ee.Stderr
				}
				t.Errorf("helper %d: %v\n%s%s", i, err, out, stderr)
				return
			}
			for line := range strings.Lines(string(out)) {
				if r, ok := strings.CutPrefix(strings.TrimSpace(line), "recipient "); ok {
					recipients[i] = r
				}
			}
		})
	}
	wg.Wait()
	checkCounter(t, s, 40)
	want := wrappedIdentity(t, s).Recipient().String()
	for i, r := range recipients {
		if r != want {
			t.Errorf("helper %d used key %q, the folder's is %q", i, r, want)
		}
	}
}

// BenchmarkPassphraseStoreUpdate measures a token refresh's store write (rotating a
// refresh token) in passphrase mode with age's default scrypt work factor (2^18), and
// the same write as earlier versions made it (secrets.age encrypted directly with
// scrypt, every time):
//
//	go test -run '^$' -bench BenchmarkPassphraseStoreUpdate -benchmem -benchtime 10x ./oauthparams/
func BenchmarkPassphraseStoreUpdate(b *testing.B) {
	deps := storeDeps{keyring: osKeyring{}} // scryptLogN 0: age's default
	setup := func(b *testing.B) (*Store, string) {
		dir := filepath.Join(b.TempDir(), "data")
		s, err := open(dir, StoreOptions{Backend: BackendFile, Passphrase: wrappedPass}, deps)
		if err != nil {
			b.Fatal(err)
		}
		for i := range 20 {
			mustPut(b, s, sampleSet(fmt.Sprintf("set %d", i)))
		}
		mustPut(b, s, ParamSet{Name: "counter", Secrets: Secrets{ClientSecret: testClientSecret}})
		return s, dir
	}
	b.Run("wrapped-key", func(b *testing.B) {
		s, _ := setup(b)
		for b.Loop() {
			if err := s.Update("counter", counterUpdate); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wrapped-key-write-then-other-store-reads", func(b *testing.B) {
		s, dir := setup(b)
		other, err := open(dir, StoreOptions{Backend: BackendFile, Passphrase: wrappedPass}, deps)
		if err != nil {
			b.Fatal(err)
		}
		mustGet(b, other, "counter") // its one unwrap
		for b.Loop() {
			if err := s.Update("counter", counterUpdate); err != nil {
				b.Fatal(err)
			}
			mustGet(b, other, "counter")
		}
	})
	b.Run("direct-scrypt-as-before", func(b *testing.B) {
		// What each write cost before: the same JSON encrypted with scrypt, written
		// atomically (the read before it was served from the decryption cache).
		s, _ := setup(b)
		fb := s.backend.(*fileBackend)
		fb.mu.Lock()
		m, err := fb.load()
		fb.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			m["counter"] = secretsWire{ClientSecret: testClientSecret, RefreshToken: "rt-" + time.Now().String()}
			plain, _ := json.Marshal(m)
			r, _ := age.NewScryptRecipient(wrappedPass)
			var buf bytes.Buffer
			w, err := age.Encrypt(&buf, r)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = w.Write(plain)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			if err := WriteFileAtomic(fb.path, buf.Bytes(), 0o600); err != nil {
				b.Fatal(err)
			}
		}
	})
}
