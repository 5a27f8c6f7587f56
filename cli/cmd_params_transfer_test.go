package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParamsExportImport(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	secretFile := filepath.Join(t.TempDir(), "secret")
	const secret = "export-me-not-0123456789"
	os.WriteFile(secretFile, []byte(secret), 0o600)
	for _, name := range []string{"Work", "Home"} {
		if r := mw(t, src, "params", "set", name, "--preset", "microsoft-common", "--account", strings.ToLower(name)+"@example.com",
			"--client-id", "00000000-0000-0000-0000-00000000000"+string(rune('1'+len(name)%2)), "--client-secret-file", secretFile); r.code != 0 {
			t.Fatalf("set %s: %+v", name, r)
		}
	}
	plainFile := filepath.Join(t.TempDir(), "sets.json")
	r := mw(t, src, "params", "export", "--out", plainFile)
	if r.code != 0 || !strings.Contains(r.stdout, "without secrets") {
		t.Fatalf("export: %+v", r)
	}
	data, _ := os.ReadFile(plainFile)
	if st, _ := os.Stat(plainFile); bytes.Contains(data, []byte(secret)) || st.Mode().Perm() != 0o600 {
		t.Fatalf("export leaks the secret or is not 0600 (%v)", st.Mode())
	}

	// A dry run shows the plan and changes nothing.
	r = mw(t, dst, "params", "import", plainFile, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "add      Home") || !strings.Contains(r.stdout, "dry run") {
		t.Fatalf("dry run: %+v", r)
	}
	if r = mw(t, dst, "params", "list", "--json"); !strings.Contains(r.stdout, `"sets": []`) {
		t.Fatalf("dry run changed the store: %s", r.stdout)
	}
	if r = mw(t, dst, "params", "import", plainFile); r.code != 0 {
		t.Fatalf("import: %+v", r)
	}
	for _, name := range []string{"Work", "Home"} {
		if r = mw(t, dst, "params", "show", name); !strings.Contains(r.stdout, "sign-in needed (imported without secrets") {
			t.Fatalf("imported set %s must need a sign-in: %s", name, r.stdout)
		}
	}
	// Importing again: conflicts fail by default (nothing changes), or rename.
	r = mw(t, dst, "params", "import", plainFile)
	if r.code != 1 || !strings.Contains(r.stderr, "nothing changed") {
		t.Fatalf("conflict: %+v", r)
	}
	r = mw(t, dst, "params", "import", plainFile, "--on-conflict", "rename")
	if r.code != 0 || !strings.Contains(r.stdout, "rename   Work -> Work (2)") {
		t.Fatalf("rename: %+v", r)
	}

	// With secrets: encrypted with the passphrase; the wrong one changes nothing.
	pass, wrong := filepath.Join(t.TempDir(), "pass"), filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600)
	os.WriteFile(wrong, []byte("tr0ub4dor&3\n"), 0o600)
	secretsFile := filepath.Join(t.TempDir(), "with-secrets.json")
	if r = mw(t, src, "params", "export", "--out", secretsFile, "--with-secrets", "--passphrase-file", pass, "Work"); r.code != 0 {
		t.Fatalf("export with secrets: %+v", r)
	}
	if data, _ := os.ReadFile(secretsFile); bytes.Contains(data, []byte(secret)) || bytes.Contains(data, []byte("Home")) {
		t.Fatal("secrets export must hold only Work, with its secret encrypted")
	}
	fresh := t.TempDir()
	if r = mw(t, fresh, "params", "import", secretsFile, "--passphrase-file", wrong); r.code != 1 || !strings.Contains(r.stderr, "passphrase") {
		t.Fatalf("wrong passphrase: %+v", r)
	}
	if r = mw(t, fresh, "params", "import", secretsFile, "--passphrase-file", pass); r.code != 0 {
		t.Fatalf("import with secrets: %+v", r)
	}
	if r = mw(t, fresh, "params", "show", "Work", "--json"); !strings.Contains(r.stdout, `"client_secret": "(set)"`) {
		t.Fatalf("secret not imported: %s", r.stdout)
	}

	for _, bad := range [][]string{
		{"params", "export"},
		{"params", "export", "--out", "x", "--with-secrets"},
		{"params", "import", plainFile, "--on-conflict", "merge"},
	} {
		if r = mw(t, dst, bad...); r.code != ExitUsage {
			t.Errorf("%v: want exit 2, got %+v", bad, r)
		}
	}
}
