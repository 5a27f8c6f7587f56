package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/test"

	"github.com/mailwright/mailwright/oauthparams"
)

// paramsTestFile is a local file handed to the screen in place of the file dialogs.
type paramsTestFile struct {
	*os.File
	uri fyne.URI
}

func (f paramsTestFile) URI() fyne.URI { return f.uri }

func paramsSaveTo(t *testing.T, path string) func(string, func(fyne.URIWriteCloser)) {
	return func(_ string, cb func(fyne.URIWriteCloser)) {
		f, err := os.Create(path)
		if err != nil {
			t.Error(err)
			return
		}
		cb(paramsTestFile{f, storage.NewFileURI(path)})
	}
}

func paramsOpenFrom(t *testing.T, path string) func(func(fyne.URIReadCloser)) {
	return func(cb func(fyne.URIReadCloser)) {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		cb(paramsTestFile{f, storage.NewFileURI(path)})
	}
}

// paramsTransferServices holds the sets Work and Home, each with a client secret and a
// refresh token.
func paramsTransferServices(t *testing.T) *Services {
	t.Helper()
	s := paramsTestServices(t)
	google, _ := oauthparams.FindPreset("google")
	for _, name := range []string{"Work", "Home"} {
		set := oauthparams.ParamSet{Name: name, Account: strings.ToLower(name) + "@example.com", ClientID: "client-" + name,
			Secrets: oauthparams.Secrets{ClientSecret: "secret-" + name, RefreshToken: "refresh-" + name}}
		set.ApplyPreset(google)
		if err := s.Params.Put(set); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestParamsScreenExportImport exports one set without secrets and imports it into
// another data folder, where the preview says "added" before anything is imported.
func TestParamsScreenExportImport(t *testing.T) {
	test.NewTempApp(t)
	s1 := paramsTransferServices(t)
	h1 := paramsOpen(t, s1)
	h1.eventually("two sets", func(p *ParamsScreen) bool { return len(p.rows) == 2 && !p.Export.Disabled() })

	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.json")
	h1.ui(func(p *ParamsScreen) {
		p.pickSave = paramsSaveTo(t, plain)
		test.Tap(p.Export)
		d := p.exportDlg
		d.Sets.SetSelected([]string{"Work"})
		test.Tap(d.OK)
	})
	h1.eventually("the export", func(p *ParamsScreen) bool { return strings.Contains(p.lastMsg, "Exported 1") })
	data, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "client-Work") || strings.Contains(string(data), "Home") ||
		strings.Contains(string(data), "secret-Work") || strings.Contains(string(data), "refresh-Work") {
		t.Fatalf("export without secrets:\n%s", data)
	}
	if fi, _ := os.Stat(plain); fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file mode %v", fi.Mode())
	}

	// Import into another data folder.
	s2 := paramsTestServices(t)
	h2 := paramsOpen(t, s2)
	h2.eventually("the empty list", func(p *ParamsScreen) bool { return p.loaded })
	h2.ui(func(p *ParamsScreen) {
		p.pickOpen = paramsOpenFrom(t, plain)
		test.Tap(p.Import)
	})
	h2.eventually("the preview", func(p *ParamsScreen) bool {
		return p.importDlg != nil && p.importDlg.planned && strings.Contains(p.importDlg.Preview.Text, "added: Work")
	})
	h2.ui(func(p *ParamsScreen) {
		if !strings.Contains(p.importDlg.Preview.Text, "without secrets") {
			t.Fatalf("preview: %q", p.importDlg.Preview.Text)
		}
		if _, err := s2.Params.Get("Work"); err == nil {
			t.Fatal("the preview imported already")
		}
		test.Tap(p.importDlg.OK)
	})
	h2.eventually("the imported set", func(p *ParamsScreen) bool {
		return p.importDlg == nil && p.rowState("Work") == oauthparams.StateSignInNeeded
	})
}

// TestParamsScreenExportImportSecrets exports a set with its secrets encrypted with a
// passphrase and imports it into a folder that has a set of the same name: after the
// passphrase the preview says it is renamed, and the import keeps the tokens. Skipped
// under the race detector, where each scrypt passphrase derivation takes 15 s.
func TestParamsScreenExportImportSecrets(t *testing.T) {
	if paramsRaceEnabled {
		t.Skip("scrypt is too slow under the race detector")
	}
	test.NewTempApp(t)
	s1 := paramsTransferServices(t)
	h1 := paramsOpen(t, s1)
	h1.eventually("two sets", func(p *ParamsScreen) bool { return len(p.rows) == 2 && !p.Export.Disabled() })
	secret := filepath.Join(t.TempDir(), "secret.json")

	// With secrets: a passphrase is required and must be repeated.
	h1.ui(func(p *ParamsScreen) {
		p.pickSave = paramsSaveTo(t, secret)
		test.Tap(p.Export)
		d := p.exportDlg
		d.Sets.SetSelected([]string{"Work"})
		d.WithSecrets.SetChecked(true)
		test.Tap(d.OK)
		if !strings.Contains(d.Err.Text, "passphrase") || p.exportDlg == nil {
			t.Fatalf("no passphrase asked for: %q", d.Err.Text)
		}
		d.Passphrase.SetText("correct horse")
		d.Repeat.SetText("correct horse")
		p.lastMsg = ""
		test.Tap(d.OK)
	})
	h1.eventually("the export with secrets", func(p *ParamsScreen) bool { return strings.Contains(p.lastMsg, "encrypted secrets") })

	s2 := paramsTransferServices(t)
	h2 := paramsOpen(t, s2)
	h2.eventually("two sets", func(p *ParamsScreen) bool { return len(p.rows) == 2 })

	// The file with secrets: passphrase first, then the conflict is renamed.
	h2.ui(func(p *ParamsScreen) {
		p.pickOpen = paramsOpenFrom(t, secret)
		test.Tap(p.Import)
	})
	h2.eventually("the import dialog", func(p *ParamsScreen) bool { return p.importDlg != nil })
	h2.ui(func(p *ParamsScreen) {
		d := p.importDlg
		if !d.secrets || !d.OK.Disabled() || !strings.Contains(d.Preview.Text, "passphrase") {
			t.Fatalf("no passphrase asked for: %q", d.Preview.Text)
		}
		p.importDlg.Passphrase.SetText("correct horse")
		p.importDlg.Passphrase.OnSubmitted("correct horse")
	})
	h2.eventually("the preview", func(p *ParamsScreen) bool {
		return p.importDlg.planned && strings.Contains(p.importDlg.Preview.Text, "renamed: Work → Work (2)")
	})
	h2.ui(func(p *ParamsScreen) { test.Tap(p.importDlg.OK) })
	h2.eventually("the renamed set", func(p *ParamsScreen) bool {
		return p.importDlg == nil && p.rowState("Work (2)") == oauthparams.StateReady
	})
	if set, _ := s2.Params.Get("Work (2)"); set.Secrets.RefreshToken != "refresh-Work" || set.Secrets.ClientSecret != "secret-Work" {
		t.Fatal("secrets not imported")
	}
}
