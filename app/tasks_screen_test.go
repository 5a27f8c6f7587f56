package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/task"
)

// tasksSteps are valid steps for tasks that are listed but never run.
func tasksSteps() []task.Step {
	return []task.Step{
		{Action: "imap.open", Params: map[string]string{"host": "imap.example.com", "auth": "password", "user": "anna@example.com", "password": "x"}},
		{Action: "imap.close"},
	}
}

// tasksRowOf returns the row shown for a task name.
func tasksRowOf(ts *TasksScreen, name string) (tasksRow, bool) {
	for _, r := range ts.rows {
		if r.t.Name == name {
			return r, true
		}
	}
	return tasksRow{}, false
}

// tasksIndex returns the list index of a task name, or -1.
func tasksIndex(ts *TasksScreen, name string) int {
	for i, r := range ts.rows {
		if r.t.Name == name {
			return i
		}
	}
	return -1
}

// tasksSwitchOf finds the rendered enabled switch of the row showing name.
func tasksSwitchOf(ts *TasksScreen, name string) *widget.Check {
	var found *widget.Check
	runWalk(ts.List, func(o fyne.CanvasObject) bool {
		c, ok := o.(*fyne.Container)
		if !ok || len(c.Objects) != 2 {
			return false
		}
		check, ok1 := c.Objects[0].(*widget.Check)
		grid, ok2 := c.Objects[1].(*fyne.Container)
		if !ok1 || !ok2 || len(grid.Objects) != 4 {
			return false
		}
		if l, ok := grid.Objects[0].(*widget.Label); ok && l.Text == name {
			found = check
			return true
		}
		return false
	})
	return found
}

// TestTasksScreen: the list shows the stored tasks with their trigger summaries, last
// and next runs; the switch saves Enabled; New, Edit, Duplicate, Delete, Import (with a
// name conflict), Export and Run now do what they say.
func TestTasksScreen(t *testing.T) {
	test.NewTempApp(t)
	s := runTestServices(t)
	put := func(tk *task.Task) {
		t.Helper()
		tk.Version = task.Version
		if tk.Steps == nil {
			tk.Steps = tasksSteps()
		}
		if err := s.Tasks.Put(tk); err != nil {
			t.Fatal(err)
		}
	}
	put(&task.Task{Name: "Morning report", Enabled: true, Triggers: []task.Trigger{{Type: task.TriggerCron, Cron: "0 7 * * 1-5"}}})
	put(&task.Task{Name: "Poll", Triggers: []task.Trigger{{Type: task.TriggerInterval, Every: "5m"}}})
	put(&task.Task{Name: "Invoices", Enabled: true, Triggers: []task.Trigger{{Type: task.TriggerNewMail,
		Mail: map[string]string{"host": "imap.example.com", "folder": "INBOX"}}}})
	put(&task.Task{Name: "Manual", Enabled: true})
	// Manual ran once.
	start := time.Date(2026, 3, 2, 7, 0, 0, 0, time.Local)
	if err := s.History.BeginRun(context.Background(), "r1", "Manual", "manual", start); err != nil {
		t.Fatal(err)
	}
	if err := s.History.EndRun(&task.Result{RunID: "r1", Task: "Manual", Start: start, End: start.Add(time.Second), Outcome: task.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}

	w := test.NewWindow(nil)
	defer w.Close()
	var ts *TasksScreen
	var edited []*task.Task
	var runNow []*task.Task
	runUI(func() {
		ts = NewTasksScreen(s, w, func(tk *task.Task) { edited = append(edited, tk) })
		ts.OnRunNow = func(tk *task.Task) { runNow = append(runNow, tk) }
		w.SetContent(ts.Content())
		w.Resize(fyne.NewSize(1000, 520))
	})
	runEventually(t, 10*time.Second, "four tasks", func() bool { return len(ts.rows) == 4 })
	runUI(func() {
		want := map[string][3]string{
			"Morning report": {"cron 0 7 * * 1-5", "never", ""},
			"Poll":           {"every 5m", "never", "off"},
			"Invoices":       {"on new mail in INBOX", "never", "on new mail"},
			"Manual":         {"by hand", "success · 2026-03-02 07:00", "—"},
		}
		for name, wv := range want {
			r, ok := tasksRowOf(ts, name)
			if !ok {
				t.Fatalf("no row for %q", name)
			}
			if r.trigger != wv[0] || r.last != wv[1] || (wv[2] != "" && r.next != wv[2]) {
				t.Errorf("%s: trigger %q, last %q, next %q; want %q", name, r.trigger, r.last, r.next, wv)
			}
		}
		r, _ := tasksRowOf(ts, "Morning report")
		if _, err := time.ParseInLocation("2006-01-02 15:04", r.next, time.Local); err != nil || !strings.HasSuffix(r.next, "07:00") {
			t.Errorf("Morning report next run %q", r.next)
		}
		if ts.EditBtn.Disabled() == false || ts.RunBtn.Disabled() == false {
			t.Error("buttons enabled with nothing selected")
		}
	})

	// Turn Poll on with its switch: saved, and it gets a next run.
	runUI(func() {
		sw := tasksSwitchOf(ts, "Poll")
		if sw == nil || sw.Checked {
			t.Fatalf("Poll's switch: %v", sw)
		}
		test.Tap(sw)
	})
	runEventually(t, 10*time.Second, "Poll turned on", func() bool {
		r, _ := tasksRowOf(ts, "Poll")
		return r.next != "off"
	})
	if tk, err := s.Tasks.Get("Poll"); err != nil || !tk.Enabled {
		t.Fatalf("Poll not saved as enabled: %v %v", tk, err)
	}
	// And off again.
	runUI(func() { test.Tap(tasksSwitchOf(ts, "Poll")) })
	runEventually(t, 10*time.Second, "Poll turned off", func() bool {
		r, _ := tasksRowOf(ts, "Poll")
		return r.next == "off"
	})
	if tk, _ := s.Tasks.Get("Poll"); tk.Enabled {
		t.Fatal("Poll still enabled on disk")
	}

	// New, Edit, Run now.
	runUI(func() {
		test.Tap(ts.NewBtn)
		ts.List.Select(tasksIndex(ts, "Manual"))
		test.Tap(ts.EditBtn)
		test.Tap(ts.RunBtn)
	})
	if len(edited) != 2 || edited[0].Name != "New task" || edited[0].Enabled || edited[0].Version != 1 || edited[1].Name != "Manual" {
		t.Fatalf("edit called with %+v", edited)
	}
	if len(runNow) != 1 || runNow[0].Name != "Manual" {
		t.Fatalf("run now called with %+v", runNow)
	}

	// Duplicate Manual: a disabled copy.
	runUI(func() { test.Tap(ts.DupBtn) })
	runEventually(t, 10*time.Second, "the copy", func() bool { _, ok := tasksRowOf(ts, "Manual copy"); return ok })
	if tk, err := s.Tasks.Get("Manual copy"); err != nil || tk.Enabled || len(tk.Steps) != 2 {
		t.Fatalf("copy: %+v %v", tk, err)
	}

	// Delete the copy after confirming.
	runUI(func() {
		ts.List.Select(tasksIndex(ts, "Manual copy"))
		test.Tap(ts.DeleteBtn)
		runTapOverlayButton(t, w, "Yes")
	})
	runEventually(t, 10*time.Second, "the copy deleted", func() bool { _, ok := tasksRowOf(ts, "Manual copy"); return !ok && len(ts.rows) == 4 })

	// Export Poll and import it back over itself (the conflict asks first).
	file := filepath.Join(t.TempDir(), "poll.json")
	wc, err := storage.Writer(storage.NewFileURI(file))
	if err != nil {
		t.Fatal(err)
	}
	poll, _ := s.Tasks.Get("Poll")
	if err := tasksWriteTask(wc, poll); err != nil {
		t.Fatal(err)
	}
	back, err := task.LoadFile(file)
	if err != nil || back.Name != "Poll" || back.Triggers[0].Every != "5m" {
		t.Fatalf("exported %+v %v", back, err)
	}
	back.Description = "imported"
	data, _ := back.Marshal()
	os.WriteFile(file, data, 0o600)
	rc, err := storage.Reader(storage.NewFileURI(file))
	if err != nil {
		t.Fatal(err)
	}
	go ts.importFrom(rc)
	runEventually(t, 10*time.Second, "the replace question", func() bool {
		return strings.Contains(runOverlayText(w), "exists already")
	})
	runUI(func() { runTapOverlayButton(t, w, "Yes") })
	runEventually(t, 10*time.Second, "the import", func() bool { r, _ := tasksRowOf(ts, "Poll"); return r.t.Description == "imported" })

	// A file with problems is refused with the problems.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"version":1,"name":"Bad","steps":[{"action":"imap.opne"}]}`), 0o600)
	rc, _ = storage.Reader(storage.NewFileURI(bad))
	go ts.importFrom(rc)
	runEventually(t, 10*time.Second, "the import error", func() bool {
		return strings.Contains(runOverlayText(w), "imap.opne")
	})
	if _, err := s.Tasks.Get("Bad"); err == nil {
		t.Fatal("an invalid task was imported")
	}
	runUI(func() { runTapOverlayButton(t, w, "OK") })
}

// The screenshot has fixed content: no next run depends on the clock.
func TestTasksScreenScreenshot(t *testing.T) {
	test.NewTempApp(t)
	s := runTestServices(t)
	for _, tk := range []*task.Task{
		{Name: "Save invoices", Enabled: true, Triggers: []task.Trigger{{Type: task.TriggerNewMail, Mail: map[string]string{"host": "imap.example.com", "folder": "Invoices"}}}},
		{Name: "Morning report", Triggers: []task.Trigger{{Type: task.TriggerCron, Cron: "0 7 * * 1-5"}}},
		{Name: "Archive old mail", Triggers: []task.Trigger{{Type: task.TriggerInterval, Every: "24h"}}},
		{Name: "Forward to accounting", Enabled: true},
	} {
		tk.Version, tk.Steps = task.Version, tasksSteps()
		if err := s.Tasks.Put(tk); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Date(2026, 3, 2, 7, 0, 0, 0, time.Local)
	for i, r := range []struct{ name, outcome string }{{"Save invoices", task.OutcomeSuccess}, {"Morning report", task.OutcomeFailed}} {
		id := "r" + r.name
		st := start.Add(time.Duration(i) * time.Hour)
		if err := s.History.BeginRun(context.Background(), id, r.name, "cron", st); err != nil {
			t.Fatal(err)
		}
		s.History.EndRun(&task.Result{RunID: id, Task: r.name, Start: st, End: st.Add(time.Second), Outcome: r.outcome})
	}
	w := test.NewWindow(nil)
	defer w.Close()
	var ts *TasksScreen
	runUI(func() {
		ts = NewTasksScreen(s, w, func(*task.Task) {})
		w.SetContent(ts.Content())
		w.Resize(fyne.NewSize(1000, 420))
	})
	runEventually(t, 10*time.Second, "the tasks", func() bool { return len(ts.rows) == 4 })
	runUI(func() {
		ts.List.Select(tasksIndex(ts, "Save invoices"))
		runScreenshot(t, w, "tasks")
	})
}
