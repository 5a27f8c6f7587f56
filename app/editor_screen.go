package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/task"
)

// TaskEditor is the visual editor of one task: its header and variables, its steps as a
// tree with an action palette, a properties form generated from each action's schema,
// its triggers and error policy. It edits a deep copy of the task it was given, validates
// the copy after every change and saves it to the task store on request.
type TaskEditor struct {
	s       *Services
	win     fyne.Window
	onSaved func(*task.Task)

	task     *task.Task // the copy being edited
	orig     *task.Task // as loaded or last saved: the baseline of Dirty and Revert
	origName string     // the name the task is stored under ("" for a new task)

	selected  []int // index path of the selected step; nil when none is
	selecting bool  // set while the editor itself selects a tree node
	loading   bool  // set while widgets are filled from the task: change handlers ignore it
	problems  []task.Problem
	badSteps  map[string]bool // tree node IDs of steps with problems of their own

	tabs    *container.AppTabs
	content fyne.CanvasObject
	status  *widget.Label
	saveBtn *widget.Button
	revBtn  *widget.Button

	// Task tab.
	nameEntry    *widget.Entry
	descEntry    *widget.Entry
	enabledCheck *widget.Check
	varsBox      *fyne.Container
	varRows      [][3]*widget.Entry // name, default, description of each variable
	taskPolicy   *fyne.Container
	taskPolicyEd *editorPolicy

	// Steps tab: palette, tree and its buttons.
	tree           *widget.Tree
	addMode        *widget.RadioGroup
	removeBtn      *widget.Button
	upBtn          *widget.Button
	downBtn        *widget.Button
	indentBtn      *widget.Button
	outdentBtn     *widget.Button
	paletteSearch  *widget.Entry
	paletteBox     *fyne.Container
	paletteButtons map[string]*widget.Button // by action ID

	// Steps tab: the selected step's form and the problem list.
	formBox     *fyne.Container
	formScroll  *container.Scroll
	fields      map[string]*editorField // the generated fields of the selected step, by param name
	labelEntry  *widget.Entry
	stepPolicy  *editorPolicy
	problemsBox *fyne.Container

	// Triggers tab.
	triggersBox *fyne.Container
	triggerRows []*editorTriggerRow

	// The variable picker that is open, if any.
	pickerDialog dialog.Dialog
	pickerList   *widget.List
	pickerShown  []editorVar

	bg   sync.WaitGroup // background work (store reads and writes)
	uiDo func(func())   // runs a background result on the UI goroutine: fyne.Do (tests queue)
}

// NewTaskEditor builds the editor with an empty new task loaded. win is the window its
// dialogs open over; onSaved (may be nil) is called on the UI goroutine with a copy of
// the task after each successful save. It does no I/O.
func NewTaskEditor(s *Services, win fyne.Window, onSaved func(*task.Task)) *TaskEditor {
	e := &TaskEditor{s: s, win: win, onSaved: onSaved, badSteps: map[string]bool{}}
	e.uiDo = s.do
	e.build()
	e.Load(nil)
	return e
}

// Content is the editor's root object, to put in a window or tab.
func (e *TaskEditor) Content() fyne.CanvasObject { return e.content }

// Load makes the editor edit a deep copy of t; nil starts a new, empty task. Unsaved
// changes of the previous task are dropped (ask Dirty first).
func (e *TaskEditor) Load(t *task.Task) {
	if t == nil {
		e.origName = ""
		e.orig = &task.Task{Version: task.Version, Enabled: true}
	} else {
		e.origName = t.Name
		e.orig = editorClone(t)
	}
	e.reset()
}

// Task returns a deep copy of the task as currently edited (valid or not).
func (e *TaskEditor) Task() *task.Task { return editorClone(e.task) }

// Dirty reports whether the edited task differs from the one loaded or last saved.
func (e *TaskEditor) Dirty() bool {
	return !bytes.Equal(editorCanonical(e.task), editorCanonical(e.orig))
}

// reset refills every widget from a fresh copy of e.orig.
func (e *TaskEditor) reset() {
	e.task = editorClone(e.orig)
	e.loading = true
	e.nameEntry.SetText(e.task.Name)
	e.descEntry.SetText(e.task.Description)
	e.enabledCheck.SetChecked(e.task.Enabled)
	e.loading = false
	e.rebuildVariables()
	e.rebuildTaskPolicy()
	e.rebuildTriggers()
	e.selected = nil
	e.selecting = true
	e.tree.UnselectAll()
	e.selecting = false
	e.tree.Refresh()
	e.tree.OpenAllBranches()
	e.showSelection()
	e.changed()
}

// build creates the widgets and the layout.
func (e *TaskEditor) build() {
	e.status = widget.NewLabel("")
	e.saveBtn = widget.NewButtonWithIcon("Save", theme.DocumentSaveIcon(), e.onSave)
	e.saveBtn.Importance = widget.HighImportance
	e.revBtn = widget.NewButtonWithIcon("Revert", theme.ContentUndoIcon(), e.onRevert)
	bar := container.NewBorder(nil, nil, container.NewHBox(e.saveBtn, e.revBtn), nil, e.status)

	e.tabs = container.NewAppTabs(
		container.NewTabItemWithIcon("Steps", theme.ListIcon(), e.buildStepsTab()),
		container.NewTabItemWithIcon("Task", theme.DocumentIcon(), e.buildTaskTab()),
		container.NewTabItemWithIcon("Triggers", theme.HistoryIcon(), e.buildTriggersTab()),
	)
	e.content = container.NewBorder(container.NewVBox(bar, widget.NewSeparator()), nil, nil, nil, e.tabs)
}

// buildTaskTab lays out name, description, enabled, variables and the error policy.
func (e *TaskEditor) buildTaskTab() fyne.CanvasObject {
	e.nameEntry = widget.NewEntry()
	e.nameEntry.SetPlaceHolder("e.g. Save invoices")
	e.nameEntry.OnChanged = func(s string) { e.edit(func() { e.task.Name = s }) }
	e.descEntry = widget.NewMultiLineEntry()
	e.descEntry.SetMinRowsVisible(3)
	e.descEntry.Wrapping = fyne.TextWrapWord
	e.descEntry.OnChanged = func(s string) { e.edit(func() { e.task.Description = s }) }
	e.enabledCheck = widget.NewCheck("Triggers may start this task", func(b bool) { e.edit(func() { e.task.Enabled = b }) })
	header := widget.NewForm(
		widget.NewFormItem("Name", e.nameEntry),
		widget.NewFormItem("Description", e.descEntry),
		widget.NewFormItem("Enabled", e.enabledCheck),
	)
	e.varsBox = container.NewVBox()
	addVar := widget.NewButtonWithIcon("Add variable", theme.ContentAddIcon(), e.onAddVariable)
	e.taskPolicy = container.NewVBox()
	return container.NewVScroll(container.NewVBox(
		editorHeading("Task"), header,
		editorHeading("Variables"),
		editorHint("Values steps use as {Name}; a run may override them (mailwright task run --var NAME=VALUE)."),
		e.varsBox, container.NewHBox(addVar),
		editorHeading("When a step fails"),
		editorHint("The task-wide error policy; a step's own policy wins over it."),
		e.taskPolicy,
	))
}

// rebuildVariables shows one row per task variable.
func (e *TaskEditor) rebuildVariables() {
	e.varsBox.RemoveAll()
	e.varRows = nil
	if len(e.task.Variables) > 0 {
		e.varsBox.Add(container.NewGridWithColumns(3, widget.NewLabel("Name"), widget.NewLabel("Default"), widget.NewLabel("Description")))
	}
	for i := range e.task.Variables {
		v := e.task.Variables[i]
		name, def, desc := widget.NewEntry(), widget.NewEntry(), widget.NewEntry()
		name.SetText(v.Name)
		def.SetText(v.Default)
		desc.SetText(v.Description)
		name.SetPlaceHolder("Name")
		def.SetPlaceHolder("Default value")
		desc.SetPlaceHolder("What it is for")
		name.OnChanged = func(s string) { e.edit(func() { e.task.Variables[i].Name = strings.TrimSpace(s) }) }
		def.OnChanged = func(s string) { e.edit(func() { e.task.Variables[i].Default = s }) }
		desc.OnChanged = func(s string) { e.edit(func() { e.task.Variables[i].Description = s }) }
		e.varRows = append(e.varRows, [3]*widget.Entry{name, def, desc})
		remove := widget.NewButtonWithIcon("", theme.DeleteIcon(), func() { e.onRemoveVariable(i) })
		e.varsBox.Add(container.NewBorder(nil, nil, nil, remove, container.NewGridWithColumns(3, name, def, desc)))
	}
	e.varsBox.Refresh()
}

func (e *TaskEditor) onAddVariable() {
	e.task.Variables = append(e.task.Variables, task.Variable{})
	e.rebuildVariables()
	e.changed()
}

func (e *TaskEditor) onRemoveVariable(i int) {
	if i < 0 || i >= len(e.task.Variables) {
		return
	}
	e.task.Variables = append(e.task.Variables[:i], e.task.Variables[i+1:]...)
	e.rebuildVariables()
	e.changed()
}

// rebuildTaskPolicy shows the task-wide error policy editor.
func (e *TaskEditor) rebuildTaskPolicy() {
	e.taskPolicyEd = e.policyEditor(
		func() *task.OnError { return e.task.OnError },
		func(oe *task.OnError) { e.task.OnError = oe },
		"(default: stop)")
	e.taskPolicy.Objects = []fyne.CanvasObject{e.taskPolicyEd.obj}
	e.taskPolicy.Refresh()
}

// edit applies a change made in a widget, unless the widgets are being filled.
func (e *TaskEditor) edit(fn func()) {
	if e.loading {
		return
	}
	fn()
	e.changed()
}

// changed validates the task and refreshes everything that shows the result.
func (e *TaskEditor) changed() {
	e.problems = nil
	e.badSteps = map[string]bool{}
	var ve *task.ValidationError
	if err := task.Validate(e.task, e.s.Registry); errors.As(err, &ve) {
		e.problems = ve.Problems
	} else if err != nil {
		e.problems = []task.Problem{{Path: "task", Message: err.Error()}}
	}
	for _, p := range e.problems {
		if path, ok := editorProblemStep(p.Path); ok {
			e.badSteps[editorUID(path)] = true
		}
	}
	e.tree.Refresh()
	e.refreshProblems()
	e.refreshStatus()
}

func (e *TaskEditor) refreshStatus() {
	var parts []string
	if e.Dirty() {
		parts = append(parts, "Unsaved changes")
	} else {
		parts = append(parts, "No unsaved changes")
	}
	switch n := len(e.problems); n {
	case 0:
		parts = append(parts, "valid")
	case 1:
		parts = append(parts, "1 problem")
	default:
		parts = append(parts, fmt.Sprintf("%d problems", n))
	}
	name := e.task.Name
	if strings.TrimSpace(name) == "" {
		name = "New task"
	}
	e.status.SetText(name + " — " + strings.Join(parts, ", "))
}

// refreshProblems lists every problem under the form; a step's problems come with a
// button that selects the step.
func (e *TaskEditor) refreshProblems() {
	e.problemsBox.RemoveAll()
	if len(e.problems) == 0 {
		e.problemsBox.Add(widget.NewLabelWithStyle("No problems: the task can be saved.", fyne.TextAlignLeading, fyne.TextStyle{Italic: true}))
		e.problemsBox.Refresh()
		return
	}
	e.problemsBox.Add(editorHeading(fmt.Sprintf("Problems (%d)", len(e.problems))))
	for _, p := range e.problems {
		l := widget.NewLabel(p.Path + ": " + p.Message)
		l.Wrapping = fyne.TextWrapWord
		l.Importance = widget.WarningImportance
		var goTo fyne.CanvasObject
		if path, ok := editorProblemStep(p.Path); ok {
			goTo = widget.NewButtonWithIcon("", theme.NavigateNextIcon(), func() { e.tabs.SelectIndex(0); e.selectPath(path) })
		} else if strings.HasPrefix(p.Path, "triggers") {
			goTo = widget.NewButtonWithIcon("", theme.NavigateNextIcon(), func() { e.tabs.SelectIndex(2) })
		} else {
			goTo = widget.NewButtonWithIcon("", theme.NavigateNextIcon(), func() { e.tabs.SelectIndex(1) })
		}
		e.problemsBox.Add(container.NewBorder(nil, nil, nil, goTo, l))
	}
	e.problemsBox.Refresh()
}

// onSave validates and, when the task is valid, stores it in the background.
func (e *TaskEditor) onSave() {
	if err := task.Validate(e.task, e.s.Registry); err != nil {
		dialog.ShowError(fmt.Errorf("the task was not saved: fix these problems first.\n\n%w", err), e.win)
		return
	}
	t := editorClone(e.task)
	t.Version = task.Version
	oldName := e.origName
	e.saveBtn.Disable()
	e.status.SetText("Saving " + t.Name + "…")
	e.background(func() {
		err := editorStore(e.s.Tasks, t, oldName)
		e.uiDo(func() {
			e.saveBtn.Enable()
			if err != nil {
				e.refreshStatus()
				dialog.ShowError(err, e.win)
				return
			}
			e.orig = editorClone(t)
			e.origName = t.Name
			e.refreshStatus()
			if e.onSaved != nil {
				e.onSaved(editorClone(t))
			}
		})
	})
}

// editorStore saves t; a task renamed (or new) must not overwrite another task, and a
// renamed task's old file is removed once the new one is written.
func editorStore(st *task.Store, t *task.Task, oldName string) error {
	renamed := task.FileName(t.Name) != task.FileName(oldName)
	if renamed {
		if _, err := st.Get(t.Name); err == nil {
			return fmt.Errorf("save task: a task named %q already exists: choose another name", t.Name)
		} else if !errors.Is(err, task.ErrNoTask) {
			return fmt.Errorf("save task: check for a task named %q: %w", t.Name, err)
		}
	}
	if err := st.Put(t); err != nil {
		return err
	}
	if renamed && strings.TrimSpace(oldName) != "" {
		if err := st.Delete(oldName); err != nil && !errors.Is(err, task.ErrNoTask) {
			return fmt.Errorf("saved as %q, but the old task file could not be removed: %w", t.Name, err)
		}
	}
	return nil
}

// onRevert drops the unsaved changes after asking.
func (e *TaskEditor) onRevert() {
	if !e.Dirty() {
		return
	}
	dialog.ShowConfirm("Revert changes?", "Drop every change made since the task was opened or last saved?",
		func(ok bool) {
			if ok {
				e.reset()
			}
		}, e.win)
}

// background runs fn in a goroutine that tests can wait for.
func (e *TaskEditor) background(fn func()) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		fn()
	}()
}

// editorClone deep-copies a task through its JSON form, which holds all of it.
func editorClone(t *task.Task) *task.Task {
	if t == nil {
		return nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		c := *t // unreachable: a Task always encodes
		return &c
	}
	var c task.Task
	if err := json.Unmarshal(b, &c); err != nil {
		c = *t
	}
	return &c
}

// editorCanonical is t's JSON with the differences that do not matter removed.
func editorCanonical(t *task.Task) []byte {
	if t == nil {
		return nil
	}
	c := *t
	c.Version = task.Version
	if len(c.Steps) == 0 {
		c.Steps = nil
	}
	b, _ := json.Marshal(&c)
	return b
}

// editorHeading is a bold section title.
func editorHeading(s string) *widget.Label {
	return widget.NewLabelWithStyle(s, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
}

// editorHint is a small wrapped explanation.
func editorHint(s string) *widget.Label {
	l := widget.NewLabel(s)
	l.Wrapping = fyne.TextWrapWord
	l.SizeName = theme.SizeNameCaptionText
	l.Importance = widget.LowImportance
	return l
}
