package oauthparams

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const trPassphrase = "correct horse battery staple"

// trStore opens a key-file store in a fresh temp dir holding the given sets.
func trStore(t testing.TB, sets ...ParamSet) *Store {
	t.Helper()
	s := openFile(t, t.TempDir(), "")
	for _, p := range sets {
		mustPut(t, s, p)
	}
	return s
}

// trSets returns three valid sets; "Beta" has no secrets and a SignInNeeded reason.
func trSets() []ParamSet {
	a, b, c := sampleSet("Alpha"), sampleSet("Beta"), sampleSet("Gamma")
	b.Secrets = Secrets{}
	b.DeviceURL = "https://auth.example.com/device"
	b.RedirectURL = "http://127.0.0.1:8765/"
	b.GrantedScope = "https://mail.example.com/"
	b.Preset = "google"
	b.LastError = "token endpoint: invalid_grant"
	b.MarkSignInNeeded("token expired")
	c.Secrets.ClientSecret = ""
	return []ParamSet{a, b, c}
}

// trState is what must not change when an import fails.
func trState(t testing.TB, s *Store) string {
	t.Helper()
	l, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	lj, _ := json.Marshal(l)
	raw, err := os.ReadFile(s.path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(lj) + "\n---\n" + string(raw)
}

// plainJSON is the plain fields of p as JSON (Secrets are not marshalled).
func plainJSON(p ParamSet) string { b, _ := json.Marshal(p); return string(b) }

func trExport(t testing.TB, s *Store, opts ExportOptions) []byte {
	t.Helper()
	data, err := s.Export(opts)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestExportImportRoundTrip(t *testing.T) {
	src := trStore(t, trSets()...)
	want, _ := src.List()

	t.Run("without secrets", func(t *testing.T) {
		data := trExport(t, src, ExportOptions{})
		for _, sec := range []string{testClientSecret, testRefresh, testAccess} {
			if bytes.Contains(data, []byte(sec)) {
				t.Fatalf("export without secrets holds a secret value")
			}
		}
		var f map[string]any
		if err := json.Unmarshal(data, &f); err != nil || f["format"] != exportFormat || f["version"] != 1.0 || f["secrets"] != nil {
			t.Fatalf("bad header: %v %v", err, f)
		}
		dst := trStore(t)
		plan, err := dst.Import(data, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Items) != 3 || plan.Items[0].Action != "add" || plan.Items[0].WithSecrets {
			t.Fatalf("plan = %+v", plan)
		}
		got, _ := dst.List()
		for i := range want {
			w := want[i]
			w.SignInNeeded = importedNoSecrets
			if plainJSON(got[i]) != plainJSON(w) {
				t.Errorf("set %d:\n got %s\nwant %s", i, plainJSON(got[i]), plainJSON(w))
			}
			p := mustGet(t, dst, w.Name)
			if !secretsZero(p.Secrets) {
				t.Errorf("%s: secrets imported from a file without secrets", w.Name)
			}
			st := p.Status(time.Now())
			if st.State != StateSignInNeeded || !strings.Contains(st.Reason, "imported without secrets") {
				t.Errorf("%s: status %+v", w.Name, st)
			}
		}
	})

	t.Run("with secrets", func(t *testing.T) {
		if _, err := src.Export(ExportOptions{WithSecrets: true}); err == nil {
			t.Fatal("export with secrets and no passphrase succeeded")
		}
		data := trExport(t, src, ExportOptions{WithSecrets: true, Passphrase: trPassphrase})
		for _, sec := range []string{testClientSecret, testRefresh, testAccess} {
			if bytes.Contains(data, []byte(sec)) {
				t.Fatalf("export with secrets holds a secret value in plain text")
			}
		}
		dst := trStore(t)
		before := trState(t, dst)
		_, err := dst.Import(data, ImportOptions{})
		wantErr(t, err, "encrypted secrets", "passphrase")
		_, err = dst.Import(data, ImportOptions{Passphrase: "wrong"})
		wantErr(t, err, "wrong passphrase")
		noSecretIn(t, err)
		if trState(t, dst) != before {
			t.Fatal("a failed import changed the store")
		}
		plan, err := dst.Import(data, ImportOptions{Passphrase: trPassphrase})
		if err != nil {
			t.Fatal(err)
		}
		if !plan.Items[0].WithSecrets || plan.Items[1].WithSecrets {
			t.Fatalf("plan = %+v", plan)
		}
		got, _ := dst.List()
		for i := range want {
			if plainJSON(got[i]) != plainJSON(want[i]) {
				t.Errorf("set %d:\n got %s\nwant %s", i, plainJSON(got[i]), plainJSON(want[i]))
			}
			sameSecrets(t, mustGet(t, dst, want[i].Name).Secrets, mustGet(t, src, want[i].Name).Secrets)
		}
	})
}

func TestExportNames(t *testing.T) {
	s := trStore(t, trSets()...)
	data := trExport(t, s, ExportOptions{Names: []string{" gamma", "ALPHA", "Gamma"}})
	var f exportFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range f.Sets {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"Alpha", "Gamma"}) {
		t.Fatalf("exported %v", names)
	}
	again := trExport(t, s, ExportOptions{Names: []string{"Alpha", "Gamma"}})
	var g exportFile
	_ = json.Unmarshal(again, &g)
	f.ExportedAt, g.ExportedAt = time.Time{}, time.Time{}
	a, _ := json.Marshal(f)
	b, _ := json.Marshal(g)
	if !bytes.Equal(a, b) {
		t.Fatal("export is not deterministic")
	}
	_, err := s.Export(ExportOptions{Names: []string{"Alpha", "Nope", "Other"}})
	wantErr(t, err, `"Nope"`, `"Other"`)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestImportConflicts(t *testing.T) {
	file := trExport(t, trStore(t, trSets()...), ExportOptions{})
	existing := sampleSet("alpha") // conflicts with "Alpha" in the file
	existing.ClientID = "the-stored-one"
	other := sampleSet("Gamma (2)")

	cases := []struct {
		rule  Conflict
		names []string // List after the import
		acts  []string
		check func(t *testing.T, s *Store)
	}{
		{ConflictSkip, []string{"alpha", "Beta", "Gamma", "Gamma (2)"}, []string{"skip", "add", "skip"},
			func(t *testing.T, s *Store) {
				p := mustGet(t, s, "alpha")
				if p.ClientID != "the-stored-one" || p.Secrets.RefreshToken != testRefresh {
					t.Fatal("skip changed the stored set")
				}
			}},
		{ConflictOverwrite, []string{"Alpha", "Beta", "Gamma", "Gamma (2)"}, []string{"replace", "add", "replace"},
			func(t *testing.T, s *Store) {
				p := mustGet(t, s, "Alpha")
				if p.ClientID != "client-id-123" || !secretsZero(p.Secrets) || p.SignInNeeded != importedNoSecrets {
					t.Fatalf("overwrite: %+v", p.Masked())
				}
			}},
		{ConflictRename, []string{"alpha", "Alpha (2)", "Beta", "Gamma", "Gamma (2)", "Gamma (3)"}, []string{"rename", "add", "rename"},
			func(t *testing.T, s *Store) {
				if mustGet(t, s, "alpha").ClientID != "the-stored-one" {
					t.Fatal("rename changed the stored set")
				}
			}},
	}
	for _, tc := range cases {
		t.Run(string(tc.rule), func(t *testing.T) {
			s := trStore(t, existing, other, sampleSet("Gamma"))
			before := trState(t, s)
			plan, err := s.PlanImport(file, ImportOptions{OnConflict: tc.rule})
			if err != nil {
				t.Fatal(err)
			}
			if trState(t, s) != before {
				t.Fatal("PlanImport changed the store")
			}
			var acts []string
			for _, it := range plan.Items {
				acts = append(acts, it.Action)
			}
			if !slices.Equal(acts, tc.acts) {
				t.Fatalf("plan actions %v, want %v", acts, tc.acts)
			}
			got, err := s.Import(file, ImportOptions{OnConflict: tc.rule})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Items, plan.Items) {
				t.Fatalf("import did %+v, planned %+v", got.Items, plan.Items)
			}
			l, _ := s.List()
			var names []string
			for _, p := range l {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tc.names) {
				t.Fatalf("names %v, want %v", names, tc.names)
			}
			tc.check(t, s)
		})
	}

	t.Run("fail", func(t *testing.T) {
		s := trStore(t, existing, sampleSet("Gamma"))
		before := trState(t, s)
		for _, rule := range []Conflict{"", ConflictFail} {
			_, err := s.Import(file, ImportOptions{OnConflict: rule})
			wantErr(t, err, `sets[0].name: "Alpha" already exists`, `sets[2].name: "Gamma" already exists`)
			if !errors.Is(err, ErrExists) {
				t.Fatalf("err = %v, want ErrExists", err)
			}
		}
		again := trExport(t, s, ExportOptions{})
		if plan, err := s.Import(again, ImportOptions{OnConflict: ConflictSkip}); err != nil || len(plan.Items) != 2 {
			t.Fatalf("skip all: %+v, %v", plan, err)
		}
		if trState(t, s) != before {
			t.Fatal("an import that skipped every set wrote the store")
		}
		_, err := s.Import(file, ImportOptions{OnConflict: "merge"})
		wantErr(t, err, "unknown conflict rule")
		if trState(t, s) != before {
			t.Fatal("a failed import changed the store")
		}
	})
}

// trValidFile is a valid export file with two sets, for editing into bad ones.
const trValidFile = `{
  "format": "mailwright-paramsets",
  "version": 1,
  "exported_at": "2026-01-02T03:04:05Z",
  "future_field": {"ignored": true},
  "sets": [
    {"name": "One", "client_id": "id1", "auth_url": "https://a.example.com/auth",
     "token_url": "https://a.example.com/token", "scope": "https://mail.example.com/"},
    {"name": "Two", "client_id": "id2", "auth_url": "https://b.example.com/auth",
     "token_url": "https://b.example.com/token", "scope": "imap", "last_refresh": "2026-01-02T03:04:05Z"}
  ]
}
`

func TestImportBadFiles(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(trValidFile, old) {
			t.Fatalf("edit: %q not in the valid file", old)
		}
		return strings.Replace(trValidFile, old, new, 1)
	}
	edit2 := func(o1, n1, o2, n2 string) string { return strings.Replace(edit(o1, n1), o2, n2, 1) }
	huge := strings.Replace(trValidFile, `"future_field"`, `"pad": "`+strings.Repeat("x", 11<<20)+`", "future_field"`, 1)
	cases := []struct {
		name, file string
		want       []string
	}{
		{"truncated", trValidFile[:200], []string{"line 7, column", "unexpected end"}},
		{"syntax error", edit(`"version": 1,`, `"version": 1,,`), []string{"line 3, column 16", "invalid character ','"}},
		{"trailing garbage", trValidFile + "x", []string{"line 13, column 1", "after top-level value"}},
		{"second object", trValidFile + "{}", []string{"after top-level value"}},
		{"not an object", `[1, 2]`, []string{"want an object, got array"}},
		{"wrong types", edit(`"client_id": "id2"`, `"client_id": 2`), []string{"sets[1].client_id: line 9, column", "want a string, got number"}},
		{"wrong types in two sets", edit2(`"client_id": "id2"`, `"client_id": 2`, `"scope": "https://mail.example.com/"`, `"scope": ["x"]`),
			[]string{"sets[0].scope: line 8", "want a string, got array", "sets[1].client_id: line 9"}},
		{"set not an object", edit(`"sets": [`, `"sets": [ "x",`), []string{"sets[0]: line 6, column", "want an object, got string"}},
		{"bad time", edit(`"last_refresh": "2026-01-02T03:04:05Z"`, `"last_refresh": "yesterday"`), []string{"sets[1]: line 9, column 5", "yesterday"}},
		{"version 2", edit(`"version": 1`, `"version": 2`), []string{"newer Mailwright"}},
		{"version missing", edit(`"version": 1,`, ``), []string{"version: missing"}},
		{"wrong format", edit(`"mailwright-paramsets"`, `"thunderbird-accounts"`), []string{"format:", "not a Mailwright parameter-set export"}},
		{"no format", `{"version": 1, "sets": []}`, []string{"format: missing"}},
		{"no sets", `{"format": "mailwright-paramsets", "version": 1}`, []string{"sets: missing"}},
		{"duplicate names", edit(`"name": "Two"`, `"name": " one "`), []string{`sets[1].name: "one" is also the name of sets[0]`}},
		{"endpoint not a URL", edit(`"https://b.example.com/token"`, `"not a url"`), []string{"sets[1].token_url:"}},
		{"scope with control chars", edit(`"scope": "imap"`, `"scope": "imap\u0007"`), []string{"sets[1].scope: must not contain control characters"}},
		{"every problem at once", edit2(`"https://b.example.com/token"`, `"ftp://x"`, `"name": "One"`, `"name": ""`),
			[]string{"sets[0].name: must not be empty", "sets[1].token_url:"}},
		{"control chars in a key", edit(`"scope": "imap"`, `"scope": "imap", "extra_params": {"a\u001b[2Jb": "x"}`), []string{"sets[1].extra_params.a?[2Jb:"}},
		{"plain secret", edit(`"client_id": "id1"`, `"client_id": "id1", "refresh_token": "rt-plain"`), []string{"sets[0]: holds a secret in plain text"}},
		{"11 MiB", huge, []string{"10 MiB"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := trStore(t, sampleSet("Existing"))
			before := trState(t, s)
			if _, err := s.PlanImport([]byte(tc.file), ImportOptions{}); err == nil {
				t.Fatal("PlanImport accepted a bad file")
			}
			_, err := s.Import([]byte(tc.file), ImportOptions{OnConflict: ConflictOverwrite})
			wantErr(t, err, tc.want...)
			if strings.Contains(err.Error(), "rt-plain") {
				t.Fatal("error shows a secret")
			}
			if trState(t, s) != before {
				t.Fatal("a failed import changed the store")
			}
		})
	}
	// The valid file itself imports (forward-compatible: unknown fields are ignored).
	s := trStore(t)
	if _, err := s.Import([]byte(trValidFile), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestImportRollback makes the secrets file unusable (a directory): the import must fail
// and leave the store as it was.
func TestImportRollback(t *testing.T) {
	src := trStore(t, trSets()...)
	data := trExport(t, src, ExportOptions{WithSecrets: true, Passphrase: trPassphrase})
	dst := trStore(t, sampleSet("Alpha"))
	before := trState(t, dst)
	key, _ := os.ReadFile(filepath.Join(dst.dir, keyFileName))
	// A directory where secrets.age is written makes every secrets write fail.
	sec := dst.secretsPath()
	saved, _ := os.ReadFile(sec)
	if err := os.Remove(sec); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sec, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := dst.Import(data, ImportOptions{OnConflict: ConflictOverwrite, Passphrase: trPassphrase})
	if err == nil {
		t.Fatal("import succeeded with an unwritable secrets file")
	}
	noSecretIn(t, err)
	_ = os.Remove(sec)
	_ = os.WriteFile(sec, saved, 0o600)
	if trState(t, dst) != before {
		t.Fatal("a failed import changed the store")
	}
	if k, _ := os.ReadFile(filepath.Join(dst.dir, keyFileName)); !bytes.Equal(k, key) {
		t.Fatal("key file changed")
	}
	sameSecrets(t, mustGet(t, dst, "Alpha").Secrets, sampleSet("Alpha").Secrets)
}

// trFailingBackend fails the failAt-th Set (1-based).
type trFailingBackend struct {
	SecretBackend
	sets, failAt int
}

func (f *trFailingBackend) Set(key string, s Secrets) error {
	if f.sets++; f.sets == f.failAt {
		return errors.New("disk full")
	}
	return f.SecretBackend.Set(key, s)
}

// TestImportRollbackMidway fails the second secrets write: the first must be undone.
func TestImportRollbackMidway(t *testing.T) {
	data := trExport(t, trStore(t, trSets()...), ExportOptions{WithSecrets: true, Passphrase: trPassphrase})
	dst := trStore(t) // no secrets record yet: the injected backend is used as is
	real := dst.newFileBackend()
	fb := &trFailingBackend{SecretBackend: real, failAt: 2}
	dst.mu.Lock()
	dst.backend, dst.backendErr = fb, nil
	dst.mu.Unlock()
	before := trState(t, dst)
	_, err := dst.Import(data, ImportOptions{Passphrase: trPassphrase})
	wantErr(t, err, "disk full")
	if fb.sets != 2 {
		t.Fatalf("%d secrets writes, want 2", fb.sets)
	}
	if keys, err := real.keys(); err != nil || len(keys) != 0 {
		t.Fatalf("secrets left behind: %v %v", keys, err)
	}
	if trState(t, dst) != before {
		t.Fatal("a failed import changed the store")
	}
}
