package app

import (
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/task"
)

// tasksRow is one line of the list.
type tasksRow struct {
	t       *task.Task
	trigger string // "every 5m", "by hand", …
	last    string // "success · 2025-06-01 07:00"
	next    string
}

// tasksLeftWidth is the width of the list's first column (the enabled switch).
const tasksLeftWidth = 90

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
	next := task.NextRuns(tasks, time.Now(), h.LastFired)
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
