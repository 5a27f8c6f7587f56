package app

import (
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/mailwright/mailwright/task"
)

// editorTestSetup opens real services in a temporary data folder and an editor in a
// headless window.
func editorTestSetup(t *testing.T) (*Services, *TaskEditor, fyne.Window, *[]*task.Task) {
	t.Helper()
	test.NewTempApp(t)
	s, err := OpenServices(t.TempDir(), "editor-test-passphrase")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var saved []*task.Task
	w := test.NewWindow(nil)
	t.Cleanup(w.Close)
	e := NewTaskEditor(s, w, func(t *task.Task) { saved = append(saved, t) })
	e.uiDo = editorQueue(e)
	w.SetContent(e.Content())
	w.Resize(fyne.NewSize(1280, 820))
	return s, e, w, &saved
}

// editorQueues holds, per editor, the results background work handed to the UI
// goroutine. The test driver's fyne.Do runs them at once on the background goroutine,
// racing with the test's own widget calls; queuing them and running them in editorIdle,
// on the test goroutine, is what the real driver does on its UI goroutine.
var editorQueues sync.Map // *TaskEditor → *editorPending

type editorPending struct {
	mu  sync.Mutex
	fns []func()
}

func editorQueue(e *TaskEditor) func(func()) {
	q := &editorPending{}
	editorQueues.Store(e, q)
	return func(fn func()) {
		q.mu.Lock()
		q.fns = append(q.fns, fn)
		q.mu.Unlock()
	}
}

// editorIdle waits (up to 10 s) until the editor's background work is done, then runs
// its UI updates on the test goroutine.
func editorIdle(t *testing.T, e *TaskEditor) {
	t.Helper()
	v, _ := editorQueues.Load(e)
	q := v.(*editorPending)
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := make(chan struct{})
		go func() { e.bg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Until(deadline)):
			t.Fatal("editor background work did not finish within 10s")
		}
		q.mu.Lock()
		fns := q.fns
		q.fns = nil
		q.mu.Unlock()
		if len(fns) == 0 {
			return
		}
		for _, fn := range fns {
			fn()
		}
	}
}

// editorProblemsAt returns the problems whose path starts with prefix.
func editorProblemsAt(e *TaskEditor, prefix string) []task.Problem {
	var out []task.Problem
	for _, p := range e.problems {
		if strings.HasPrefix(p.Path, prefix) {
			out = append(out, p)
		}
	}
	return out
}

// editorTap taps a palette action and waits for the work it started.
func editorTap(t *testing.T, e *TaskEditor, id string) {
	t.Helper()
	b, ok := e.paletteButtons[id]
	if !ok {
		t.Fatalf("palette has no %s", id)
	}
	test.Tap(b)
	editorIdle(t, e)
}

// editorField returns the generated field of the selected step.
func editorFieldOf(t *testing.T, e *TaskEditor, name string) *editorField {
	t.Helper()
	f, ok := e.fields[name]
	if !ok {
		t.Fatalf("the form of step %v has no field %q", e.selected, name)
	}
	return f
}

func TestEditorBuildsLoopTaskThroughTheUI(t *testing.T) {
	s, e, w, saved := editorTestSetup(t)

	test.Type(e.nameEntry, "Save invoices")

	// Step 1: IMAP Open, added with nothing selected.
	editorTap(t, e, "imap.open")
	if !slices.Equal(e.selected, []int{0}) {
		t.Fatalf("after adding imap.open the selection is %v", e.selected)
	}
	if len(editorProblemsAt(e, "steps[0].params.host")) != 1 || !e.badSteps["0"] {
		t.Fatalf("an empty host must be a problem marked on the step: %v", e.problems)
	}
	test.Type(editorFieldOf(t, e, "host").entry, "imap.example.com")
	editorFieldOf(t, e, "auth").sel.SetSelected("password")
	test.Type(editorFieldOf(t, e, "user").entry, "robot@example.com")
	pw := editorFieldOf(t, e, "password").entry
	if !pw.Password {
		t.Fatal("the password field is not masked")
	}
	test.Type(pw, "s3cret")
	if p := editorProblemsAt(e, "steps[0]"); len(p) != 0 || e.badSteps["0"] {
		t.Fatalf("after filling the host, step 1 still has problems: %v", p)
	}

	// Step 2: IMAP Select, after step 1.
	editorTap(t, e, "imap.select")
	if !slices.Equal(e.selected, []int{1}) {
		t.Fatalf("imap.select went to %v", e.selected)
	}

	// Step 3: IMAP Mail Loop; a loop with an empty body switches the add mode to its body.
	editorTap(t, e, "imap.loop")
	if !slices.Equal(e.selected, []int{2}) || e.addMode.Selected != editorAddInto {
		t.Fatalf("imap.loop at %v, add mode %q", e.selected, e.addMode.Selected)
	}
	if len(editorProblemsAt(e, "steps[2].body")) != 1 {
		t.Fatalf("an empty loop body must be a problem: %v", e.problems)
	}
	test.Type(e.labelEntry, "each new invoice")
	if got := e.stepTitle(e.step([]int{2})); got != "IMAP Mail Loop — each new invoice" {
		t.Fatalf("tree label %q", got)
	}

	// Inside the body: IMAP Download.
	editorTap(t, e, "imap.download")
	if !slices.Equal(e.selected, []int{2, 0}) {
		t.Fatalf("imap.download went to %v", e.selected)
	}
	if len(editorProblemsAt(e, "steps[2].body[0].params.folder")) != 1 || !e.badSteps["2/0"] {
		t.Fatalf("the required folder must be a problem marked on the body step: %v", e.problems)
	}

	// The variable picker offers what Validate allows here, and inserts {MessageUID}.
	fileName := editorFieldOf(t, e, "file_name")
	test.Tap(fileName.picker)
	if e.pickerList == nil {
		t.Fatal("the picker did not open")
	}
	var names []string
	for _, v := range e.pickerShown {
		names = append(names, v.Name)
	}
	for _, want := range []string{"Date", "TaskName", "IMAPCapabilities", "FolderMessages", "MessageUID", "MessageSubject"} {
		if !slices.Contains(names, want) {
			t.Errorf("picker lacks {%s}: %v", want, names)
		}
	}
	if slices.Contains(names, "DownloadedFile") {
		t.Errorf("picker offers the step's own output: %v", names)
	}
	e.pickerList.Select(slices.Index(names, "MessageUID"))
	if e.pickerList != nil {
		t.Fatal("the picker stayed open")
	}
	test.Type(fileName.entry, ".eml")
	if fileName.entry.Text != "{MessageUID}.eml" {
		t.Fatalf("file name %q", fileName.entry.Text)
	}

	folder := editorFieldOf(t, e, "folder").entry
	test.Type(folder, "/tmp/invoices")
	folder.FocusLost()
	if len(e.problems) != 0 || len(e.badSteps) != 0 {
		t.Fatalf("the finished task still has problems: %v", e.problems)
	}
	if !e.Dirty() {
		t.Fatal("not dirty before saving")
	}

	editorScreenshot(t, w)

	test.Tap(e.saveBtn)
	editorIdle(t, e)
	got, err := s.Tasks.Get("Save invoices")
	if err != nil {
		t.Fatal(err)
	}
	want := &task.Task{Version: task.Version, Name: "Save invoices", Enabled: true, Steps: []task.Step{
		{Action: "imap.open", Params: map[string]string{"host": "imap.example.com", "auth": "password", "user": "robot@example.com", "password": "s3cret"}},
		{Action: "imap.select"},
		{Action: "imap.loop", Label: "each new invoice", Body: []task.Step{
			{Action: "imap.download", Params: map[string]string{"file_name": "{MessageUID}.eml", "folder": "/tmp/invoices"}},
		}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored task\n got %+v\nwant %+v", got, want)
	}
	if err := task.Validate(got, s.Registry); err != nil {
		t.Fatal(err)
	}
	if e.Dirty() || len(*saved) != 1 || !reflect.DeepEqual((*saved)[0], want) {
		t.Fatalf("after save: dirty %v, onSaved calls %d", e.Dirty(), len(*saved))
	}

	// Clearing a required field brings the problem back; Revert restores the saved task.
	editorFieldOf(t, e, "folder").entry.SetText("")
	if len(editorProblemsAt(e, "steps[2].body[0].params.folder")) != 1 || !e.Dirty() {
		t.Fatalf("clearing the folder: problems %v, dirty %v", e.problems, e.Dirty())
	}
	e.reset()
	if e.Dirty() || !reflect.DeepEqual(e.Task(), want) {
		t.Fatalf("revert: %+v", e.Task())
	}
}

// editorScreenshot compares the editor with testdata/editor.png and, with
// MAILWRIGHT_SCREENSHOTS=1, writes docs/screenshots/editor.png.
func editorScreenshot(t *testing.T, w fyne.Window) {
	t.Helper()
	w.Canvas().Unfocus()
	img := w.Canvas().Capture()
	test.AssertImageMatches(t, "editor.png", img)
	if os.Getenv("MAILWRIGHT_SCREENSHOTS") != "1" {
		return
	}
	out := filepath.Join("..", "docs", "screenshots", "editor.png")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestEditorSaveRefusesInvalidTask(t *testing.T) {
	s, e, w, saved := editorTestSetup(t)
	test.Type(e.nameEntry, "Broken")
	editorTap(t, e, "imap.open") // host left empty
	test.Tap(e.saveBtn)
	editorIdle(t, e)
	if w.Canvas().Overlays().Top() == nil {
		t.Fatal("no dialog lists the problems")
	}
	if _, err := s.Tasks.Get("Broken"); err == nil {
		t.Fatal("an invalid task was saved")
	}
	if len(*saved) != 0 || !e.Dirty() {
		t.Fatalf("onSaved %d, dirty %v", len(*saved), e.Dirty())
	}
}

func TestEditorLoadEditsACopyAndRenames(t *testing.T) {
	s, e, _, _ := editorTestSetup(t)
	orig := &task.Task{Version: 1, Name: "Old name", Enabled: true, Steps: []task.Step{
		{Action: "imap.open", Params: map[string]string{"host": "h"}}}}
	if err := s.Tasks.Put(orig); err != nil {
		t.Fatal(err)
	}
	e.Load(orig)
	if e.Dirty() {
		t.Fatal("dirty right after Load")
	}
	e.selectPath([]int{0})
	editorIdle(t, e)
	editorFieldOf(t, e, "host").entry.SetText("host")
	if orig.Steps[0].Params["host"] != "h" {
		t.Fatal("the editor changed the caller's task")
	}
	e.nameEntry.SetText("New name")
	test.Tap(e.saveBtn)
	editorIdle(t, e)
	if got, err := s.Tasks.Get("New name"); err != nil || got.Steps[0].Params["host"] != "host" {
		t.Fatalf("renamed task: %v %v", got, err)
	}
	if _, err := s.Tasks.Get("Old name"); err == nil {
		t.Fatal("the old file of a renamed task is still there")
	}
}
