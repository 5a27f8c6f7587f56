package app

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/oauthparams"
)

// paramsTokenMask stands in for a stored refresh token: the form never holds the token.
const paramsTokenMask = "●●●●●●●●●●●●●●●● stored"

func (p *ParamsScreen) buildForm() {
	entry := func(placeholder string) *widget.Entry {
		e := widget.NewEntry()
		e.SetPlaceHolder(placeholder)
		e.OnChanged = func(string) { p.onFormChanged() }
		return e
	}
	p.Name = entry("the name actions refer to, e.g. Work mailbox")
	p.Account = entry("mailbox address, e.g. user@example.com")
	p.ClientID = entry("from the provider's app registration")
	p.ClientSecret = widget.NewPasswordEntry()
	p.ClientSecret.SetPlaceHolder("empty for public clients (Microsoft personal accounts)")
	p.ClientSecret.OnChanged = func(string) { p.onFormChanged() }
	p.RefreshToken = widget.NewEntry()
	p.RefreshToken.SetPlaceHolder("none yet: click Get Refresh Token")
	p.RefreshToken.Disable()
	p.AuthURL = entry("https://…/authorize")
	p.TokenURL = entry("https://…/token")
	p.Scope = entry("space-separated scopes")
	p.Scope.OnChanged = func(string) { p.onScopeEdited() }
	p.DeviceURL = entry("optional: device authorization endpoint")
	p.RedirectURL = entry("optional: e.g. http://127.0.0.1:8765/ (empty: a random port)")
	p.ExtraParams = widget.NewMultiLineEntry()
	p.ExtraParams.SetPlaceHolder("one key=value per line, e.g. prompt=consent")
	p.ExtraParams.SetMinRowsVisible(3)
	p.ExtraParams.OnChanged = func(string) { p.onFormChanged() }
	check := func(label string) *widget.Check {
		return widget.NewCheck(label, func(bool) { p.onProtocolChecked() })
	}
	p.ScopeIMAP, p.ScopePOP3, p.ScopeSMTP = check("IMAP"), check("POP3"), check("SMTP")

	p.Provider = widget.NewLabel("")
	p.Provider.Wrapping = fyne.TextWrapWord
	p.Editing = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.Editing.Truncation = fyne.TextTruncateEllipsis
	p.StatusText = widget.NewLabel("")
	p.StatusText.Wrapping = fyne.TextWrapWord
	p.StatusIcon = widget.NewIcon(theme.InfoIcon())
	p.Problems = widget.NewLabel("")
	p.Problems.Wrapping = fyne.TextWrapWord
	p.fieldErrs = map[string]*widget.Label{}
	for k := range paramsFieldLabels {
		l := widget.NewLabel("")
		l.Wrapping = fyne.TextWrapWord
		l.Importance = widget.DangerImportance
		l.Hide()
		p.fieldErrs[k] = l
	}
}

func (p *ParamsScreen) buildButtons() {
	p.New = widget.NewButtonWithIcon("New", theme.ContentAddIcon(), p.onNew)
	p.Duplicate = widget.NewButtonWithIcon("Duplicate", theme.ContentCopyIcon(), p.onDuplicate)
	p.Delete = widget.NewButtonWithIcon("Delete", theme.DeleteIcon(), p.onDelete)
	p.Save = widget.NewButtonWithIcon("Save", theme.DocumentSaveIcon(), func() { p.save(nil) })
	p.Save.Importance = widget.HighImportance
	p.Revert = widget.NewButtonWithIcon("Revert", theme.ContentUndoIcon(), p.onRevert)
	p.ClearToken = widget.NewButtonWithIcon("Clear", theme.ContentClearIcon(), p.onClearToken)
	p.LoadPreset = widget.NewButtonWithIcon("Load Predefined Endpoints", theme.DownloadIcon(), p.onLoadPreset)
	p.SignIn = widget.NewButtonWithIcon("Get Refresh Token", theme.LoginIcon(), p.onSignIn)
	p.TestConn = widget.NewButtonWithIcon("Test Connection", theme.MailSendIcon(), p.onTestConnection)
	p.Export = widget.NewButtonWithIcon("Export info to file", theme.UploadIcon(), p.onExport)
	p.Import = widget.NewButtonWithIcon("Import info from file", theme.FolderOpenIcon(), p.onImport)
}

// formObject lays the fields out, each with its problem underneath.
func (p *ParamsScreen) formObject() fyne.CanvasObject {
	field := func(key string, o fyne.CanvasObject) fyne.CanvasObject {
		return container.NewVBox(o, p.fieldErrs[key])
	}
	scope := container.NewVBox(p.Scope,
		container.NewHBox(widget.NewLabel("Protocols:"), p.ScopeIMAP, p.ScopePOP3, p.ScopeSMTP), p.fieldErrs["scope"])
	main := widget.NewForm(
		widget.NewFormItem("Record Name", field("name", p.Name)),
		widget.NewFormItem("Client Account", field("account", p.Account)),
		widget.NewFormItem("Client ID", field("client_id", p.ClientID)),
		widget.NewFormItem("Client Secret", field("client_secret", p.ClientSecret)),
		widget.NewFormItem("Refresh Token", container.NewBorder(nil, nil, nil, p.ClearToken, p.RefreshToken)),
		widget.NewFormItem("Provider", container.NewBorder(nil, nil, nil, p.LoadPreset, p.Provider)),
		widget.NewFormItem("Authorization Endpoint", field("auth_url", p.AuthURL)),
		widget.NewFormItem("Access Token Endpoint", field("token_url", p.TokenURL)),
		widget.NewFormItem("Scope", scope),
	)
	adv := widget.NewForm(
		widget.NewFormItem("Device Endpoint", field("device_url", p.DeviceURL)),
		widget.NewFormItem("Redirect URL", field("redirect_url", p.RedirectURL)),
		widget.NewFormItem("Extra Parameters", field("extra_params", p.ExtraParams)),
	)
	p.advanced = widget.NewAccordion(widget.NewAccordionItem("Advanced", adv))
	return container.NewVBox(main, p.advanced)
}

// startNew fills the form with an unsaved set: blank, or a copy to duplicate.
func (p *ParamsScreen) startNew(from oauthparams.ParamSet) {
	p.fill(from, false)
	p.baseline = p.formKey() // what a blank form looks like...
	if from.Name != "" || from.ClientID != "" {
		p.baseline = "" // ...but a copy is a change that needs saving
	}
	p.touched = p.baseline == ""
	p.updateState()
}

// fill puts set into the form. stored says whether it is a saved set (then its name is
// remembered for Update, and the form counts as unchanged).
func (p *ParamsScreen) fill(set oauthparams.ParamSet, stored bool) {
	p.filling = true
	defer func() { p.filling = false }()
	p.orig = set.Clone()
	p.orig.Secrets = set.Secrets
	p.origName = ""
	if stored {
		p.origName = set.Name
	}
	p.preset = set.Preset
	p.tokenCleared = false
	p.Name.SetText(set.Name)
	p.Account.SetText(set.Account)
	p.ClientID.SetText(set.ClientID)
	p.ClientSecret.SetText(set.Secrets.ClientSecret)
	p.AuthURL.SetText(set.AuthURL)
	p.TokenURL.SetText(set.TokenURL)
	p.Scope.SetText(set.Scope)
	p.DeviceURL.SetText(set.DeviceURL)
	p.RedirectURL.SetText(set.RedirectURL)
	p.ExtraParams.SetText(paramsFormatExtra(set.ExtraParams))
	p.syncProtocolChecks()
	p.baseline = p.formKey()
	p.touched = false
	p.updateState()
}

// formSet is the set as the form has it: the loaded set with the form's fields on top.
// Lines of Extra Parameters that are not key=value come back as problems.
func (p *ParamsScreen) formSet() (oauthparams.ParamSet, []oauthparams.Problem) {
	set := p.orig.Clone()
	set.Secrets = p.orig.Secrets
	set.Name = p.Name.Text
	set.Account = p.Account.Text
	set.ClientID = p.ClientID.Text
	set.Secrets.ClientSecret = p.ClientSecret.Text
	set.AuthURL, set.TokenURL, set.Scope = p.AuthURL.Text, p.TokenURL.Text, p.Scope.Text
	set.DeviceURL, set.RedirectURL = p.DeviceURL.Text, p.RedirectURL.Text
	set.Preset = p.preset
	var probs []oauthparams.Problem
	set.ExtraParams, probs = paramsParseExtra(p.ExtraParams.Text)
	if p.tokenCleared {
		paramsClearTokens(&set)
	}
	return set, probs
}

// paramsClearTokens removes a set's tokens and what they granted.
func paramsClearTokens(set *oauthparams.ParamSet) {
	set.Secrets.RefreshToken, set.Secrets.AccessToken, set.Secrets.AccessExpiry = "", "", time.Time{}
	set.GrantedScope, set.SignInNeeded = "", ""
}

// formKey captures every editable value, to tell whether the form changed.
func (p *ParamsScreen) formKey() string {
	return fmt.Sprintf("%q", []string{p.Name.Text, p.Account.Text, p.ClientID.Text, p.ClientSecret.Text,
		p.AuthURL.Text, p.TokenURL.Text, p.Scope.Text, p.DeviceURL.Text, p.RedirectURL.Text,
		p.ExtraParams.Text, p.preset})
}

// dirty reports whether the form has changes that are not saved.
func (p *ParamsScreen) dirty() bool {
	return p.tokenCleared || p.baseline != p.formKey()
}

func (p *ParamsScreen) onFormChanged() {
	if p.filling {
		return
	}
	p.touched = true
	p.updateState()
}

// onScopeEdited keeps the protocol boxes in step with a scope typed by hand.
func (p *ParamsScreen) onScopeEdited() {
	if p.filling {
		return
	}
	p.filling = true
	p.syncProtocolChecks()
	p.filling = false
	p.onFormChanged()
}

// onProtocolChecked rebuilds the scope from the loaded preset for the ticked protocols.
func (p *ParamsScreen) onProtocolChecked() {
	if p.filling {
		return
	}
	pr, ok := oauthparams.FindPreset(p.preset)
	if !ok {
		return
	}
	p.filling = true
	p.Scope.SetText(pr.ScopeFor(p.checkedProtocols()...))
	p.filling = false
	p.onFormChanged()
}

// checkedProtocols lists the ticked protocol boxes.
func (p *ParamsScreen) checkedProtocols() []oauthparams.Protocol {
	var out []oauthparams.Protocol
	for proto, c := range p.protocolChecks() {
		if c.Checked {
			out = append(out, proto)
		}
	}
	slices.Sort(out)
	return out
}

func (p *ParamsScreen) protocolChecks() map[oauthparams.Protocol]*widget.Check {
	return map[oauthparams.Protocol]*widget.Check{
		oauthparams.ProtocolIMAP: p.ScopeIMAP, oauthparams.ProtocolPOP3: p.ScopePOP3, oauthparams.ProtocolSMTP: p.ScopeSMTP,
	}
}

// syncProtocolChecks ticks a protocol when the scope holds all its preset scopes, and
// disables the boxes of protocols the preset (or the lack of one) has no scopes for.
func (p *ParamsScreen) syncProtocolChecks() {
	pr, ok := oauthparams.FindPreset(p.preset)
	have := strings.Fields(p.Scope.Text)
	for proto, c := range p.protocolChecks() {
		want := pr.Scopes[proto]
		if !ok || len(want) == 0 {
			c.SetChecked(false)
			c.Disable()
			continue
		}
		c.Enable()
		all := true
		for _, s := range want {
			all = all && slices.Contains(have, s)
		}
		c.SetChecked(all)
	}
}

// paramsFormatExtra renders extra parameters as sorted key=value lines.
func paramsFormatExtra(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		lines = append(lines, k+"="+m[k])
	}
	return strings.Join(lines, "\n")
}

// paramsParseExtra reads key=value lines; blank lines are skipped.
func paramsParseExtra(text string) (map[string]string, []oauthparams.Problem) {
	var m map[string]string
	var probs []oauthparams.Problem
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			probs = append(probs, oauthparams.Problem{Field: "extra_params",
				Message: fmt.Sprintf("line %d %q is not key=value", i+1, line)})
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, probs
}
