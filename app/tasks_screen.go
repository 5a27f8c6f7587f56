package app

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/task"
)

// TasksScreen lists the tasks of the data folder with whether each is on, its triggers,
// its last run and its next run, and offers New, Edit, Duplicate, Delete, Import, Export
// and Run now.
type TasksScreen struct {
	s    *Services
	win  fyne.Window
	edit func(t *task.Task)

	// OnRunNow, if set, opens the Run view for t (e.g. select its tab and call Start). nil
	// opens a separate window with a Run view of its own.
	OnRunNow func(t *task.Task)

	List      *widget.List
	Status    *widget.Label
	NewBtn    *widget.Button
	EditBtn   *widget.Button
	DupBtn    *widget.Button
	DeleteBtn *widget.Button
	ImportBtn *widget.Button
	ExportBtn *widget.Button
	RunBtn    *widget.Button

	content fyne.CanvasObject

	// UI-goroutine state.
	rows     []tasksRow
	selected int // -1: none
}

// NewTasksScreen builds the screen and starts loading the tasks. edit opens the task
// editor with a task (New passes a new, disabled, empty task); nil hides New and Edit.
func NewTasksScreen(s *Services, win fyne.Window, edit func(t *task.Task)) *TasksScreen {
	ts := &TasksScreen{s: s, win: win, edit: edit, selected: -1}
	ts.Status = widget.NewLabel("Loading tasks…")
	ts.Status.Wrapping = fyne.TextWrapWord
	ts.List = widget.NewList(func() int { return len(ts.rows) }, ts.createRow, ts.updateRow)
	ts.List.OnSelected = ts.onSelected
	ts.List.OnUnselected = func(widget.ListItemID) { ts.selected = -1; ts.updateButtons() }

	ts.NewBtn = widget.NewButtonWithIcon("New", theme.ContentAddIcon(), ts.onNew)
	ts.EditBtn = widget.NewButtonWithIcon("Edit", theme.DocumentCreateIcon(), ts.onEdit)
	ts.DupBtn = widget.NewButtonWithIcon("Duplicate", theme.ContentCopyIcon(), ts.onDuplicate)
	ts.DeleteBtn = widget.NewButtonWithIcon("Delete", theme.DeleteIcon(), ts.onDelete)
	ts.ImportBtn = widget.NewButtonWithIcon("Import…", theme.FolderOpenIcon(), ts.onImport)
	ts.ExportBtn = widget.NewButtonWithIcon("Export…", theme.DocumentSaveIcon(), ts.onExport)
	ts.RunBtn = widget.NewButtonWithIcon("Run now", theme.MediaPlayIcon(), ts.onRunNow)
	ts.RunBtn.Importance = widget.HighImportance
	if edit == nil {
		ts.NewBtn.Hide()
		ts.EditBtn.Hide()
	}
	ts.updateButtons()

	bold := fyne.TextStyle{Bold: true}
	header := container.New(&tasksColumns{},
		widget.NewLabelWithStyle("On", fyne.TextAlignLeading, bold),
		container.NewGridWithColumns(4,
			widget.NewLabelWithStyle("Task", fyne.TextAlignLeading, bold),
			widget.NewLabelWithStyle("Triggers", fyne.TextAlignLeading, bold),
			widget.NewLabelWithStyle("Last run", fyne.TextAlignLeading, bold),
			widget.NewLabelWithStyle("Next run", fyne.TextAlignLeading, bold)))
	buttons := container.NewHBox(ts.NewBtn, ts.EditBtn, ts.DupBtn, ts.DeleteBtn, widget.NewSeparator(),
		ts.ImportBtn, ts.ExportBtn, widget.NewSeparator(), ts.RunBtn)
	heading := widget.NewLabelWithStyle("Tasks", fyne.TextAlignLeading, bold)
	top := container.NewVBox(heading, buttons, ts.Status, header)
	ts.content = container.NewBorder(top, nil, nil, nil, ts.List)
	ts.Refresh()
	return ts
}

// Content is the screen's root object.
func (ts *TasksScreen) Content() fyne.CanvasObject { return ts.content }

func (ts *TasksScreen) onSelected(id widget.ListItemID) {
	ts.selected = id
	ts.updateButtons()
}

// current returns the selected task, or nil.
func (ts *TasksScreen) current() *task.Task {
	if ts.selected < 0 || ts.selected >= len(ts.rows) {
		return nil
	}
	return ts.rows[ts.selected].t
}

func (ts *TasksScreen) updateButtons() {
	for _, b := range []*widget.Button{ts.EditBtn, ts.DupBtn, ts.DeleteBtn, ts.ExportBtn, ts.RunBtn} {
		if ts.current() == nil {
			b.Disable()
		} else {
			b.Enable()
		}
	}
}

func (ts *TasksScreen) onNew() {
	if ts.edit != nil {
		ts.edit(&task.Task{Version: task.Version, Name: "New task", Enabled: false})
	}
}

func (ts *TasksScreen) onEdit() {
	t := ts.current()
	if t == nil || ts.edit == nil {
		return
	}
	c, err := runCloneTask(t)
	if err != nil {
		dialog.ShowError(err, ts.win)
		return
	}
	ts.edit(c)
}

// onDuplicate saves a copy of the selected task under a free name ("X copy", "X copy 2"),
// turned off so that it does not run on the original's triggers.
func (ts *TasksScreen) onDuplicate() {
	t := ts.current()
	if t == nil {
		return
	}
	c, err := runCloneTask(t)
	if err != nil {
		dialog.ShowError(err, ts.win)
		return
	}
	taken := map[string]bool{}
	for _, r := range ts.rows {
		taken[task.FileName(r.t.Name)] = true
	}
	c.Name = t.Name + " copy"
	for n := 2; taken[task.FileName(c.Name)]; n++ {
		c.Name = fmt.Sprintf("%s copy %d", t.Name, n)
	}
	c.Enabled = false
	go func() {
		if err := ts.s.Tasks.Put(c); err != nil {
			ts.s.do(func() { dialog.ShowError(fmt.Errorf("duplicate task %q: %w", t.Name, err), ts.win) })
		}
		ts.Refresh()
	}()
}

func (ts *TasksScreen) onDelete() {
	t := ts.current()
	if t == nil {
		return
	}
	name := t.Name
	dialog.ShowConfirm("Delete task",
		fmt.Sprintf("Delete %q? Its task file is removed; its run history stays until pruned.", name),
		func(ok bool) {
			if !ok {
				return
			}
			go func() {
				if err := ts.s.Tasks.Delete(name); err != nil {
					ts.s.do(func() { dialog.ShowError(err, ts.win) })
				}
				ts.Refresh()
			}()
		}, ts.win)
}

// onRunNow opens the Run view for the selected task.
func (ts *TasksScreen) onRunNow() {
	t := ts.current()
	if t == nil {
		return
	}
	c, err := runCloneTask(t)
	if err != nil {
		dialog.ShowError(err, ts.win)
		return
	}
	if ts.OnRunNow != nil {
		ts.OnRunNow(c)
		return
	}
	w := fyne.CurrentApp().NewWindow("Run: " + c.Name)
	rv := NewRunView(ts.s, w)
	rv.OnFinished = func(*task.Result) { ts.Refresh() }
	w.SetContent(rv.Content())
	w.Resize(fyne.NewSize(760, 520))
	w.Show()
	rv.Start(c)
}
