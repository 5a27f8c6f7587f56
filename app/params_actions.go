package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/oauthparams"
)

// paramsPresetDialog is "Load Predefined Endpoints": a provider, a Microsoft tenant where
// the preset needs one, and the protocols whose scopes to request.
type paramsPresetDialog struct {
	dlg              *dialog.CustomDialog
	Provider         *widget.Select
	Tenant           *widget.Entry
	tenantRow        *fyne.Container
	Notes            *widget.Label
	Err              *widget.Label
	Load             *widget.Button
	IMAP, POP3, SMTP *widget.Check
	presets          []oauthparams.Preset
}

func (p *ParamsScreen) onLoadPreset() {
	d := &paramsPresetDialog{presets: oauthparams.Presets()}
	names := make([]string, len(d.presets))
	for i, pr := range d.presets {
		names[i] = pr.Name
	}
	d.Notes = widget.NewLabel("")
	d.Notes.Wrapping = fyne.TextWrapWord
	d.Err = widget.NewLabel("")
	d.Err.Wrapping = fyne.TextWrapWord
	d.Err.Importance = widget.DangerImportance
	d.Tenant = widget.NewEntry()
	d.Tenant.SetPlaceHolder("tenant ID or domain, e.g. contoso.onmicrosoft.com")
	d.tenantRow = container.NewVBox(widget.NewLabel("Directory (tenant) ID or domain:"), d.Tenant)
	d.IMAP, d.POP3, d.SMTP = widget.NewCheck("IMAP", nil), widget.NewCheck("POP3", nil), widget.NewCheck("SMTP", nil)
	d.Provider = widget.NewSelect(names, func(string) { d.onProvider() })
	d.Load = widget.NewButtonWithIcon("Load", theme.ConfirmIcon(), func() { p.applyPreset(d) })
	d.Load.Importance = widget.HighImportance
	cancel := widget.NewButton("Cancel", func() { d.dlg.Hide() })

	content := container.NewVBox(
		widget.NewLabel("Fills in the endpoints, scope and extra parameters; name, account, client ID and secret stay."),
		widget.NewLabel("Provider:"), d.Provider, d.tenantRow,
		container.NewHBox(widget.NewLabel("Scopes for:"), d.IMAP, d.POP3, d.SMTP),
		d.Notes, d.Err)
	d.dlg = dialog.NewCustomWithoutButtons("Load Predefined Endpoints", content, p.win)
	d.dlg.SetButtons([]fyne.CanvasObject{cancel, d.Load})
	d.dlg.SetOnClosed(func() { p.presetDlg = nil })
	d.dlg.Resize(fyne.NewSize(560, 480))
	p.presetDlg = d

	sel := 0
	if i := p.presetIndex(d.presets); i >= 0 {
		sel = i
	}
	d.Provider.SetSelectedIndex(sel)
	d.dlg.Show()
}

func (p *ParamsScreen) presetIndex(list []oauthparams.Preset) int {
	for i, pr := range list {
		if strings.EqualFold(pr.ID, p.preset) {
			return i
		}
	}
	return -1
}

// selected is the preset chosen in the dialog.
func (d *paramsPresetDialog) selected() (oauthparams.Preset, bool) {
	i := d.Provider.SelectedIndex()
	if i < 0 || i >= len(d.presets) {
		return oauthparams.Preset{}, false
	}
	return d.presets[i], true
}

func (d *paramsPresetDialog) onProvider() {
	pr, ok := d.selected()
	if !ok {
		return
	}
	d.Err.SetText("")
	if pr.NeedsTenant {
		d.tenantRow.Show()
	} else {
		d.tenantRow.Hide()
	}
	for proto, c := range map[oauthparams.Protocol]*widget.Check{
		oauthparams.ProtocolIMAP: d.IMAP, oauthparams.ProtocolPOP3: d.POP3, oauthparams.ProtocolSMTP: d.SMTP} {
		if len(pr.Scopes[proto]) == 0 {
			c.SetChecked(false)
			c.Disable()
		} else {
			c.Enable()
			c.SetChecked(true)
		}
	}
	var notes []string
	if !pr.SecretExpected {
		notes = append(notes, "This provider's usual app registration has no client secret: leave Client Secret empty.")
	}
	if pr.Notes != "" {
		notes = append(notes, pr.Notes)
	}
	d.Notes.SetText(strings.Join(notes, "\n\n"))
}

// applyPreset loads the dialog's preset into the form (not saved until Save).
func (p *ParamsScreen) applyPreset(d *paramsPresetDialog) {
	pr, ok := d.selected()
	if !ok {
		d.Err.SetText("Choose a provider.")
		return
	}
	if pr.NeedsTenant {
		var err error
		if pr, err = pr.WithTenant(d.Tenant.Text); err != nil {
			d.Err.SetText(err.Error())
			return
		}
	}
	var protos []oauthparams.Protocol
	for proto, c := range map[oauthparams.Protocol]*widget.Check{
		oauthparams.ProtocolIMAP: d.IMAP, oauthparams.ProtocolPOP3: d.POP3, oauthparams.ProtocolSMTP: d.SMTP} {
		if c.Checked {
			protos = append(protos, proto)
		}
	}
	if len(protos) == 0 {
		d.Err.SetText("Tick at least one protocol.")
		return
	}
	set, _ := p.formSet()
	set.ApplyPreset(pr, protos...)
	p.filling = true
	p.preset = set.Preset
	p.AuthURL.SetText(set.AuthURL)
	p.TokenURL.SetText(set.TokenURL)
	p.DeviceURL.SetText(set.DeviceURL)
	p.Scope.SetText(set.Scope)
	p.ExtraParams.SetText(paramsFormatExtra(set.ExtraParams))
	p.syncProtocolChecks()
	p.filling = false
	d.dlg.Hide()
	p.onFormChanged()
}

// paramsSignInDialog is the "waiting for sign-in" dialog of Get Refresh Token.
type paramsSignInDialog struct {
	dlg    *dialog.CustomDialog
	Link   *widget.Entry
	cancel context.CancelFunc
}

func (p *ParamsScreen) onSignIn() {
	if _, probs := p.formProblems(); len(probs) > 0 {
		p.showProblemsDialog("Cannot sign in yet", probs)
		return
	}
	if !p.dirty() && p.origName != "" {
		p.signIn(p.origName)
		return
	}
	d := dialog.NewConfirm("Save first", "Get Refresh Token signs in with the saved parameter set.\nSave your changes and sign in?",
		func(ok bool) {
			p.confirmDlg = nil
			if ok {
				p.save(p.signIn)
			}
		}, p.win)
	d.SetConfirmText("Save and sign in")
	p.confirmDlg = d
	d.Show()
}

// signIn runs Store.Authorize for the saved set name in the background, with a dialog
// whose Cancel stops it. On success the form and the list show the new status.
func (p *ParamsScreen) signIn(name string) {
	ctx, cancel := context.WithCancel(context.Background())
	sd := &paramsSignInDialog{cancel: cancel}
	sd.Link = widget.NewEntry()
	sd.Link.SetPlaceHolder("the sign-in address appears here")
	copyLink := widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() {
		fyne.CurrentApp().Clipboard().SetContent(sd.Link.Text)
	})
	msg := widget.NewLabel("Waiting for sign-in in your browser…\n\nSign in to the provider and allow access. " +
		"If no browser opened, copy this address into one:")
	msg.Wrapping = fyne.TextWrapWord
	content := container.NewVBox(msg, container.NewBorder(nil, nil, nil, copyLink, sd.Link), widget.NewProgressBarInfinite())
	sd.dlg = dialog.NewCustom("Get Refresh Token for "+name, "Cancel", content, p.win)
	sd.dlg.SetOnClosed(cancel)
	sd.dlg.Resize(fyne.NewSize(560, 260))
	p.signInDlg = sd
	sd.dlg.Show()

	opts := oauthparams.AuthorizeOptions{OpenBrowser: p.openBrowser, Prompt: &paramsPromptWriter{onURL: func(u string) {
		p.do(func() { sd.Link.SetText(u) })
	}}}
	store, tokens := p.s.Params, p.s.Tokens
	go func() {
		saved, err := store.Authorize(ctx, name, opts)
		canceled := ctx.Err() != nil && errors.Is(err, context.Canceled)
		if err == nil && tokens != nil {
			tokens.Forget(name)
		}
		p.do(func() {
			if p.signInDlg == sd {
				p.signInDlg = nil
			}
			sd.dlg.Hide()
			switch {
			case canceled:
				p.StatusText.SetText("Sign-in cancelled.")
			case err != nil:
				p.showError("Sign-in failed", err)
			default:
				if oauthparams.NameKey(p.origName) == oauthparams.NameKey(name) && !p.dirty() {
					p.fill(saved, true)
				}
				p.Refresh()
			}
		})
	}()
}

// paramsPromptWriter picks the sign-in URL out of Authorize's messages.
type paramsPromptWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	onURL func(string)
	done  bool
}

func (w *paramsPromptWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if !w.done {
		for _, line := range strings.Split(w.buf.String(), "\n") {
			if u := strings.TrimSpace(line); strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
				w.done = true
				w.onURL(u)
				break
			}
		}
	}
	return len(b), nil
}

// paramsTestDialog is Test Connection: a server to try and the outcome of each step.
type paramsTestDialog struct {
	dlg      *dialog.CustomDialog
	Protocol *widget.Select
	Host     *widget.Entry
	Port     *widget.Entry
	Security *widget.Select
	CAFile   *widget.Entry
	Run      *widget.Button
	Steps    *fyne.Container
	Summary  *widget.Label
	preset   oauthparams.Preset
	cancel   context.CancelFunc
}

// paramsTestSteps are the steps Test Connection reports, in order.
var paramsTestSteps = []string{"token", "connect", "tls", "login"}

func (p *ParamsScreen) onTestConnection() {
	name := p.origName
	if name == "" {
		return
	}
	d := &paramsTestDialog{}
	d.preset, _ = oauthparams.FindPreset(p.preset)
	d.Host = widget.NewEntry()
	d.Host.SetPlaceHolder("mail server, e.g. imap.example.com")
	d.Port = widget.NewEntry()
	d.Security = widget.NewSelect([]string{string(actions.SecurityTLS), string(actions.SecuritySTARTTLS)}, nil)
	d.CAFile = widget.NewEntry()
	d.CAFile.SetPlaceHolder("optional: PEM file of a private CA (empty: the system's)")
	d.Protocol = widget.NewSelect([]string{"imap", "pop3", "smtp"}, func(string) { d.prefill() })
	d.Steps = container.NewVBox()
	d.Summary = widget.NewLabel("")
	d.Summary.Wrapping = fyne.TextWrapWord
	d.Run = widget.NewButtonWithIcon("Test", theme.MediaPlayIcon(), func() { p.runTest(d, name) })
	d.Run.Importance = widget.HighImportance
	closeBtn := widget.NewButton("Close", func() { d.dlg.Hide() })

	note := "Tests the saved set “" + name + "”: gets an access token, connects, starts TLS and logs in with XOAUTH2."
	if p.dirty() {
		note += "\nUnsaved changes in the form are not used."
	}
	intro := widget.NewLabel(note)
	intro.Wrapping = fyne.TextWrapWord
	form := widget.NewForm(
		widget.NewFormItem("Protocol", d.Protocol),
		widget.NewFormItem("Host", d.Host),
		widget.NewFormItem("Port", d.Port),
		widget.NewFormItem("Security", d.Security),
		widget.NewFormItem("CA certificates", d.CAFile),
	)
	content := container.NewVBox(intro, form, widget.NewSeparator(), d.Steps, d.Summary)
	d.dlg = dialog.NewCustomWithoutButtons("Test Connection", content, p.win)
	d.dlg.SetButtons([]fyne.CanvasObject{closeBtn, d.Run})
	d.dlg.SetOnClosed(func() {
		if d.cancel != nil {
			d.cancel()
		}
		if p.testDlg == d {
			p.testDlg = nil
		}
	})
	d.dlg.Resize(fyne.NewSize(600, 520))
	p.testDlg = d
	d.Protocol.SetSelected("imap")
	d.showSteps(nil, nil)
	d.dlg.Show()
}

// prefill puts the preset's server for the chosen protocol into the fields, or the
// protocol's usual TLS port when there is no preset server.
func (d *paramsTestDialog) prefill() {
	proto := oauthparams.Protocol(d.Protocol.Selected)
	if srv, ok := d.preset.Servers[proto]; ok {
		d.Host.SetText(srv.Host)
		d.Port.SetText(strconv.Itoa(srv.Port))
		d.Security.SetSelected(srv.Security)
		return
	}
	ports := map[oauthparams.Protocol]int{oauthparams.ProtocolIMAP: 993, oauthparams.ProtocolPOP3: 995, oauthparams.ProtocolSMTP: 465}
	d.Port.SetText(strconv.Itoa(ports[proto]))
	d.Security.SetSelected(string(actions.SecurityTLS))
}

// showSteps lists each step with a tick, a cross and the error, or as not run.
func (d *paramsTestDialog) showSteps(steps []actions.ConnStep, running []string) {
	d.Steps.RemoveAll()
	done := map[string]actions.ConnStep{}
	for _, st := range steps {
		done[st.Name] = st
	}
	labels := map[string]string{"token": "Access token", "connect": "Connect", "tls": "TLS", "login": "Login"}
	for _, name := range paramsTestSteps {
		icon := widget.NewIcon(theme.NewDisabledResource(theme.RadioButtonIcon()))
		text := labels[name] + ": not run"
		if st, ok := done[name]; ok {
			if st.Err == nil {
				icon.SetResource(theme.NewSuccessThemedResource(theme.ConfirmIcon()))
				text = labels[name] + ": ok"
			} else {
				icon.SetResource(theme.NewErrorThemedResource(theme.CancelIcon()))
				text = labels[name] + ": " + paramsExplain(st.Err)
			}
		} else if len(running) > 0 && running[0] == name {
			icon.SetResource(theme.ViewRefreshIcon())
			text = labels[name] + ": running…"
		}
		l := widget.NewLabel(text)
		l.Wrapping = fyne.TextWrapWord
		d.Steps.Add(container.NewBorder(nil, nil, container.NewVBox(icon), nil, l))
	}
	d.Steps.Refresh()
}

// runTest gets a token for the set and runs actions.CheckConnection in the background.
func (p *ParamsScreen) runTest(d *paramsTestDialog, name string) {
	port, err := strconv.Atoi(strings.TrimSpace(d.Port.Text))
	host := strings.TrimSpace(d.Host.Text)
	switch {
	case host == "":
		d.Summary.SetText("Enter the mail server's host name.")
		return
	case err != nil || port < 1 || port > 65535:
		d.Summary.SetText("The port must be a number from 1 to 65535.")
		return
	case d.Protocol.Selected == "" || d.Security.Selected == "":
		d.Summary.SetText("Choose the protocol and the security.")
		return
	}
	cc := actions.ConnCheck{Protocol: d.Protocol.Selected, Host: host, Port: port,
		Security: actions.Security(d.Security.Selected), Timeout: 30 * time.Second}
	caFile := strings.TrimSpace(d.CAFile.Text)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.Run.Disable()
	d.Summary.SetText("Testing…")
	d.showSteps(nil, []string{"token"})
	store, tokens := p.s.Params, p.s.Tokens
	go func() {
		defer cancel()
		steps, err := paramsCheck(ctx, store, tokens, name, caFile, cc)
		p.do(func() {
			d.Run.Enable()
			d.showSteps(steps, nil)
			if err != nil {
				d.Summary.SetText("The test failed. " + paramsExplain(err))
			} else {
				d.Summary.SetText("Everything works: " + name + " can log in to " + cc.Protocol + " " + host + ".")
			}
			p.Refresh() // a failed refresh may have changed the set's status
		})
	}()
}

// paramsCheck is the work of Test Connection: token, then connect, TLS and login.
func paramsCheck(ctx context.Context, store *oauthparams.Store, tokens *oauthparams.TokenManager,
	name, caFile string, cc actions.ConnCheck) ([]actions.ConnStep, error) {
	set, err := store.Get(name)
	if err != nil {
		return []actions.ConnStep{{Name: "token", Err: err}}, err
	}
	tok, err := tokens.Token(ctx, name)
	if err != nil {
		return []actions.ConnStep{{Name: "token", Err: err}}, err
	}
	steps := []actions.ConnStep{{Name: "token"}}
	cfg := &tls.Config{ServerName: cc.Host}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err == nil && !x509.NewCertPool().AppendCertsFromPEM(pem) {
			err = errors.New("it holds no PEM certificate")
		}
		if err != nil {
			err = fmt.Errorf("CA certificates file %s: %w", caFile, err)
			return append(steps, actions.ConnStep{Name: "tls", Err: err}), err
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(pem)
	}
	cc.TLSConfig, cc.User, cc.Token = cfg, set.Account, tok.AccessToken
	more, err := actions.CheckConnection(ctx, cc)
	return append(steps, more...), err
}
