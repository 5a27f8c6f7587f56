package app

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/oauthparams"
)

// paramsTestServices opens the services of a fresh data folder, with the parameter store
// on the encrypted-file backend: tests never touch a real keyring.
func paramsTestServices(t *testing.T) *Services {
	t.Helper()
	dir := t.TempDir()
	s, err := OpenServices(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	store, err := oauthparams.Open(dir, oauthparams.StoreOptions{Backend: oauthparams.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	s.Params, s.ParamsErr, s.Tokens = store, nil, oauthparams.NewTokenManager(store, nil)
	return s
}

// paramsHarness drives a ParamsScreen in a test window. The test driver runs fyne.Do
// callbacks on the calling goroutine, so the screen's background updates and the test's
// own steps are serialised with one mutex.
type paramsHarness struct {
	t *testing.T
	// mu is the tests' one UI lock (runUIMu), not one per harness: a screen's background
	// work can outlive its test, and Fyne's test driver shares state (the text shaper)
	// between windows, so every test's UI work must be serialised with every other's.
	mu *sync.Mutex
	s  *Services
	p  *ParamsScreen
	w  fyne.Window
}

func paramsOpen(t *testing.T, s *Services) *paramsHarness {
	t.Helper()
	h := &paramsHarness{t: t, s: s, mu: &runUIMu}
	h.mu.Lock()
	h.w = test.NewWindow(nil)
	h.p = paramsNewScreen(s, h.w, h.run)
	h.w.SetContent(h.p.Content())
	h.w.Resize(fyne.NewSize(1100, 760))
	h.mu.Unlock()
	t.Cleanup(func() { h.ui(func(*ParamsScreen) { h.w.Close() }) })
	return h
}

func (h *paramsHarness) run(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f()
}

// ui runs a step of the test with the screen to itself.
func (h *paramsHarness) ui(f func(p *ParamsScreen)) { h.run(func() { f(h.p) }) }

// eventually polls cond every 10 ms until it holds, failing the test after 10 s.
func (h *paramsHarness) eventually(what string, cond func(p *ParamsScreen) bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		h.ui(func(p *ParamsScreen) { ok = cond(p) })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var state string
			h.ui(func(p *ParamsScreen) {
				state = "editing " + p.Editing.Text + "; " + p.StatusText.Text + "; last message: " + p.lastMsg
			})
			h.t.Fatalf("timed out waiting for %s (%s)", what, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rowState returns the listed state of the named set, or "" when it is not listed.
func (p *ParamsScreen) rowState(name string) oauthparams.State {
	if i := p.rowIndex(name); i >= 0 {
		return p.rows[i].Status.State
	}
	return ""
}

func paramsPresetIndex(t *testing.T, id string) int {
	t.Helper()
	i := slices.IndexFunc(oauthparams.Presets(), func(pr oauthparams.Preset) bool { return pr.ID == id })
	if i < 0 {
		t.Fatalf("no preset %s", id)
	}
	return i
}

// TestParamsScreenEditor fills the form for a new set, loads the Google preset, saves,
// sees the set listed, sees a missing Client ID explained, and meets the unsaved-changes
// guard when choosing another set and when starting a new one.
func TestParamsScreenEditor(t *testing.T) {
	test.NewTempApp(t)
	s := paramsTestServices(t)
	h := paramsOpen(t, s)
	h.eventually("the empty list", func(p *ParamsScreen) bool { return p.loaded && len(p.rows) == 0 })
	google, _ := oauthparams.FindPreset("google")

	h.ui(func(p *ParamsScreen) {
		if !p.Save.Disabled() || p.dirty() {
			t.Fatal("a blank form can be saved or counts as changed")
		}
		test.Type(p.Name, "Work")
		test.Type(p.Account, "user@gmail.com")
		test.Type(p.ClientID, "123.apps.googleusercontent.com")
		test.Type(p.ClientSecret, "s3cret")
		if !p.Save.Disabled() || !p.fieldErrs["auth_url"].Visible() {
			t.Fatal("Save enabled, or no problem shown, without endpoints")
		}
		test.Tap(p.LoadPreset)
		d := p.presetDlg
		if d == nil {
			t.Fatal("no preset dialog")
		}
		d.Provider.SetSelectedIndex(paramsPresetIndex(t, "google"))
		test.Tap(d.Load)
		if p.presetDlg != nil {
			t.Fatalf("preset dialog still open: %s", d.Err.Text)
		}
		if p.AuthURL.Text != google.AuthURL || p.TokenURL.Text != google.TokenURL || p.Scope.Text != google.ScopeFor() {
			t.Fatalf("preset not loaded: %q %q %q", p.AuthURL.Text, p.TokenURL.Text, p.Scope.Text)
		}
		if !p.ScopeIMAP.Checked || !p.ScopeSMTP.Checked || p.Provider.Text != google.Name {
			t.Fatalf("protocols or provider not shown: imap %v smtp %v %q", p.ScopeIMAP.Checked, p.ScopeSMTP.Checked, p.Provider.Text)
		}
		if !strings.Contains(p.ExtraParams.Text, "access_type=offline") || p.Name.Text != "Work" || p.ClientSecret.Text != "s3cret" {
			t.Fatalf("preset changed other fields: %q %q", p.ExtraParams.Text, p.Name.Text)
		}
		if p.Save.Disabled() || p.Problems.Visible() {
			t.Fatalf("a complete set cannot be saved: %s", p.Problems.Text)
		}
		test.Tap(p.Save)
	})
	h.eventually("the saved set in the list", func(p *ParamsScreen) bool {
		return p.origName == "Work" && p.rowState("Work") == oauthparams.StateSignInNeeded && !p.dirty()
	})
	got, err := s.Params.Get("Work")
	if err != nil {
		t.Fatal(err)
	}
	if got.Secrets.ClientSecret != "s3cret" || got.Preset != "google" || got.ExtraParams["prompt"] != "consent" || got.Account != "user@gmail.com" {
		t.Fatalf("stored %+v", got.Masked())
	}

	// A missing Client ID is explained next to the field, and Save is disabled.
	h.ui(func(p *ParamsScreen) {
		p.ClientID.SetText("")
		if !p.Save.Disabled() || !p.SignIn.Disabled() {
			t.Fatal("Save or Get Refresh Token enabled without a client ID")
		}
		if l := p.fieldErrs["client_id"]; !l.Visible() || !strings.Contains(l.Text, "must not be empty") {
			t.Fatalf("client ID problem not shown: %v %q", l.Visible(), l.Text)
		}
		if !strings.Contains(p.Problems.Text, "Client ID: must not be empty") {
			t.Fatalf("summary: %q", p.Problems.Text)
		}
		if !strings.Contains(p.StatusText.Text, "incomplete") {
			t.Fatalf("status: %q", p.StatusText.Text)
		}
	})

	// Another set appears; choosing it with unsaved changes asks first.
	if err := s.Params.Put(oauthparams.ParamSet{Name: "Other", ClientID: "other-id", AuthURL: google.AuthURL,
		TokenURL: google.TokenURL, Scope: "https://mail.google.com/"}); err != nil {
		t.Fatal(err)
	}
	h.ui(func(p *ParamsScreen) { p.Refresh() })
	h.eventually("two sets", func(p *ParamsScreen) bool { return len(p.rows) == 2 })
	h.ui(func(p *ParamsScreen) {
		p.List.Select(p.rowIndex("Other"))
		if p.confirmDlg == nil {
			t.Fatal("no unsaved-changes question")
		}
		p.confirmDlg.Dismiss() // keep editing
		if p.origName != "Work" || p.ClientID.Text != "" || !p.dirty() {
			t.Fatalf("keep editing lost the changes: %q %q", p.origName, p.ClientID.Text)
		}
		test.Tap(p.New)
		if p.confirmDlg == nil {
			t.Fatal("New did not ask about unsaved changes")
		}
		p.confirmDlg.Confirm() // discard
		if p.origName != "" || p.Name.Text != "" || p.dirty() {
			t.Fatalf("New did not start a blank set: %q %q", p.origName, p.Name.Text)
		}
		p.List.Select(p.rowIndex("Other")) // nothing unsaved: no question
		if p.confirmDlg != nil {
			t.Fatal("asked although nothing was changed")
		}
	})
	h.eventually("the other set opened", func(p *ParamsScreen) bool {
		return p.origName == "Other" && p.ClientID.Text == "other-id"
	})
	stored, _ := s.Params.Get("Work")
	if stored.ClientID != "123.apps.googleusercontent.com" {
		t.Fatalf("discarded changes were saved: %q", stored.ClientID)
	}

	// Rename and delete.
	h.ui(func(p *ParamsScreen) {
		p.Name.SetText("Other mailbox")
		test.Tap(p.Save)
	})
	h.eventually("the rename", func(p *ParamsScreen) bool {
		return p.origName == "Other mailbox" && p.rowIndex("Other") < 0 && p.rowIndex("Other mailbox") >= 0
	})
	h.ui(func(p *ParamsScreen) {
		test.Tap(p.Delete)
		p.confirmDlg.Confirm()
	})
	h.eventually("the deletion", func(p *ParamsScreen) bool { return len(p.rows) == 1 && p.origName == "" })
}

// TestParamsScreenTenantAndProtocols loads the tenant-specific Microsoft preset and
// narrows the scope with the protocol boxes.
func TestParamsScreenTenantAndProtocols(t *testing.T) {
	test.NewTempApp(t)
	h := paramsOpen(t, paramsTestServices(t))
	h.eventually("the empty list", func(p *ParamsScreen) bool { return p.loaded })
	h.ui(func(p *ParamsScreen) {
		test.Tap(p.LoadPreset)
		d := p.presetDlg
		d.Provider.SetSelectedIndex(paramsPresetIndex(t, "microsoft-tenant"))
		if !d.tenantRow.Visible() {
			t.Fatal("no tenant field for the tenant preset")
		}
		test.Tap(d.Load)
		if p.presetDlg == nil || !strings.Contains(d.Err.Text, "tenant") {
			t.Fatalf("loaded without a tenant: %q", d.Err.Text)
		}
		d.Tenant.SetText("contoso.onmicrosoft.com")
		test.Tap(d.Load)
		if !strings.Contains(p.AuthURL.Text, "/contoso.onmicrosoft.com/") || p.presetDlg != nil {
			t.Fatalf("tenant not applied: %q", p.AuthURL.Text)
		}
		if !p.ScopePOP3.Checked || !strings.Contains(p.Scope.Text, "POP.AccessAsUser.All") {
			t.Fatalf("scope %q", p.Scope.Text)
		}
		test.Tap(p.ScopePOP3)
		if strings.Contains(p.Scope.Text, "POP.AccessAsUser.All") || !strings.Contains(p.Scope.Text, "IMAP.AccessAsUser.All") ||
			!strings.Contains(p.Scope.Text, "offline_access") {
			t.Fatalf("unticking POP3: scope %q", p.Scope.Text)
		}
		// Typing a scope by hand updates the boxes.
		p.Scope.SetText("https://outlook.office.com/SMTP.Send offline_access")
		if p.ScopeIMAP.Checked || !p.ScopeSMTP.Checked {
			t.Fatal("protocol boxes do not follow the typed scope")
		}
		// Malformed extra parameters are a problem of their own.
		p.ExtraParams.SetText("prompt=consent\nnot a pair")
		if !strings.Contains(p.fieldErrs["extra_params"].Text, "line 2") || !p.Save.Disabled() {
			t.Fatalf("extra parameters: %q", p.fieldErrs["extra_params"].Text)
		}
	})
}

// TestParamsScreenUnavailable shows why the store could not be opened instead of the editor.
func TestParamsScreenUnavailable(t *testing.T) {
	test.NewTempApp(t)
	s := &Services{DataDir: "/data", ParamsErr: os.ErrPermission}
	w := test.NewWindow(nil)
	defer w.Close()
	p := NewParamsScreen(s, w)
	w.SetContent(p.Content())
	var texts []string
	paramsWalk(p.Content(), func(o fyne.CanvasObject) {
		if l, ok := o.(*widget.Label); ok {
			texts = append(texts, l.Text)
		}
	})
	all := strings.Join(texts, "\n")
	if !strings.Contains(all, "permission denied") || !strings.Contains(all, "MAILWRIGHT_PASSPHRASE") || !strings.Contains(all, "keyring") {
		t.Fatalf("unavailable screen says: %s", all)
	}
}

// paramsWalk visits o and everything inside it, widgets' rendered parts included.
func paramsWalk(o fyne.CanvasObject, visit func(fyne.CanvasObject)) {
	visit(o)
	switch x := o.(type) {
	case *fyne.Container:
		for _, c := range x.Objects {
			paramsWalk(c, visit)
		}
	case fyne.Widget:
		if _, ok := x.(*widget.Label); ok {
			return
		}
		for _, c := range test.WidgetRenderer(x).Objects() {
			paramsWalk(c, visit)
		}
	}
}

// paramsLabels is the text of every label inside o.
func paramsLabels(o fyne.CanvasObject) string {
	var texts []string
	paramsWalk(o, func(o fyne.CanvasObject) {
		if l, ok := o.(*widget.Label); ok {
			texts = append(texts, l.Text)
		}
	})
	return strings.Join(texts, "\n")
}

// TestParamsScreenScreenshot captures the filled editor next to a list of two sets.
func TestParamsScreenScreenshot(t *testing.T) {
	test.NewTempApp(t)
	s := paramsTestServices(t)
	google, _ := oauthparams.FindPreset("google")
	ms, _ := oauthparams.FindPreset("microsoft-common")
	work := oauthparams.ParamSet{Name: "Work mailbox", Account: "jane@example.com", ClientID: "1234567890-abc.apps.googleusercontent.com",
		Secrets: oauthparams.Secrets{ClientSecret: "GOCSPX-secret", RefreshToken: "1//refresh"}}
	work.ApplyPreset(google)
	work.GrantedScope = work.Scope
	home := oauthparams.ParamSet{Name: "Home (Outlook.com)", Account: "jane@outlook.com", ClientID: "00000000-0000-0000-0000-000000000000"}
	home.ApplyPreset(ms, oauthparams.ProtocolIMAP, oauthparams.ProtocolSMTP)
	for _, set := range []oauthparams.ParamSet{work, home} {
		if err := s.Params.Put(set); err != nil {
			t.Fatal(err)
		}
	}
	h := paramsOpen(t, s)
	h.eventually("the list", func(p *ParamsScreen) bool { return len(p.rows) == 2 && p.origName != "" })
	h.ui(func(p *ParamsScreen) { p.List.Select(p.rowIndex("Work mailbox")) })
	h.eventually("the work set", func(p *ParamsScreen) bool {
		return p.origName == "Work mailbox" && p.rowState("Work mailbox") == oauthparams.StateReady
	})
	var img image.Image
	h.ui(func(p *ParamsScreen) {
		if !strings.Contains(p.StatusText.Text, "ready") || p.RefreshToken.Text != paramsTokenMask {
			t.Fatalf("status %q, token %q", p.StatusText.Text, p.RefreshToken.Text)
		}
		img = h.w.Canvas().Capture()
	})
	test.AssertImageMatches(t, "params_editor.png", img)
	if os.Getenv("MAILWRIGHT_SCREENSHOTS") == "1" {
		out := filepath.Join("..", "docs", "screenshots", "params.png")
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
	}
}
