package app

import (
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/task"
)

// editorVar is a variable the picker offers.
type editorVar struct {
	Name   string
	Source string // "Built-in", "Task variable", "IMAP Mail Loop (step 3)"
	Help   string
}

// editorBuiltinHelp explains the built-in variables.
var editorBuiltinHelp = map[string]string{
	"Date":          "The run's start date",
	"Time":          "The run's start time",
	"TaskName":      "The task's name",
	"RunID":         "The run's identifier",
	"DataDir":       "Mailwright's data folder",
	"LastError":     "The last error a step with the continue policy hit",
	"LastErrorStep": "The step that hit LastError",
}

// varsAt lists the variables a step at path may use, as task.Validate scopes them:
// built-ins, task variables, then the outputs of every step before it in task order (a
// loop comes before its body, so a body sees its loop's outputs). A later source of the
// same name replaces the earlier one's description.
func (e *TaskEditor) varsAt(path []int) []editorVar {
	var out []editorVar
	index := map[string]int{}
	add := func(v editorVar) {
		if !task.ValidName(v.Name) {
			return // e.g. EmailHeader_<Name>, a family of names rather than one
		}
		if i, ok := index[v.Name]; ok {
			out[i] = v
			return
		}
		index[v.Name] = len(out)
		out = append(out, v)
	}
	for _, n := range task.BuiltinVariables() {
		add(editorVar{Name: n, Source: "Built-in", Help: editorBuiltinHelp[n]})
	}
	for _, v := range e.task.Variables {
		help := v.Description
		if v.Default != "" {
			help = strings.TrimSpace(help + " (default " + strconv.Quote(v.Default) + ")")
		}
		add(editorVar{Name: v.Name, Source: "Task variable", Help: help})
	}
	if path == nil {
		return editorNearestFirst(out)
	}
	var walk func(steps []task.Step, prefix []int) bool
	walk = func(steps []task.Step, prefix []int) bool {
		for i := range steps {
			p := append(slices.Clone(prefix), i)
			if slices.Equal(p, path) {
				return true
			}
			if a, ok := e.s.Registry.Get(steps[i].Action); ok {
				sc := a.Schema()
				src := sc.Title + " (step " + editorStepNumber(p) + ")"
				for _, o := range sc.Outputs {
					add(editorVar{Name: o.Name, Source: src, Help: o.Help})
				}
				if sc.IsLoop && walk(steps[i].Body, p) {
					return true
				}
			}
		}
		return false
	}
	walk(e.task.Steps, nil)
	return editorNearestFirst(out)
}

// editorNearestFirst orders variables by source, the latest source first (the enclosing
// loop's outputs before the first step's, task variables before built-ins), keeping each
// source's own order.
func editorNearestFirst(vars []editorVar) []editorVar {
	var sources []string
	by := map[string][]editorVar{}
	for _, v := range vars {
		if _, ok := by[v.Source]; !ok {
			sources = append(sources, v.Source)
		}
		by[v.Source] = append(by[v.Source], v)
	}
	out := make([]editorVar, 0, len(vars))
	for i := len(sources) - 1; i >= 0; i-- {
		out = append(out, by[sources[i]]...)
	}
	return out
}

// editorStepNumber is a step's number as people count: "3" or "3.1".
func editorStepNumber(path []int) string {
	parts := make([]string, len(path))
	for i, n := range path {
		parts[i] = strconv.Itoa(n + 1)
	}
	return strings.Join(parts, ".")
}

// showPicker opens the variable picker; choosing a variable types "{Name}" into target
// at its cursor.
func (e *TaskEditor) showPicker(target *widget.Entry, vars []editorVar) {
	search := widget.NewEntry()
	search.SetPlaceHolder("Filter variables")
	e.pickerShown = vars
	list := widget.NewList(
		func() int { return len(e.pickerShown) },
		func() fyne.CanvasObject {
			help := editorHint("source")
			help.Wrapping = fyne.TextWrapOff
			help.Truncation = fyne.TextTruncateEllipsis
			return container.NewVBox(widget.NewLabelWithStyle("{Name}", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true}), help)
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			if id >= len(e.pickerShown) {
				return
			}
			v := e.pickerShown[id]
			c := o.(*fyne.Container)
			c.Objects[0].(*widget.Label).SetText("{" + v.Name + "}")
			what := v.Source
			if v.Help != "" {
				what += " — " + v.Help
			}
			c.Objects[1].(*widget.Label).SetText(what)
		})
	// A field the user never put the cursor in has it at the start: add at the end then.
	atEnd := target.Text != "" && target.CursorTextOffset() == 0
	if c := e.win.Canvas(); c != nil && c.Focused() == target {
		atEnd = false
	}
	var d dialog.Dialog
	list.OnSelected = func(id widget.ListItemID) {
		if id >= len(e.pickerShown) {
			return
		}
		ref := "{" + e.pickerShown[id].Name + "}"
		d.Hide()
		if atEnd {
			target.Append(ref)
		} else {
			for _, r := range ref {
				target.TypedRune(r)
			}
		}
		if c := e.win.Canvas(); c != nil {
			c.Focus(target)
		}
	}
	search.OnChanged = func(q string) {
		q = strings.ToLower(strings.TrimSpace(q))
		e.pickerShown = nil
		for _, v := range vars {
			if q == "" || strings.Contains(strings.ToLower(v.Name), q) || strings.Contains(strings.ToLower(v.Source), q) {
				e.pickerShown = append(e.pickerShown, v)
			}
		}
		list.UnselectAll()
		list.Refresh()
	}
	content := container.NewBorder(container.NewVBox(
		editorHint("Variables available at this step. The value replaces {Name} when the task runs."), search),
		nil, nil, nil, list)
	d = dialog.NewCustom("Insert a variable", "Cancel", content, e.win)
	d.SetOnClosed(func() {
		e.pickerDialog, e.pickerList = nil, nil
	})
	e.pickerDialog, e.pickerList = d, list
	d.Resize(fyne.NewSize(520, 440))
	d.Show()
}

// The policy choices, apart from the "inherit" one whose text the caller gives.
var editorPolicies = []string{task.PolicyStop, task.PolicyContinue, task.PolicyRetry}

// editorPolicy is an error-policy editor's widgets.
type editorPolicy struct {
	policy                    *widget.Select
	retries, backoff, runTask *widget.Entry
	obj                       fyne.CanvasObject
}

// policyEditor edits an error policy read with get and written with set (nil: none).
// inherit names the empty policy, e.g. "(task's policy)".
func (e *TaskEditor) policyEditor(get func() *task.OnError, set func(*task.OnError), inherit string) *editorPolicy {
	var cur task.OnError
	if oe := get(); oe != nil {
		cur = *oe
	}
	policy := widget.NewSelect(append([]string{inherit}, editorPolicies...), nil)
	retries, backoff, runTask := widget.NewEntry(), widget.NewEntry(), widget.NewEntry()
	retries.Validator = func(s string) error {
		if s == "" {
			return nil
		}
		return editorCheckNumber(s)
	}
	backoff.Validator = editorCheckDuration
	backoff.SetPlaceHolder("5s")
	runTask.SetPlaceHolder("Name of a task to run after a failure (optional)")
	if cur.Retries != 0 {
		retries.SetText(strconv.Itoa(cur.Retries))
	}
	backoff.SetText(cur.Backoff)
	runTask.SetText(cur.RunTask)
	if cur.Policy == "" {
		policy.SetSelected(inherit)
	} else {
		if !slices.Contains(policy.Options, cur.Policy) {
			policy.Options = append(policy.Options, cur.Policy) // invalid: shown so it can be fixed
		}
		policy.SetSelected(cur.Policy)
	}
	retryForm := widget.NewForm(
		widget.NewFormItem("Retries", retries),
		widget.NewFormItem("First wait", backoff),
	)
	showRetry := func() {
		if policy.Selected == task.PolicyRetry {
			retryForm.Show()
		} else {
			retryForm.Hide()
		}
	}
	showRetry()
	apply := func() {
		oe := task.OnError{Backoff: strings.TrimSpace(backoff.Text), RunTask: strings.TrimSpace(runTask.Text)}
		if policy.Selected != inherit {
			oe.Policy = policy.Selected
		}
		oe.Retries, _ = strconv.Atoi(strings.TrimSpace(retries.Text))
		if oe == (task.OnError{}) {
			set(nil)
		} else {
			set(&oe)
		}
		e.changed()
	}
	policy.OnChanged = func(string) {
		showRetry()
		if policy.Selected == task.PolicyRetry && retries.Text == "" {
			retries.SetText("3") // applies through OnChanged
			return
		}
		apply()
	}
	retries.OnChanged = func(string) { apply() }
	backoff.OnChanged = func(string) { apply() }
	runTask.OnChanged = func(string) { apply() }
	obj := container.NewVBox(
		widget.NewForm(widget.NewFormItem("Policy", policy)),
		retryForm,
		widget.NewForm(widget.NewFormItem("Then run task", runTask)),
		editorHint("stop ends the run as failed; continue logs the error, sets {LastError} and goes on; retry repeats temporary errors with a doubling wait, then stops."),
	)
	return &editorPolicy{policy: policy, retries: retries, backoff: backoff, runTask: runTask, obj: obj}
}

// The trigger types and missed-run choices the triggers editor offers.
var (
	editorTriggerTypes = []string{task.TriggerInterval, task.TriggerCron, task.TriggerOnce, task.TriggerNewMail}
	editorMissed       = []string{"skip", "run_once"}
)

// buildTriggersTab lays out the trigger list.
func (e *TaskEditor) buildTriggersTab() fyne.CanvasObject {
	e.triggersBox = container.NewVBox()
	add := widget.NewButtonWithIcon("Add trigger", theme.ContentAddIcon(), e.onAddTrigger)
	return container.NewVScroll(container.NewVBox(
		editorHeading("Triggers"),
		editorHint("Triggers start the task unattended while mailwright serve (or the app) runs, if the task is enabled."),
		e.triggersBox, container.NewHBox(add),
	))
}

func (e *TaskEditor) onAddTrigger() {
	e.task.Triggers = append(e.task.Triggers, task.Trigger{Type: task.TriggerInterval, Every: "15m"})
	e.rebuildTriggers()
	e.changed()
}

// editorTriggerRow is the widgets of one trigger card.
type editorTriggerRow struct {
	typ, missed *widget.Select
	value       *widget.Entry           // Every, Cron or At, by type
	mail        map[string]*editorField // new_mail: the IMAP fields and the folder
}

// rebuildTriggers shows one card per trigger with the fields of its type.
func (e *TaskEditor) rebuildTriggers() {
	e.triggersBox.RemoveAll()
	e.triggerRows = nil
	if len(e.task.Triggers) == 0 {
		e.triggersBox.Add(editorHint("No triggers: the task runs only when started by hand."))
	}
	for i := range e.task.Triggers {
		row := &editorTriggerRow{}
		e.triggerRows = append(e.triggerRows, row)
		e.triggersBox.Add(e.triggerCard(i, row))
	}
	e.triggersBox.Refresh()
}

// triggerCard edits e.task.Triggers[i].
func (e *TaskEditor) triggerCard(i int, row *editorTriggerRow) fyne.CanvasObject {
	tr := &e.task.Triggers[i]
	typ := widget.NewSelect(editorTriggerTypes, nil)
	if !slices.Contains(typ.Options, tr.Type) {
		typ.Options = append(typ.Options, tr.Type)
	}
	typ.SetSelected(tr.Type)
	typ.OnChanged = func(s string) {
		t := &e.task.Triggers[i]
		*t = task.Trigger{Type: s, Missed: t.Missed}
		e.rebuildTriggers()
		e.changed()
	}
	missed := widget.NewSelect(editorMissed, nil)
	row.typ, row.missed = typ, missed
	if tr.Missed == "" {
		missed.SetSelected("skip")
	} else {
		if !slices.Contains(missed.Options, tr.Missed) {
			missed.Options = append(missed.Options, tr.Missed)
		}
		missed.SetSelected(tr.Missed)
	}
	missed.OnChanged = func(s string) {
		if s == "skip" {
			s = ""
		}
		e.task.Triggers[i].Missed = s
		e.changed()
	}
	text := func(val, placeholder string, store func(string)) *widget.Entry {
		en := widget.NewEntry()
		en.SetText(val)
		en.SetPlaceHolder(placeholder)
		en.OnChanged = func(s string) { store(strings.TrimSpace(s)); e.changed() }
		row.value = en
		return en
	}
	form := widget.NewForm(widget.NewFormItem("Type", typ))
	var extra fyne.CanvasObject
	switch tr.Type {
	case task.TriggerInterval:
		form.Append("Every", text(tr.Every, "e.g. 15m or 1h", func(s string) { e.task.Triggers[i].Every = s }))
	case task.TriggerCron:
		form.Append("Cron", text(tr.Cron, "e.g. 0 8 * * 1-5 (seconds optional)", func(s string) { e.task.Triggers[i].Cron = s }))
	case task.TriggerOnce:
		form.Append("At", text(tr.At, "e.g. 2026-12-01T08:00:00+01:00", func(s string) { e.task.Triggers[i].At = s }))
	case task.TriggerNewMail:
		extra, row.mail = e.newMailFields(i)
	}
	form.Append("Missed runs", missed)
	remove := widget.NewButtonWithIcon("Remove trigger", theme.DeleteIcon(), func() {
		e.task.Triggers = slices.Delete(e.task.Triggers, i, i+1)
		e.rebuildTriggers()
		e.changed()
	})
	body := container.NewVBox(form)
	if extra != nil {
		body.Add(extra)
	}
	body.Add(container.NewHBox(remove))
	return widget.NewCard("", "Trigger "+strconv.Itoa(i+1), body)
}

// newMailFields is the form of a new_mail trigger: IMAP Open's parameters (generated
// from its schema, as for a step) plus the folder to watch.
func (e *TaskEditor) newMailFields(i int) (fyne.CanvasObject, map[string]*editorField) {
	var params []actions.Param
	if a, ok := e.s.Registry.Get("imap.open"); ok {
		for _, p := range a.Schema().Params {
			if p.Kind != actions.KindConnection {
				params = append(params, p)
			}
		}
	} else {
		params = append(params, actions.Param{Name: "host", Label: "Host", Kind: actions.KindText, Required: true})
	}
	params = append(params, actions.Param{Name: "folder", Label: "Folder to watch", Kind: actions.KindText, Default: "INBOX",
		Help: "The IMAP folder watched for new mail (with IDLE when the server offers it, else by polling)."})
	basic, advanced, fields, err := e.paramForm(params, editorFormOpts{
		values: e.task.Triggers[i].Mail,
		set: func(name, value string) {
			t := &e.task.Triggers[i]
			if value == "" {
				delete(t.Mail, name)
			} else {
				if t.Mail == nil {
					t.Mail = map[string]string{}
				}
				t.Mail[name] = value
			}
			e.changed()
		},
	})
	box := container.NewVBox(basic)
	if len(advanced.Items) > 0 {
		box.Add(widget.NewAccordion(widget.NewAccordionItem("Advanced", advanced)))
	}
	if err != nil {
		box.Add(widget.NewLabel(err.Error()))
	}
	return box, fields
}
