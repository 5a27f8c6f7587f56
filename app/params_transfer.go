package app

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/oauthparams"
)

// paramsMaxImport caps the size of a file Import reads; the importer refuses more anyway.
const paramsMaxImport = 10 << 20

// paramsExportDialog is "Export info to file": which sets, and whether with secrets.
type paramsExportDialog struct {
	dlg         *dialog.CustomDialog
	Sets        *widget.CheckGroup
	WithSecrets *widget.Check
	Passphrase  *widget.Entry
	Repeat      *widget.Entry
	Err         *widget.Label
	OK          *widget.Button
}

func (p *ParamsScreen) onExport() {
	names := make([]string, len(p.rows))
	for i, r := range p.rows {
		names[i] = r.Set.Name
	}
	d := &paramsExportDialog{}
	d.Sets = widget.NewCheckGroup(names, nil)
	d.Sets.SetSelected(names)
	d.Passphrase, d.Repeat = widget.NewPasswordEntry(), widget.NewPasswordEntry()
	d.Passphrase.SetPlaceHolder("passphrase to encrypt the secrets")
	d.Repeat.SetPlaceHolder("the same passphrase again")
	d.Passphrase.Disable()
	d.Repeat.Disable()
	d.WithSecrets = widget.NewCheck("Include client secrets and tokens, encrypted with a passphrase", func(on bool) {
		if on {
			d.Passphrase.Enable()
			d.Repeat.Enable()
		} else {
			d.Passphrase.Disable()
			d.Repeat.Disable()
		}
	})
	d.Err = widget.NewLabel("")
	d.Err.Wrapping = fyne.TextWrapWord
	d.Err.Importance = widget.DangerImportance
	all := widget.NewButton("All", func() { d.Sets.SetSelected(names) })
	none := widget.NewButton("None", func() { d.Sets.SetSelected(nil) })
	d.OK = widget.NewButtonWithIcon("Choose file…", theme.DocumentSaveIcon(), func() { p.exportChosen(d) })
	d.OK.Importance = widget.HighImportance
	cancel := widget.NewButton("Cancel", func() { d.dlg.Hide() })
	help := widget.NewLabel("Without secrets the file holds no client secret or token: sets imported from it need Get Refresh Token again.")
	help.Wrapping = fyne.TextWrapWord
	content := container.NewBorder(
		container.NewVBox(container.NewHBox(widget.NewLabel("Parameter sets:"), all, none)),
		container.NewVBox(d.WithSecrets, d.Passphrase, d.Repeat, help, d.Err), nil, nil,
		container.NewVScroll(d.Sets))
	d.dlg = dialog.NewCustomWithoutButtons("Export info to file", content, p.win)
	d.dlg.SetButtons([]fyne.CanvasObject{cancel, d.OK})
	d.dlg.SetOnClosed(func() {
		if p.exportDlg == d {
			p.exportDlg = nil
		}
	})
	d.dlg.Resize(fyne.NewSize(560, 520))
	p.exportDlg = d
	d.dlg.Show()
}

// exportChosen checks the dialog and asks where to write the file.
func (p *ParamsScreen) exportChosen(d *paramsExportDialog) {
	opts := oauthparams.ExportOptions{Names: d.Sets.Selected, WithSecrets: d.WithSecrets.Checked}
	switch {
	case len(opts.Names) == 0:
		d.Err.SetText("Tick at least one parameter set.")
		return
	case opts.WithSecrets && d.Passphrase.Text == "":
		d.Err.SetText("Enter a passphrase: the secrets are encrypted with it, and importing needs it.")
		return
	case opts.WithSecrets && d.Passphrase.Text != d.Repeat.Text:
		d.Err.SetText("The two passphrases differ.")
		return
	}
	if opts.WithSecrets {
		opts.Passphrase = d.Passphrase.Text
	}
	d.dlg.Hide()
	p.chooseSave("mailwright-paramsets.json", func(w fyne.URIWriteCloser) { p.exportTo(w, opts) })
}

// chooseSave asks for a file to write, with the file dialog or the test seam.
func (p *ParamsScreen) chooseSave(name string, cb func(fyne.URIWriteCloser)) {
	if p.pickSave != nil {
		p.pickSave(name, cb)
		return
	}
	fd := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
		if err != nil {
			p.showError("Could not open the file", err)
			return
		}
		if w != nil {
			cb(w)
		}
	}, p.win)
	fd.SetFileName(name)
	fd.SetFilter(storage.NewExtensionFileFilter([]string{".json"}))
	fd.Show()
}

// chooseOpen asks for a file to read, with the file dialog or the test seam.
func (p *ParamsScreen) chooseOpen(cb func(fyne.URIReadCloser)) {
	if p.pickOpen != nil {
		p.pickOpen(cb)
		return
	}
	fd := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil {
			p.showError("Could not open the file", err)
			return
		}
		if r != nil {
			cb(r)
		}
	}, p.win)
	fd.SetFilter(storage.NewExtensionFileFilter([]string{".json"}))
	fd.Show()
}

// exportTo exports in the background and writes the file: a local file atomically with
// mode 0600 (it may hold encrypted secrets), anything else through w.
func (p *ParamsScreen) exportTo(w fyne.URIWriteCloser, opts oauthparams.ExportOptions) {
	store := p.s.Params
	go func() {
		data, err := store.Export(opts)
		uri := w.URI()
		switch {
		case err != nil:
			w.Close()
		case uri.Scheme() == "file":
			w.Close()
			err = oauthparams.WriteFileAtomic(uri.Path(), data, 0o600)
		default:
			_, err = w.Write(data)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		p.do(func() {
			if err != nil {
				p.showError("Export failed", fmt.Errorf("export to %s: %w", uri.Name(), err))
				return
			}
			what := "without secrets"
			if opts.WithSecrets {
				what = "with encrypted secrets"
			}
			p.showInfo("Exported", fmt.Sprintf("Exported %s (%s) to %s.", paramsCount(len(opts.Names), "parameter set"), what, paramsURIText(uri)))
		})
	}()
}

func paramsURIText(u fyne.URI) string {
	if u.Scheme() == "file" {
		return u.Path()
	}
	return u.String()
}

// paramsImportDialog previews an import: what is added, replaced or renamed.
type paramsImportDialog struct {
	dlg        *dialog.CustomDialog
	Conflict   *widget.Select
	Passphrase *widget.Entry
	Preview    *widget.Label
	Err        *widget.Label
	OK         *widget.Button
	data       []byte
	secrets    bool
	planned    bool
}

// paramsConflictRules are the choices for names that exist already.
var paramsConflictRules = []struct {
	label string
	rule  oauthparams.Conflict
}{
	{"add under a new name (“Name (2)”)", oauthparams.ConflictRename},
	{"replace the existing set", oauthparams.ConflictOverwrite},
	{"keep the existing set (skip)", oauthparams.ConflictSkip},
	{"import nothing", oauthparams.ConflictFail},
}

func (p *ParamsScreen) onImport() {
	p.chooseOpen(func(r fyne.URIReadCloser) {
		go func() {
			data, err := io.ReadAll(io.LimitReader(r, paramsMaxImport+1))
			r.Close()
			if err == nil && len(data) > paramsMaxImport {
				err = fmt.Errorf("the file is larger than %d MB, too large for a parameter-set file", paramsMaxImport>>20)
			}
			uri := r.URI()
			p.do(func() {
				if err != nil {
					p.showError("Import failed", fmt.Errorf("read %s: %w", paramsURIText(uri), err))
					return
				}
				p.showImport(paramsURIText(uri), data)
			})
		}()
	})
}

// paramsFileHasSecrets reports whether an export file carries encrypted secrets.
func paramsFileHasSecrets(data []byte) bool {
	var top struct {
		Secrets string `json:"secrets"`
	}
	return json.Unmarshal(data, &top) == nil && strings.TrimSpace(top.Secrets) != ""
}

func (p *ParamsScreen) showImport(name string, data []byte) {
	d := &paramsImportDialog{data: data, secrets: paramsFileHasSecrets(data)}
	labels := make([]string, len(paramsConflictRules))
	for i, c := range paramsConflictRules {
		labels[i] = c.label
	}
	d.Preview = widget.NewLabel("")
	d.Preview.Wrapping = fyne.TextWrapWord
	d.Err = widget.NewLabel("")
	d.Err.Wrapping = fyne.TextWrapWord
	d.Err.Importance = widget.DangerImportance
	d.Passphrase = widget.NewPasswordEntry()
	d.Passphrase.SetPlaceHolder("the passphrase the file was exported with")
	d.Passphrase.OnSubmitted = func(string) { p.planImport(d) }
	d.Conflict = widget.NewSelect(labels, func(string) { p.planImport(d) })
	d.OK = widget.NewButtonWithIcon("Import", theme.ConfirmIcon(), func() { p.runImport(d) })
	d.OK.Importance = widget.HighImportance
	d.OK.Disable()
	cancel := widget.NewButton("Cancel", func() { d.dlg.Hide() })

	top := container.NewVBox(widget.NewLabel("File: " + name))
	if d.secrets {
		check := widget.NewButton("Preview", func() { p.planImport(d) })
		top.Add(widget.NewLabel("The file holds encrypted client secrets and tokens. Passphrase:"))
		top.Add(container.NewBorder(nil, nil, nil, check, d.Passphrase))
	}
	top.Add(widget.NewForm(widget.NewFormItem("If a name exists", d.Conflict)))
	content := container.NewBorder(top, d.Err, nil, nil, container.NewVScroll(d.Preview))
	d.dlg = dialog.NewCustomWithoutButtons("Import info from file", content, p.win)
	d.dlg.SetButtons([]fyne.CanvasObject{cancel, d.OK})
	d.dlg.SetOnClosed(func() {
		if p.importDlg == d {
			p.importDlg = nil
		}
	})
	d.dlg.Resize(fyne.NewSize(580, 480))
	p.importDlg = d
	d.dlg.Show()
	d.Conflict.SetSelectedIndex(0) // plans the import
}

func (d *paramsImportDialog) options() oauthparams.ImportOptions {
	opts := oauthparams.ImportOptions{OnConflict: oauthparams.ConflictRename}
	if i := d.Conflict.SelectedIndex(); i >= 0 {
		opts.OnConflict = paramsConflictRules[i].rule
	}
	if d.secrets {
		opts.Passphrase = d.Passphrase.Text
	}
	return opts
}

// planImport previews the import with Store.PlanImport in the background.
func (p *ParamsScreen) planImport(d *paramsImportDialog) {
	d.OK.Disable()
	d.planned = false
	d.Err.SetText("")
	if d.secrets && d.Passphrase.Text == "" {
		d.Preview.SetText("Enter the passphrase and press Preview to see what will be imported.")
		return
	}
	d.Preview.SetText("Checking the file…")
	opts, data, store := d.options(), d.data, p.s.Params
	go func() {
		plan, err := store.PlanImport(data, opts)
		p.do(func() {
			if opts != d.options() {
				return // the choices changed meanwhile; a newer preview is on its way
			}
			if err != nil {
				d.Preview.SetText("")
				d.Err.SetText("Nothing can be imported: " + paramsExplain(err))
				return
			}
			d.Preview.SetText(paramsPlanText(plan))
			d.planned = true
			d.OK.Enable()
		})
	}()
}

// paramsPlanText says what an import does with each set.
func paramsPlanText(plan oauthparams.ImportPlan) string {
	if len(plan.Items) == 0 {
		return "The file holds no parameter sets."
	}
	lines := make([]string, 0, len(plan.Items))
	for _, it := range plan.Items {
		var line string
		switch it.Action {
		case "add":
			line = "added: " + it.Name
		case "replace":
			line = "replaced: " + it.Name
		case "rename":
			line = "renamed: " + it.Name + " → " + it.FinalName
		case "skip":
			line = "skipped: " + it.Name + " (kept the existing set)"
		default:
			line = it.Action + ": " + it.Name
		}
		if it.Action != "skip" && !it.WithSecrets {
			line += " — without secrets: sign in again with Get Refresh Token"
		}
		lines = append(lines, "• "+line)
	}
	return strings.Join(lines, "\n")
}

// runImport imports with the previewed options and reloads the list.
func (p *ParamsScreen) runImport(d *paramsImportDialog) {
	if !d.planned {
		return
	}
	d.OK.Disable()
	opts, data, store := d.options(), d.data, p.s.Params
	go func() {
		plan, err := store.Import(data, opts)
		p.do(func() {
			if err != nil {
				d.OK.Enable()
				d.Err.SetText("Nothing was imported: " + paramsExplain(err))
				return
			}
			d.dlg.Hide()
			p.Refresh()
			if p.origName != "" && !p.dirty() {
				p.open(p.origName) // the import may have replaced it
			}
			p.showInfo("Imported", "Import done:\n"+paramsPlanText(plan))
		})
	}()
}
