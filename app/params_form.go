package app

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/oauthparams"
)

// paramsTokenMask stands in for a stored refresh token: the form never holds the token.
const paramsTokenMask = "●●●●●●●●●●●●●●●● stored"

// paramsFieldLabels names the fields of Problem.Field as the form labels them.
var paramsFieldLabels = map[string]string{
	"name": "Record Name", "account": "Client Account", "client_id": "Client ID",
	"client_secret": "Client Secret", "auth_url": "Authorization Endpoint",
	"token_url": "Access Token Endpoint", "scope": "Scope", "device_url": "Device Endpoint",
	"redirect_url": "Redirect URL", "extra_params": "Extra Parameters",
}

// paramsFieldKey maps a Problem.Field to the form field showing it ("extra_params.x" to
// "extra_params").
func paramsFieldKey(field string) string {
	if k, _, ok := strings.Cut(field, "."); ok {
		return k
	}
	return field
}

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

// formProblems validates the form: ParamSet.Validate plus the Extra Parameters syntax.
func (p *ParamsScreen) formProblems() (oauthparams.ParamSet, []oauthparams.Problem) {
	set, probs := p.formSet()
	if err := set.Validate(); err != nil {
		var ve oauthparams.ValidationError
		if errors.As(err, &ve) {
			probs = append(ve.Problems, probs...)
		} else {
			probs = append(probs, oauthparams.Problem{Field: "name", Message: err.Error()})
		}
	}
	return set, probs
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

// updateState refreshes everything derived from the form: heading, status, problems and
// which buttons can be used.
func (p *ParamsScreen) updateState() {
	set, probs := p.formProblems()
	if p.origName == "" {
		p.Editing.SetText("New parameter set (not saved yet)")
	} else {
		p.Editing.SetText("Editing “" + p.origName + "”")
	}
	st := set.Status(time.Now())
	res, label, _ := paramsBadge(st.State)
	p.StatusIcon.SetResource(res)
	text := "Status: " + label
	if st.Reason != "" && st.State != oauthparams.StateIncomplete {
		text += " — " + st.Reason
	}
	text += " · last refresh " + paramsWhen(st.LastRefresh)
	if set.LastError != "" && st.State != oauthparams.StateReady {
		text += "\nLast error: " + set.LastError
	}
	p.StatusText.SetText(text)

	if set.Secrets.RefreshToken != "" {
		p.RefreshToken.SetText(paramsTokenMask)
		p.ClearToken.Enable()
	} else {
		p.RefreshToken.SetText("")
		p.ClearToken.Disable()
	}
	if pr, ok := oauthparams.FindPreset(p.preset); ok {
		p.Provider.SetText(pr.Name)
	} else {
		p.Provider.SetText("none: enter the endpoints, or use Load Predefined Endpoints")
	}
	p.showProblems(probs)

	dirty := p.dirty()
	p.enable(p.Save, !p.busy && dirty && len(probs) == 0)
	p.enable(p.Revert, !p.busy && dirty)
	p.enable(p.Duplicate, !p.busy && p.origName != "")
	p.enable(p.Delete, !p.busy && p.origName != "")
	p.enable(p.New, !p.busy)
	p.enable(p.LoadPreset, !p.busy)
	p.enable(p.SignIn, !p.busy && len(probs) == 0)
	p.enable(p.TestConn, !p.busy && p.origName != "")
	p.enable(p.Export, len(p.rows) > 0)
}

// showProblems puts each problem under its field and a summary below the form. A blank
// new form only says where to start.
func (p *ParamsScreen) showProblems(probs []oauthparams.Problem) {
	byField := map[string][]string{}
	for _, pr := range probs {
		k := paramsFieldKey(pr.Field)
		byField[k] = append(byField[k], pr.Message)
	}
	show := p.touched || p.origName != ""
	advancedProblem := false
	for k, l := range p.fieldErrs {
		msgs := byField[k]
		if !show || len(msgs) == 0 {
			l.Hide()
			continue
		}
		l.SetText(strings.Join(msgs, "\n"))
		l.Show()
		advancedProblem = advancedProblem || k == "device_url" || k == "redirect_url" || k == "extra_params"
	}
	if advancedProblem && p.advanced != nil {
		p.advanced.Open(0)
	}
	switch {
	case len(probs) == 0:
		p.Problems.SetText("")
		p.Problems.Hide()
		return
	case !show:
		p.Problems.SetText("Start with Load Predefined Endpoints, then fill in Record Name, Client Account and Client ID.")
		p.Problems.Importance = widget.MediumImportance
	default:
		lines := paramsProblemLines(probs)
		p.Problems.SetText(strings.Join(lines, "\n"))
		p.Problems.Importance = widget.DangerImportance
	}
	p.Problems.Show()
	p.Problems.Refresh()
}

// paramsProblemLines says what to fix, with the form's field labels: a heading and one
// bullet per problem.
func paramsProblemLines(probs []oauthparams.Problem) []string {
	lines := make([]string, 0, len(probs)+1)
	lines = append(lines, fmt.Sprintf("Cannot save yet — %s to fix:", paramsCount(len(probs), "problem")))
	for _, pr := range probs {
		label := paramsFieldLabels[paramsFieldKey(pr.Field)]
		if label == "" {
			label = pr.Field
		}
		if k, ok := strings.CutPrefix(pr.Field, "extra_params."); ok {
			label += " (" + k + ")"
		}
		lines = append(lines, "• "+label+": "+pr.Message)
	}
	return lines
}

// paramsCount is "1 problem", "2 problems".
func paramsCount(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// showProblemsDialog explains why the form cannot be used yet.
func (p *ParamsScreen) showProblemsDialog(title string, probs []oauthparams.Problem) {
	p.showMessage(title, strings.Join(paramsProblemLines(probs), "\n"), theme.NewErrorThemedResource(theme.ErrorIcon()))
}

func (p *ParamsScreen) enable(b *widget.Button, on bool) {
	if on {
		b.Enable()
	} else {
		b.Disable()
	}
}

func (p *ParamsScreen) setBusy(on bool) {
	p.busy = on
	p.updateState()
}

func (p *ParamsScreen) onNew() {
	p.guard(func() {
		p.startNew(oauthparams.ParamSet{})
		p.selectCurrent()
	}, nil)
}

// onDuplicate starts a new set copying the form, client secret included, but not the
// tokens, which belong to the original set's sign-in.
func (p *ParamsScreen) onDuplicate() {
	set, _ := p.formSet()
	paramsClearTokens(&set)
	set.LastRefresh, set.LastError = time.Time{}, ""
	set.Name = p.freeName(strings.TrimSpace(set.Name) + " (copy)")
	p.startNew(set)
	p.selectCurrent()
}

// freeName returns name, or name with " 2", " 3"... when the list already has it.
func (p *ParamsScreen) freeName(name string) string {
	for i, n := 2, name; ; i++ {
		if p.rowIndex(n) < 0 {
			return n
		}
		n = fmt.Sprintf("%s %d", name, i)
	}
}

func (p *ParamsScreen) onRevert() {
	if p.origName == "" {
		p.startNew(oauthparams.ParamSet{})
		return
	}
	p.fill(p.orig, true)
}

func (p *ParamsScreen) onClearToken() {
	p.tokenCleared = true
	p.touched = true
	p.updateState()
}

func (p *ParamsScreen) onDelete() {
	name := p.origName
	if name == "" {
		return
	}
	d := dialog.NewConfirm("Delete parameter set",
		"Delete “"+name+"” with its client secret and tokens?\nTasks that use it will fail until another set is chosen.",
		func(ok bool) {
			if ok {
				p.deleteSet(name)
			}
		}, p.win)
	d.SetConfirmText("Delete")
	d.SetConfirmImportance(widget.DangerImportance)
	p.confirmDlg = d
	d.Show()
}

func (p *ParamsScreen) deleteSet(name string) {
	p.setBusy(true)
	store, tokens := p.s.Params, p.s.Tokens
	go func() {
		err := store.Delete(name)
		if err == nil && tokens != nil {
			tokens.Forget(name)
		}
		p.do(func() {
			p.setBusy(false)
			if err != nil {
				p.showError("Could not delete the parameter set", fmt.Errorf("delete %s: %w", name, err))
				return
			}
			p.startNew(oauthparams.ParamSet{})
			p.Refresh()
		})
	}()
}

// save stores the form: a new set with Put (refusing a name in use), an existing one with
// Update, so that tokens refreshed meanwhile by a running task are kept. then, if not nil,
// runs with the saved name afterwards.
func (p *ParamsScreen) save(then func(name string)) {
	set, probs := p.formProblems()
	if len(probs) > 0 {
		p.showProblemsDialog("The parameter set cannot be saved", probs)
		return
	}
	set.Normalize()
	origName, cleared := p.origName, p.tokenCleared
	p.setBusy(true)
	store, tokens := p.s.Params, p.s.Tokens
	go func() {
		saved, err := paramsStore(store, set, origName, cleared)
		if err == nil && tokens != nil {
			tokens.Forget(origName)
			tokens.Forget(saved.Name)
		}
		p.do(func() {
			p.setBusy(false)
			if err != nil {
				p.showError("Could not save the parameter set", err)
				return
			}
			p.fill(saved, true)
			p.Refresh()
			if then != nil {
				then(saved.Name)
			}
		})
	}()
}

// paramsStore writes set and reads it back. origName is its stored name ("" for new).
func paramsStore(store *oauthparams.Store, set oauthparams.ParamSet, origName string, clearTokens bool) (oauthparams.ParamSet, error) {
	if origName == "" {
		switch _, err := store.Get(set.Name); {
		case err == nil:
			return set, fmt.Errorf("save %s: %w: choose another Record Name", set.Name, oauthparams.ErrExists)
		case !errors.Is(err, oauthparams.ErrNotFound):
			return set, fmt.Errorf("save %s: %w", set.Name, err)
		}
		if err := store.Put(set); err != nil {
			return set, fmt.Errorf("save %s: %w", set.Name, err)
		}
	} else {
		err := store.Update(origName, func(cur *oauthparams.ParamSet) error {
			cur.Name, cur.Account, cur.ClientID = set.Name, set.Account, set.ClientID
			cur.Secrets.ClientSecret = set.Secrets.ClientSecret
			cur.AuthURL, cur.TokenURL, cur.DeviceURL = set.AuthURL, set.TokenURL, set.DeviceURL
			cur.Scope, cur.RedirectURL, cur.Preset = set.Scope, set.RedirectURL, set.Preset
			cur.ExtraParams = maps.Clone(set.ExtraParams)
			if clearTokens {
				paramsClearTokens(cur)
			}
			return nil
		})
		if err != nil {
			return set, fmt.Errorf("save %s: %w", set.Name, err)
		}
	}
	saved, err := store.Get(set.Name)
	if err != nil {
		return set, fmt.Errorf("read back %s: %w", set.Name, err)
	}
	return saved, nil
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
