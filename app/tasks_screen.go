package app

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
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

// tasksRow is one line of the list.
type tasksRow struct {
	t       *task.Task
	trigger string // "every 5m", "by hand", …
	last    string // "success · 2025-06-01 07:00"
	next    string
}

// tasksLeftWidth is the width of the list's first column (the enabled switch).
const tasksLeftWidth = 90

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

// Refresh reloads the tasks, their last runs and next runs in the background.
func (ts *TasksScreen) Refresh() {
	go func() {
		rows, problems := ts.load()
		ts.s.do(func() { ts.show(rows, problems) })
	}()
}

// load reads the tasks and the history (background goroutine).
func (ts *TasksScreen) load() ([]tasksRow, []string) {
	tasks, errs := ts.s.Tasks.List()
	var problems []string
	for _, e := range errs {
		problems = append(problems, "Skipped a task file: "+e.Error())
	}
	h := ts.s.History
	next := task.NextRuns(tasks, time.Now(), func(t *task.Task, idx int, tr task.Trigger) time.Time {
		v, ok, _ := h.Checkpoints(t.Name).Load(fmt.Sprintf("trigger:%d:%s", idx, tr.Type))
		if !ok {
			return time.Time{}
		}
		at, _ := time.Parse(time.RFC3339Nano, v)
		return at
	})
	rows := make([]tasksRow, 0, len(tasks))
	for _, t := range tasks {
		r := tasksRow{t: t, trigger: tasksTriggerSummary(t), last: "never"}
		runs, err := h.Runs(t.Name, 1)
		switch {
		case err != nil:
			r.last = "unknown"
			problems = append(problems, fmt.Sprintf("Last run of %q: %v", t.Name, err))
		case len(runs) > 0:
			r.last = runs[0].Outcome + " · " + runs[0].Start.Format("2006-01-02 15:04")
		}
		switch n, ok := next[t.Name]; {
		case !t.Enabled:
			r.next = "off"
		case ok:
			r.next = n.Format("2006-01-02 15:04")
		case tasksHasMailTrigger(t):
			r.next = "on new mail"
		default:
			r.next = "—"
		}
		rows = append(rows, r)
	}
	return rows, problems
}

// show puts freshly loaded rows on screen, keeping the selection by name (UI goroutine).
func (ts *TasksScreen) show(rows []tasksRow, problems []string) {
	sel := ""
	if ts.selected >= 0 && ts.selected < len(ts.rows) {
		sel = ts.rows[ts.selected].t.Name
	}
	ts.rows = rows
	ts.selected = -1
	ts.List.UnselectAll()
	ts.List.Refresh()
	for i, r := range rows {
		if sel != "" && strings.EqualFold(r.t.Name, sel) {
			ts.List.Select(i)
			break
		}
	}
	switch {
	case len(problems) > 0:
		ts.Status.SetText(strings.Join(problems, "\n"))
	case len(rows) == 0:
		ts.Status.SetText("No tasks yet. New builds one; Import… adds a task file.")
	default:
		ts.Status.SetText(fmt.Sprintf("%s. Tick On to let the scheduler run a task on its triggers.", runPlural(len(rows), "task")))
	}
	ts.updateButtons()
}

func (ts *TasksScreen) createRow() fyne.CanvasObject {
	on := widget.NewCheck("", nil)
	cols := make([]fyne.CanvasObject, 4)
	for i := range cols {
		l := widget.NewLabel("")
		l.Truncation = fyne.TextTruncateEllipsis
		cols[i] = l
	}
	cols[0].(*widget.Label).TextStyle = fyne.TextStyle{Bold: true}
	return container.New(&tasksColumns{}, on, container.NewGridWithColumns(4, cols...))
}

func (ts *TasksScreen) updateRow(id widget.ListItemID, o fyne.CanvasObject) {
	if id >= len(ts.rows) {
		return
	}
	r := ts.rows[id]
	row := o.(*fyne.Container)
	on := row.Objects[0].(*widget.Check)
	on.OnChanged = nil
	on.SetChecked(r.t.Enabled)
	name := r.t.Name
	on.OnChanged = func(v bool) { ts.setEnabled(name, v) }
	cols := row.Objects[1].(*fyne.Container).Objects
	for i, text := range []string{r.t.Name, r.trigger, r.last, r.next} {
		cols[i].(*widget.Label).SetText(text)
	}
}

// setEnabled turns a task on or off and saves it (the enabled switch of a row).
func (ts *TasksScreen) setEnabled(name string, on bool) {
	var t *task.Task
	for _, r := range ts.rows {
		if r.t.Name == name {
			t = r.t
		}
	}
	if t == nil || t.Enabled == on {
		return
	}
	c, err := runCloneTask(t)
	if err != nil {
		dialog.ShowError(err, ts.win)
		return
	}
	c.Enabled = on
	t.Enabled = on
	go func() {
		if err := ts.s.Tasks.Put(c); err != nil {
			ts.s.do(func() {
				dialog.ShowError(fmt.Errorf("turn task %q %s: %w", name, map[bool]string{true: "on", false: "off"}[on], err), ts.win)
			})
		}
		ts.Refresh()
	}()
}

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

func (ts *TasksScreen) onImport() {
	d := dialog.NewFileOpen(func(rc fyne.URIReadCloser, err error) {
		if err != nil {
			dialog.ShowError(fmt.Errorf("import task: %w", err), ts.win)
			return
		}
		if rc == nil {
			return // cancelled
		}
		go ts.importFrom(rc)
	}, ts.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".json"}))
	d.Show()
}

// importFrom reads, validates and adds a task file (background goroutine). A task of the
// same name is replaced only after the user agrees.
func (ts *TasksScreen) importFrom(rc fyne.URIReadCloser) {
	u := rc.URI()
	var t *task.Task
	var err error
	if u.Scheme() == "file" {
		rc.Close()
		t, err = task.LoadFile(u.Path())
	} else {
		t, err = task.Parse(rc)
		rc.Close()
		if err != nil {
			err = fmt.Errorf("%s: %w", u.Name(), err)
		}
	}
	if err == nil {
		if verr := task.Validate(t, ts.s.Registry); verr != nil {
			err = fmt.Errorf("%s: %w", u.Name(), verr)
		}
	}
	if err != nil {
		ts.s.do(func() { dialog.ShowError(fmt.Errorf("import task: %w", err), ts.win) })
		return
	}
	_, gerr := ts.s.Tasks.Get(t.Name)
	exists := gerr == nil
	if gerr != nil && !errors.Is(gerr, task.ErrNoTask) {
		exists = true // unreadable file of that name: still ask before overwriting it
	}
	if !exists {
		ts.importSave(t)
		return
	}
	ts.s.do(func() {
		dialog.ShowConfirm("Replace task?",
			fmt.Sprintf("A task named %q exists already. Replace it with the one from %s?", t.Name, u.Name()),
			func(ok bool) {
				if ok {
					go ts.importSave(t)
				}
			}, ts.win)
	})
}

func (ts *TasksScreen) importSave(t *task.Task) {
	if err := ts.s.Tasks.Put(t); err != nil {
		ts.s.do(func() { dialog.ShowError(fmt.Errorf("import task: %w", err), ts.win) })
	}
	ts.Refresh()
}

func (ts *TasksScreen) onExport() {
	t := ts.current()
	if t == nil {
		return
	}
	d := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil {
			dialog.ShowError(fmt.Errorf("export task %q: %w", t.Name, err), ts.win)
			return
		}
		if wc == nil {
			return
		}
		go func() {
			if err := tasksWriteTask(wc, t); err != nil {
				ts.s.do(func() { dialog.ShowError(err, ts.win) })
			}
		}()
	}, ts.win)
	d.SetFileName(task.FileName(t.Name))
	d.Show()
}

// tasksWriteTask writes t as a task file to w and closes it. Parameter sets are referred
// to by name, not copied.
func tasksWriteTask(w io.WriteCloser, t *task.Task) error {
	data, err := t.Marshal()
	if err == nil {
		_, err = w.Write(data)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export task %q: %w", t.Name, err)
	}
	return nil
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

// tasksTriggerSummary describes a task's triggers in a few words.
func tasksTriggerSummary(t *task.Task) string {
	if len(t.Triggers) == 0 {
		return "by hand"
	}
	parts := make([]string, 0, len(t.Triggers))
	for _, tr := range t.Triggers {
		switch tr.Type {
		case task.TriggerInterval:
			parts = append(parts, "every "+tr.Every)
		case task.TriggerCron:
			parts = append(parts, "cron "+tr.Cron)
		case task.TriggerOnce:
			at := tr.At
			if p, err := time.Parse(time.RFC3339, tr.At); err == nil {
				at = p.Local().Format("2006-01-02 15:04")
			}
			parts = append(parts, "once at "+at)
		case task.TriggerNewMail:
			folder := tr.Mail["folder"]
			if folder == "" {
				folder = "INBOX"
			}
			parts = append(parts, "on new mail in "+folder)
		default:
			parts = append(parts, tr.Type)
		}
	}
	return strings.Join(parts, ", ")
}

func tasksHasMailTrigger(t *task.Task) bool {
	for _, tr := range t.Triggers {
		if tr.Type == task.TriggerNewMail {
			return true
		}
	}
	return false
}

// tasksColumns lays out a list row: a fixed-width first column (the switch) and the rest.
type tasksColumns struct{}

// MinSize implements fyne.Layout.
func (*tasksColumns) MinSize(objs []fyne.CanvasObject) fyne.Size {
	a, b := objs[0].MinSize(), objs[1].MinSize()
	return fyne.NewSize(tasksLeftWidth+b.Width, max(a.Height, b.Height))
}

// Layout implements fyne.Layout.
func (*tasksColumns) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	objs[0].Move(fyne.NewPos(0, 0))
	objs[0].Resize(fyne.NewSize(tasksLeftWidth, size.Height))
	objs[1].Move(fyne.NewPos(tasksLeftWidth, 0))
	objs[1].Resize(fyne.NewSize(size.Width-tasksLeftWidth, size.Height))
}
