package oauthparams

// Migration of the passphrase mode from secrets.age encrypted directly with scrypt.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
)

// writeDirectScrypt writes secrets.age as versions before the wrapped key did: the JSON
// object {set id: secrets} encrypted directly with an age scrypt recipient.
func writeDirectScrypt(t *testing.T, dir, passphrase string, m map[string]secretsWire) {
	t.Helper()
	plain, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		t.Fatal(err)
	}
	r.SetWorkFactor(testDeps().scryptLogN)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, secretsFileName), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// migrationSets are the sets of TestPassphraseMigratesDirectScrypt.
func migrationSets() []ParamSet {
	a, b := sampleSet("Alpha"), sampleSet("Beta")
	b.Secrets = Secrets{ClientSecret: "cs-beta", RefreshToken: "rt-beta"}
	c := sampleSet("Gamma")
	c.Secrets = Secrets{}
	return []ParamSet{a, b, c}
}

// oldFormatFolder makes a data folder as earlier versions left it in passphrase mode.
func oldFormatFolder(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	s := openPass(t, dir, wrappedPass, nil)
	old := map[string]secretsWire{}
	for _, p := range migrationSets() {
		mustPut(t, s, p)
		if !secretsZero(p.Secrets) {
			old[storedID(t, s, p.Name)] = toWire(p.Secrets)
		}
	}
	writeDirectScrypt(t, dir, wrappedPass, old)
	if err := os.Remove(filepath.Join(dir, wrappedKeyFileName)); err != nil {
		t.Fatal(err)
	}
	setRecordedEncryption(t, dir, encScrypt)
	return dir
}

func checkMigrationSets(t *testing.T, s *Store, changed func(*ParamSet)) {
	t.Helper()
	for _, want := range migrationSets() {
		if changed != nil {
			changed(&want)
		}
		sameSecrets(t, mustGet(t, s, want.Name).Secrets, want.Secrets)
	}
}

// TestPassphraseMigratesDirectScrypt: a secrets.age encrypted directly with scrypt still
// opens; the next write converts it to the wrapped form, keeping every secret.
func TestPassphraseMigratesDirectScrypt(t *testing.T) {
	dir := oldFormatFolder(t)
	secretsPath, keyPath := filepath.Join(dir, secretsFileName), filepath.Join(dir, wrappedKeyFileName)
	before := snapshot(t, dir)

	// Wrong or no passphrase: the errors of before; nothing is created or converted.
	_, err := openPass(t, dir, "wrong horse", nil).Get("Alpha")
	wantErr(t, err, secretsPath, "wrong passphrase", "set MAILWRIGHT_PASSPHRASE to the passphrase used when the secrets were saved")
	wantErr(t, openPass(t, dir, "wrong horse", nil).Put(sampleSet("Delta")), "wrong passphrase")
	_, err = openFile(t, dir, "").Get("Alpha")
	wantErr(t, err, secretsPath, "set MAILWRIGHT_PASSPHRASE")
	wantErr(t, openFile(t, dir, "").Put(sampleSet("Delta")), "set MAILWRIGHT_PASSPHRASE")
	sameSnapshot(t, dir, before, "a failed access")

	// Reading does not convert.
	var n atomic.Int64
	s := openPass(t, dir, wrappedPass, &n)
	checkMigrationSets(t, s, nil)
	checkMigrationSets(t, s, nil)
	wantScrypt(t, &n, 1, "reading the old form twice")
	sameSnapshot(t, dir, before, "reading")

	// The first write converts: one scrypt to wrap the new key.
	rotate := func(p *ParamSet) {
		if p.Name == "Beta" {
			p.Secrets.RefreshToken = "rt-beta-2"
		}
	}
	if err := s.Update("Beta", func(p *ParamSet) error { rotate(p); return nil }); err != nil {
		t.Fatal(err)
	}
	wantScrypt(t, &n, 2, "reading and converting")
	data, _ := os.ReadFile(secretsPath)
	if !bytes.Contains(data, []byte("-> X25519 ")) || bytes.Contains(data, []byte("-> scrypt ")) {
		t.Error("secrets.age not converted")
	}
	if key, err := os.ReadFile(keyPath); err != nil || !bytes.Contains(key, []byte("-> scrypt ")) {
		t.Errorf("secrets.key.age: %v", err)
	}
	if enc := recordedEncryption(t, dir); enc != encScryptWrapped {
		t.Errorf("record says %q after the conversion, want %q", enc, encScryptWrapped)
	}
	for range 5 {
		if err := s.Update("Alpha", func(p *ParamSet) error { p.LastRefresh = time.Now(); return nil }); err != nil {
			t.Fatal(err)
		}
		checkMigrationSets(t, s, rotate)
	}
	wantScrypt(t, &n, 2, "later writes")

	var fresh atomic.Int64
	checkMigrationSets(t, openPass(t, dir, wrappedPass, &fresh), rotate)
	wantScrypt(t, &fresh, 1, "a new store")

	// A crash between writing secrets.age and paramsets.json leaves the old record: the
	// files are still read by their header, and the next write fixes the record.
	setRecordedEncryption(t, dir, encScrypt)
	s2 := openPass(t, dir, wrappedPass, nil)
	checkMigrationSets(t, s2, rotate)
	if err := s2.Update("Alpha", func(p *ParamSet) error { p.Secrets.AccessToken = "at-new"; return nil }); err != nil {
		t.Fatal(err)
	}
	if enc := recordedEncryption(t, dir); enc != encScryptWrapped {
		t.Errorf("record says %q, want %q", enc, encScryptWrapped)
	}
	_, err = openFile(t, dir, "").Get("Alpha")
	wantErr(t, err, "set MAILWRIGHT_PASSPHRASE")
}
