package app

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/task"
)

// The display text of special select options.
const (
	editorDefaultChoice = "(default)"
	editorNoParamSet    = "(none)"
	editorNewParamSet   = "New…"
)

// editorField is one generated field of a properties form: the widget for its kind (one
// of entry, check, sel) and its extra buttons.
type editorField struct {
	param  actions.Param
	entry  *widget.Entry  // text-like kinds
	check  *widget.Check  // bool
	sel    *widget.Select // enum, paramset
	picker *widget.Button // the variable picker, when the field has one
	browse *widget.Button // file and folder
	obj    fyne.CanvasObject
}

// editorFormOpts says where a generated form reads and writes its values.
type editorFormOpts struct {
	values map[string]string        // the raw values
	set    func(name, value string) // called on every change ("" means unset)
	vars   func() []editorVar       // the variables the picker offers; nil: no picker
}

// paramForm generates the form of params: one field per parameter, the advanced ones
// apart. It fails on a parameter kind it does not know.
func (e *TaskEditor) paramForm(params []actions.Param, o editorFormOpts) (basic, advanced *widget.Form, fields map[string]*editorField, err error) {
	basic, advanced = widget.NewForm(), widget.NewForm()
	fields = map[string]*editorField{}
	var errs []error
	for _, p := range params {
		f, ferr := e.newField(p, o.values[p.Name], o)
		if ferr != nil {
			errs = append(errs, ferr)
			continue
		}
		fields[p.Name] = f
		label := p.Label
		if p.Required {
			label += " *"
		}
		item := widget.NewFormItem(label, f.obj)
		if p.Help != "" {
			item.Widget = container.NewVBox(f.obj, editorHint(p.Help))
		}
		if p.Advanced {
			advanced.AppendItem(item)
		} else {
			basic.AppendItem(item)
		}
	}
	return basic, advanced, fields, errors.Join(errs...)
}

// newField builds the widget of one parameter from its kind.
func (e *TaskEditor) newField(p actions.Param, val string, o editorFormOpts) (*editorField, error) {
	f := &editorField{param: p}
	set := func(v string) { o.set(p.Name, v) }
	switch p.Kind {
	case actions.KindText, actions.KindConnection, actions.KindDuration, actions.KindNumber,
		actions.KindSecret, actions.KindMultiline, actions.KindFile, actions.KindFolder:
		switch p.Kind {
		case actions.KindMultiline:
			f.entry = widget.NewMultiLineEntry()
			f.entry.SetMinRowsVisible(3)
			f.entry.Wrapping = fyne.TextWrapWord
		case actions.KindSecret:
			f.entry = widget.NewPasswordEntry()
		default:
			f.entry = widget.NewEntry()
		}
		f.entry.SetText(val)
		if p.Default != "" {
			f.entry.SetPlaceHolder(p.Default)
		}
		switch p.Kind {
		case actions.KindNumber:
			f.entry.Validator = editorCheckNumber
		case actions.KindDuration:
			f.entry.Validator = editorCheckDuration
			if p.Default == "" {
				f.entry.SetPlaceHolder("e.g. 30s or 5m")
			}
		}
		f.entry.OnChanged = set
		var buttons []fyne.CanvasObject
		switch p.Kind {
		case actions.KindFile:
			f.browse = widget.NewButtonWithIcon("", theme.FileIcon(), func() { e.browseFile(f.entry) })
			buttons = append(buttons, f.browse)
		case actions.KindFolder:
			f.browse = widget.NewButtonWithIcon("", theme.FolderOpenIcon(), func() { e.browseFolder(f.entry) })
			buttons = append(buttons, f.browse)
		}
		if o.vars != nil {
			f.picker = widget.NewButton("{x}", func() { e.showPicker(f.entry, o.vars()) })
			buttons = append(buttons, f.picker)
		}
		f.obj = f.entry
		if len(buttons) > 0 {
			f.obj = container.NewBorder(nil, nil, nil, container.NewHBox(buttons...), f.entry)
		}
	case actions.KindBool:
		cur := val
		if cur == "" {
			cur = p.Default
		}
		on, _ := strconv.ParseBool(cur)
		f.check = widget.NewCheck("", nil)
		f.check.SetChecked(on)
		f.check.OnChanged = func(b bool) {
			switch {
			case b:
				set("true")
			case p.Default == "true":
				set("false")
			default:
				set("")
			}
		}
		f.obj = f.check
	case actions.KindEnum:
		opts := make([]string, 0, len(p.Choices)+1)
		for _, c := range p.Choices {
			opts = append(opts, editorChoiceText(c))
		}
		cur := val
		if cur == "" {
			cur = p.Default
		}
		if cur != "" && !slices.Contains(p.Choices, cur) {
			opts = append(opts, cur) // a {Variable} or a value to fix: keep it visible
		}
		f.sel = widget.NewSelect(opts, nil)
		f.sel.SetSelected(editorChoiceText(cur))
		f.sel.OnChanged = func(s string) {
			if s == editorDefaultChoice {
				s = ""
			}
			set(s)
		}
		f.obj = f.sel
	case actions.KindParamSet:
		f.sel = widget.NewSelect(editorParamSetOptions(nil, val), nil)
		f.sel.PlaceHolder = editorNoParamSet
		if val != "" {
			f.sel.SetSelected(val)
		}
		prev := val
		f.sel.OnChanged = func(s string) {
			switch s {
			case editorNewParamSet:
				dialog.ShowInformation("New parameter set",
					"Create and sign in to parameter sets on the Parameter sets tab; they then appear in this list.", e.win)
				if prev == "" {
					f.sel.ClearSelected()
				} else {
					f.sel.SetSelected(prev)
				}
				return
			case editorNoParamSet:
				s = ""
			}
			prev = s
			set(s)
		}
		e.loadParamSets(f.sel)
		f.obj = f.sel
	default:
		return nil, fmt.Errorf("parameter %q: the form has no widget for kind %q", p.Name, p.Kind)
	}
	return f, nil
}

// editorChoiceText shows an empty enum choice as "(default)".
func editorChoiceText(c string) string {
	if c == "" {
		return editorDefaultChoice
	}
	return c
}

// editorParamSetOptions lists the parameter-set choices: none, the stored sets, the
// current value when it is not one of them, and New….
func editorParamSetOptions(names []string, cur string) []string {
	opts := append([]string{editorNoParamSet}, names...)
	if cur != "" && !slices.Contains(names, cur) {
		opts = append(opts, cur)
	}
	return append(opts, editorNewParamSet)
}

// loadParamSets fills sel with the stored parameter sets' names, off the UI goroutine.
func (e *TaskEditor) loadParamSets(sel *widget.Select) {
	if e.s.Params == nil {
		return
	}
	e.background(func() {
		sets, err := e.s.Params.List()
		if err != nil {
			return // the Parameter sets tab shows why the store cannot be read
		}
		names := make([]string, len(sets))
		for i, p := range sets {
			names[i] = p.Name
		}
		e.uiDo(func() {
			cur := sel.Selected
			if cur == editorNoParamSet {
				cur = ""
			}
			sel.SetOptions(editorParamSetOptions(names, cur))
		})
	})
}

// editorCheckNumber accepts an empty value, a whole number or a value with {variables}.
func editorCheckNumber(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || strings.Contains(s, "{") {
		return nil
	}
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	return nil
}

// editorCheckDuration accepts an empty value, a duration or a value with {variables}.
func editorCheckDuration(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || strings.Contains(s, "{") {
		return nil
	}
	if _, err := time.ParseDuration(s); err != nil {
		return fmt.Errorf("%q is not a duration such as 30s or 5m", s)
	}
	return nil
}

// browseFile lets the user pick a file for entry.
func (e *TaskEditor) browseFile(entry *widget.Entry) {
	dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil {
			dialog.ShowError(fmt.Errorf("choose a file: %w", err), e.win)
			return
		}
		if r == nil {
			return
		}
		path := r.URI().Path()
		_ = r.Close()
		entry.SetText(path)
	}, e.win)
}

// browseFolder lets the user pick a folder for entry.
func (e *TaskEditor) browseFolder(entry *widget.Entry) {
	dialog.ShowFolderOpen(func(u fyne.ListableURI, err error) {
		if err != nil {
			dialog.ShowError(fmt.Errorf("choose a folder: %w", err), e.win)
			return
		}
		if u != nil {
			entry.SetText(u.Path())
		}
	}, e.win)
}

// buildForm shows the properties of the selected step: its label, the generated
// parameter form, its error policy and the variables it sets.
func (e *TaskEditor) buildForm() {
	e.formBox.RemoveAll()
	e.fields = nil
	e.labelEntry = nil
	defer func() {
		e.formBox.Refresh()
		e.formScroll.ScrollToTop()
	}()
	path := slices.Clone(e.selected)
	st := e.step(path)
	if st == nil {
		e.formBox.Add(editorHeading("No step selected"))
		e.formBox.Add(editorHint("Select a step in the tree to edit it, or add one from the actions on the left."))
		return
	}
	a, ok := e.s.Registry.Get(st.Action)
	if !ok {
		e.formBox.Add(editorHeading(e.stepTitle(st)))
		e.formBox.Add(editorHint("This build has no such action: remove the step or edit the task file."))
		return
	}
	sc := a.Schema()
	e.formBox.Add(editorHeading(sc.Title + "  (" + sc.ID + ")"))
	if sc.Help != "" {
		e.formBox.Add(editorHint(sc.Help))
	}

	e.labelEntry = widget.NewEntry()
	e.labelEntry.SetText(st.Label)
	e.labelEntry.SetPlaceHolder("e.g. each new invoice")
	e.labelEntry.OnChanged = func(s string) {
		if cur := e.step(path); cur != nil {
			cur.Label = s
			e.changed()
		}
	}
	disabled := widget.NewCheck("Skip this step when the task runs", func(b bool) {
		if cur := e.step(path); cur != nil {
			cur.Disabled = b
			e.changed()
		}
	})
	disabled.SetChecked(st.Disabled)
	e.formBox.Add(widget.NewForm(
		widget.NewFormItem("Step label", e.labelEntry),
		widget.NewFormItem("Disabled", disabled),
	))

	basic, advanced, fields, err := e.paramForm(sc.Params, editorFormOpts{
		values: st.Params,
		set:    func(name, value string) { e.setParam(path, name, value) },
		vars:   func() []editorVar { return e.varsAt(path) },
	})
	e.fields = fields
	if err != nil {
		l := widget.NewLabel(err.Error())
		l.Importance = widget.DangerImportance
		l.Wrapping = fyne.TextWrapWord
		e.formBox.Add(l)
	}
	e.formBox.Add(editorHeading("Parameters"))
	if len(basic.Items) > 0 {
		e.formBox.Add(basic)
	} else if len(advanced.Items) == 0 {
		e.formBox.Add(editorHint("This action has no parameters."))
	}
	if len(advanced.Items) > 0 {
		e.formBox.Add(widget.NewAccordion(widget.NewAccordionItem("Advanced", advanced)))
	}

	e.formBox.Add(editorHeading("When this step fails"))
	e.stepPolicy = e.policyEditor(
		func() *task.OnError {
			if cur := e.step(path); cur != nil {
				return cur.OnError
			}
			return nil
		},
		func(oe *task.OnError) {
			if cur := e.step(path); cur != nil {
				cur.OnError = oe
			}
		},
		"(task's policy)")
	e.formBox.Add(e.stepPolicy.obj)

	if len(sc.Outputs) > 0 {
		names := make([]string, len(sc.Outputs))
		for i, o := range sc.Outputs {
			names[i] = "{" + o.Name + "}"
		}
		e.formBox.Add(editorHeading("Sets variables"))
		e.formBox.Add(editorHint(strings.Join(names, "  ")))
	}
}

// setParam stores one parameter of the step at path ("" removes it) and revalidates.
func (e *TaskEditor) setParam(path []int, name, value string) {
	st := e.step(path)
	if st == nil {
		return
	}
	if value == "" {
		delete(st.Params, name)
		if len(st.Params) == 0 {
			st.Params = nil
		}
	} else {
		if st.Params == nil {
			st.Params = map[string]string{}
		}
		st.Params[name] = value
	}
	e.changed()
}
