package app

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/oauthparams"
)

// paramsRow is one line of the list of parameter sets: the set without its secrets and
// its status, worked out with the secrets loaded.
type paramsRow struct {
	Set    oauthparams.ParamSet
	Status oauthparams.StatusInfo
}

// ParamsScreen is the OAuth parameter sets editor: the list of sets on the left, the form
// of the selected set on the right, and the actions that go with it (Load Predefined
// Endpoints, Get Refresh Token, Test Connection, export and import). Every store access
// and network request runs in a goroutine; widgets change only on the UI goroutine.
type ParamsScreen struct {
	s       *Services
	win     fyne.Window
	content fyne.CanvasObject // built once by Content

	// List shows the sets; ListInfo says when it is empty or could not be read.
	List     *widget.List
	ListInfo *widget.Label
	rows     []paramsRow
	listSeq  atomic.Int64 // the newest Refresh; older answers are dropped
	loaded   bool         // the list was read at least once
	noSelect bool         // set while the list selection is changed by code

	// The form (params_form.go).
	Name, Account, ClientID, ClientSecret   *widget.Entry
	RefreshToken                            *widget.Entry
	AuthURL, TokenURL, Scope                *widget.Entry
	DeviceURL, RedirectURL, ExtraParams     *widget.Entry
	ScopeIMAP, ScopePOP3, ScopeSMTP         *widget.Check
	Provider, StatusText, Problems, Editing *widget.Label
	StatusIcon                              *widget.Icon
	fieldErrs                               map[string]*widget.Label
	advanced                                *widget.Accordion

	// Buttons.
	New, Duplicate, Delete, Save, Revert     *widget.Button
	ClearToken, LoadPreset, SignIn, TestConn *widget.Button
	Export, Import                           *widget.Button

	// What is being edited.
	orig         oauthparams.ParamSet // the set as loaded, with secrets; zero for a new set
	origName     string               // its stored name; "" for a set not saved yet
	preset       string               // the preset ID loaded into the form
	tokenCleared bool                 // Clear was pressed: Save removes the tokens
	baseline     string               // formKey when the form was filled
	filling      bool                 // set while code fills the form: no change handling
	touched      bool                 // the user changed something since the form was filled
	busy         bool                 // a save, delete or load is running

	// Seams for tests; nil means the real thing (fyne.Do, system browser, file dialogs).
	ui          func(func())
	openBrowser func(url string) error
	pickSave    func(defaultName string, cb func(fyne.URIWriteCloser))
	pickOpen    func(cb func(fyne.URIReadCloser))

	// Open dialogs, kept so that tests can drive them (confirmDlg: the last question asked).
	confirmDlg *dialog.ConfirmDialog
	presetDlg  *paramsPresetDialog
	signInDlg  *paramsSignInDialog
	testDlg    *paramsTestDialog
	exportDlg  *paramsExportDialog
	importDlg  *paramsImportDialog
	lastMsg    string // the text of the last error or information dialog shown
}

// NewParamsScreen builds the screen and starts loading the list of sets in the
// background. When s.Params is nil the screen only explains s.ParamsErr.
func NewParamsScreen(s *Services, win fyne.Window) *ParamsScreen {
	return paramsNewScreen(s, win, nil)
}

// paramsNewScreen is NewParamsScreen with ui running the background work's widget
// updates (nil: fyne.Do); tests pass one that serialises with the test goroutine.
func paramsNewScreen(s *Services, win fyne.Window, ui func(func())) *ParamsScreen {
	p := &ParamsScreen{s: s, win: win, ui: ui}
	p.ListInfo = widget.NewLabel("Loading…")
	p.ListInfo.Wrapping = fyne.TextWrapWord
	p.List = widget.NewList(func() int { return len(p.rows) }, paramsNewRow, p.updateRow)
	p.List.OnSelected = p.onSelected
	p.buildForm()
	p.buildButtons()
	if s.Params == nil {
		return p
	}
	p.startNew(oauthparams.ParamSet{})
	p.Refresh()
	return p
}

// Content is the screen's root object.
func (p *ParamsScreen) Content() fyne.CanvasObject {
	if p.content == nil {
		p.content = p.layout()
	}
	return p.content
}

func (p *ParamsScreen) layout() fyne.CanvasObject {
	if p.s.Params == nil {
		return p.unavailable()
	}
	heading := widget.NewLabelWithStyle("OAuth parameter sets", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	listButtons := container.NewGridWithColumns(3, p.New, p.Duplicate, p.Delete)
	transfer := container.NewGridWithColumns(2, p.Import, p.Export)
	left := container.NewBorder(container.NewVBox(heading, p.ListInfo), container.NewVBox(listButtons, transfer), nil, nil, p.List)

	actions := container.NewHBox(p.Save, p.Revert, widget.NewSeparator(), p.SignIn, p.TestConn)
	status := container.NewBorder(nil, nil, p.StatusIcon, nil, p.StatusText)
	top := container.NewVBox(p.Editing, status)
	right := container.NewBorder(top, container.NewVBox(widget.NewSeparator(), container.NewHScroll(actions)), nil, nil,
		container.NewVScroll(container.NewVBox(p.formObject(), p.Problems)))
	split := container.NewHSplit(left, right)
	split.Offset = 0.32
	return split
}

// Refresh reloads the list of sets (and their status) in the background.
func (p *ParamsScreen) Refresh() {
	if p.s.Params == nil {
		return
	}
	seq := p.listSeq.Add(1)
	store := p.s.Params
	go func() {
		rows, err := paramsLoadRows(store)
		p.do(func() {
			if p.listSeq.Load() != seq {
				return
			}
			p.showRows(rows, err)
		})
	}()
}

// paramsLoadRows reads every set with its secrets to work out its status, then drops the
// secrets: the list never holds them.
func paramsLoadRows(store *oauthparams.Store) ([]paramsRow, error) {
	sets, err := store.List()
	if err != nil {
		return nil, fmt.Errorf("read the parameter sets: %w", err)
	}
	now := time.Now()
	rows := make([]paramsRow, 0, len(sets))
	var secretsErr error
	for _, set := range sets {
		full, err := store.Get(set.Name)
		switch {
		case err == nil:
			set = full
		case secretsErr == nil:
			secretsErr = fmt.Errorf("read the secrets of %s: %w", set.Name, err)
		}
		st := set.Status(now)
		set.Secrets = oauthparams.Secrets{}
		rows = append(rows, paramsRow{Set: set, Status: st})
	}
	return rows, secretsErr
}

func (p *ParamsScreen) showRows(rows []paramsRow, err error) {
	p.rows = rows
	p.List.Refresh()
	switch {
	case err != nil:
		p.ListInfo.SetText("Could not read everything: " + err.Error())
		p.ListInfo.Importance = widget.DangerImportance
	case len(rows) == 0:
		p.ListInfo.SetText("No parameter sets yet: fill in the form and Save, or Import info from file.")
		p.ListInfo.Importance = widget.MediumImportance
	default:
		p.ListInfo.SetText(paramsCount(len(rows), "parameter set"))
		p.ListInfo.Importance = widget.MediumImportance
	}
	p.ListInfo.Refresh()
	first := !p.loaded
	p.loaded = true
	if first && p.origName == "" && !p.dirty() && len(rows) > 0 {
		p.List.Select(0) // opens the first set
		return
	}
	p.selectCurrent()
	p.updateState()
}

// selectCurrent shows the set being edited as selected in the list, without reloading it.
func (p *ParamsScreen) selectCurrent() {
	p.noSelect = true
	defer func() { p.noSelect = false }()
	if i := p.rowIndex(p.origName); i >= 0 && p.origName != "" {
		p.List.Select(i)
		return
	}
	p.List.UnselectAll()
}

func (p *ParamsScreen) rowIndex(name string) int {
	key := oauthparams.NameKey(name)
	for i, r := range p.rows {
		if oauthparams.NameKey(r.Set.Name) == key {
			return i
		}
	}
	return -1
}

// onSelected opens the chosen set, asking first when the form has unsaved changes.
func (p *ParamsScreen) onSelected(id widget.ListItemID) {
	if p.noSelect || id < 0 || id >= len(p.rows) {
		return
	}
	name := p.rows[id].Set.Name
	if p.origName != "" && oauthparams.NameKey(name) == oauthparams.NameKey(p.origName) {
		return
	}
	p.guard(func() { p.open(name) }, p.selectCurrent)
}

// guard runs proceed at once when nothing is unsaved, else after the user agrees to
// discard the changes; cancel runs when they do not.
func (p *ParamsScreen) guard(proceed, cancel func()) {
	if !p.dirty() {
		proceed()
		return
	}
	what := "the new parameter set"
	if p.origName != "" {
		what = "“" + p.origName + "”"
	}
	d := dialog.NewConfirm("Unsaved changes",
		"You have unsaved changes to "+what+".\nDiscard them?", func(ok bool) {
			p.confirmDlg = nil
			if ok {
				proceed()
			} else if cancel != nil {
				cancel()
			}
		}, p.win)
	d.SetConfirmText("Discard changes")
	d.SetDismissText("Keep editing")
	p.confirmDlg = d
	d.Show()
}

// open loads the named set (with its secrets) into the form.
func (p *ParamsScreen) open(name string) {
	p.setBusy(true)
	store := p.s.Params
	go func() {
		set, err := store.Get(name)
		p.do(func() {
			p.setBusy(false)
			if err != nil {
				p.showError("Could not open the parameter set", fmt.Errorf("open %s: %w", name, err))
				p.selectCurrent()
				return
			}
			p.fill(set, true)
			p.selectCurrent()
		})
	}()
}

// unavailable explains why the parameter store could not be opened and what to do.
func (p *ParamsScreen) unavailable() fyne.CanvasObject {
	heading := widget.NewLabelWithStyle("OAuth parameter sets are not available", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	reason := "The parameter-set store could not be opened."
	if p.s.ParamsErr != nil {
		reason = "The parameter-set store could not be opened: " + p.s.ParamsErr.Error()
	}
	advice := "Mailwright keeps client secrets and refresh tokens in the system keyring, or in an encrypted " +
		"file in the data folder (" + p.s.DataDir + ").\n\nTo fix this, either:\n" +
		"• install and unlock a keyring (GNOME Keyring, KWallet or another Secret Service; on macOS and Windows it is built in), or\n" +
		"• set the environment variable MAILWRIGHT_PASSPHRASE to the passphrase of the secrets file,\n" +
		"then start Mailwright again. If paramsets.json in the data folder is damaged, restore it from a backup."
	body := widget.NewLabel(reason + "\n\n" + advice)
	body.Wrapping = fyne.TextWrapWord
	body.Selectable = true
	icon := widget.NewIcon(theme.NewErrorThemedResource(theme.ErrorIcon()))
	return container.NewVScroll(container.NewVBox(container.NewHBox(icon, heading), body))
}

// paramsNewRow is the template of one list line: name and status badge, then account,
// provider and last refresh.
func paramsNewRow() fyne.CanvasObject {
	name := widget.NewLabelWithStyle("name", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	name.Truncation = fyne.TextTruncateEllipsis
	badge := widget.NewLabel("status")
	icon := widget.NewIcon(theme.InfoIcon())
	detail := widget.NewLabel("account")
	detail.Truncation = fyne.TextTruncateEllipsis
	detail.SizeName = theme.SizeNameCaptionText
	top := container.NewBorder(nil, nil, nil, container.NewHBox(icon, badge), name)
	return container.NewVBox(top, detail)
}

func (p *ParamsScreen) updateRow(id widget.ListItemID, o fyne.CanvasObject) {
	if id < 0 || id >= len(p.rows) {
		return
	}
	r := p.rows[id]
	box := o.(*fyne.Container)
	top := box.Objects[0].(*fyne.Container)
	name := top.Objects[0].(*widget.Label)
	badge := top.Objects[1].(*fyne.Container)
	icon, text := badge.Objects[0].(*widget.Icon), badge.Objects[1].(*widget.Label)
	detail := box.Objects[1].(*widget.Label)

	name.SetText(r.Set.Name)
	res, label, imp := paramsBadge(r.Status.State)
	icon.SetResource(res)
	text.Importance = imp
	text.SetText(label)
	provider := "no provider"
	if pr, ok := oauthparams.FindPreset(r.Set.Preset); ok {
		provider = pr.Name
	} else if r.Set.Preset != "" {
		provider = r.Set.Preset
	}
	account := r.Set.Account
	if account == "" {
		account = "no account"
	}
	detail.SetText(account + " · " + provider + " · refreshed " + paramsWhen(r.Status.LastRefresh))
	top.Refresh() // lays the row out again for the new badge width
}

// paramsBadge is the icon, short text and colour of a set's state.
func paramsBadge(st oauthparams.State) (fyne.Resource, string, widget.Importance) {
	switch st {
	case oauthparams.StateReady:
		return theme.NewSuccessThemedResource(theme.ConfirmIcon()), "ready", widget.SuccessImportance
	case oauthparams.StateTokenRevoked:
		return theme.NewErrorThemedResource(theme.ErrorIcon()), "token expired or revoked", widget.DangerImportance
	case oauthparams.StateScopeChanged:
		return theme.NewWarningThemedResource(theme.WarningIcon()), "scope changed", widget.WarningImportance
	case oauthparams.StateIncomplete:
		return theme.NewErrorThemedResource(theme.ErrorIcon()), "incomplete", widget.DangerImportance
	default:
		return theme.NewWarningThemedResource(theme.WarningIcon()), "sign-in needed", widget.WarningImportance
	}
}

// paramsWhen formats a last-refresh time for people.
func paramsWhen(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// do runs f on the UI goroutine: the only way background work touches widgets.
func (p *ParamsScreen) do(f func()) {
	if p.ui != nil {
		p.ui(f)
		return
	}
	p.s.do(f)
}

// showError shows err in words in a dialog whose text wraps and can be selected.
func (p *ParamsScreen) showError(title string, err error) {
	p.showMessage(title, paramsExplain(err), theme.NewErrorThemedResource(theme.ErrorIcon()))
}

// showInfo shows a short message.
func (p *ParamsScreen) showInfo(title, msg string) {
	p.showMessage(title, msg, theme.InfoIcon())
}

func (p *ParamsScreen) showMessage(title, msg string, icon fyne.Resource) {
	p.lastMsg = msg
	text := widget.NewLabel(msg)
	text.Wrapping = fyne.TextWrapWord
	text.Selectable = true
	content := container.NewBorder(nil, nil, container.NewVBox(widget.NewIcon(icon), layout.NewSpacer()), nil, text)
	d := dialog.NewCustom(title, "Close", content, p.win)
	d.Resize(fyne.NewSize(520, 240))
	d.Show()
}

// paramsExplain renders err in words, adding the provider advice when the message does
// not carry it already.
func paramsExplain(err error) string {
	msg := err.Error()
	if pe, ok := errors.AsType[*oauthparams.ProviderError](err); ok && pe.Advice != "" && !strings.Contains(msg, pe.Advice) {
		msg += "\n\nWhat to do: " + pe.Advice
	}
	return msg
}
