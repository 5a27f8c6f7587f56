package app

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/task"
)

// runTestServices opens services on a fresh data folder.
func runTestServices(t *testing.T) *Services {
	t.Helper()
	s, err := OpenServices(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.uiMu = &runUIMu
	return s
}

// runUIMu is the UI lock of the services runTestServices makes (tests only).
var runUIMu sync.Mutex

// runUI runs f under the lock the screens' background updates take, so the test never
// touches widgets at the same time as they do.
func runUI(f func()) {
	runUIMu.Lock()
	defer runUIMu.Unlock()
	f()
}

// runEventually polls cond (under the UI lock) every 10 ms until it holds or timeout passes.
func runEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		runUI(func() { ok = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runWalk visits o and everything inside it (containers and widget renderers) until f
// returns true.
func runWalk(o fyne.CanvasObject, f func(fyne.CanvasObject) bool) bool {
	if o == nil {
		return false
	}
	if f(o) {
		return true
	}
	var kids []fyne.CanvasObject
	switch x := o.(type) {
	case *fyne.Container:
		kids = x.Objects
	case fyne.Widget:
		kids = test.WidgetRenderer(x).Objects()
	}
	for _, k := range kids {
		if runWalk(k, f) {
			return true
		}
	}
	return false
}

// runOverlayText returns the texts of the labels in the window's top overlay (a dialog).
func runOverlayText(w fyne.Window) string {
	top := w.Canvas().Overlays().Top()
	if top == nil {
		return ""
	}
	var b strings.Builder
	runWalk(top, func(o fyne.CanvasObject) bool {
		switch x := o.(type) {
		case *widget.Label:
			b.WriteString(x.Text + "\n")
		case *widget.RichText:
			b.WriteString(x.String() + "\n")
		}
		return false
	})
	return b.String()
}

// runTapOverlayButton taps the button with that text in the window's top overlay.
func runTapOverlayButton(t *testing.T, w fyne.Window, text string) {
	t.Helper()
	top := w.Canvas().Overlays().Top()
	if top == nil {
		t.Fatalf("no dialog open to tap %q in", text)
	}
	if !runWalk(top, func(o fyne.CanvasObject) bool {
		if b, ok := o.(*widget.Button); ok && b.Text == text {
			test.Tap(b)
			return true
		}
		return false
	}) {
		t.Fatalf("no %q button in the dialog:\n%s", text, runOverlayText(w))
	}
}

// runScreenshot compares the window with testdata/<name>.png (written on the first run)
// and, with MAILWRIGHT_SCREENSHOTS=1, also writes docs/screenshots/<name>.png.
func runScreenshot(t *testing.T, w fyne.Window, name string) {
	t.Helper()
	img := w.Canvas().Capture()
	master := filepath.Join("testdata", name+".png")
	if _, err := os.Stat(master); os.IsNotExist(err) {
		runWritePNG(t, master, img) // first run: this becomes the master
	}
	test.AssertImageMatches(t, name+".png", img)
	if os.Getenv("MAILWRIGHT_SCREENSHOTS") == "1" {
		runWritePNG(t, filepath.Join("..", "docs", "screenshots", name+".png"), img)
	}
}

func runWritePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// runDownloadTask is a task that downloads every message of folder into dest over IMAPS.
func runDownloadTask(dc *testmail.Dovecot, name, folder, dest string) *task.Task {
	u := testmail.DefaultUser()
	return &task.Task{Version: task.Version, Name: name, Steps: []task.Step{
		{Action: "imap.open", Params: map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.IMAPSPort),
			"auth": "password", "user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}},
		{Action: "imap.select", Params: map[string]string{"folder": folder}},
		{Action: "imap.loop", Body: []task.Step{
			{Action: "imap.download", Params: map[string]string{"folder": dest, "file_name": "{MessageUID}.eml"}},
		}},
	}}
}

func runFiles(t *testing.T, dir string) int {
	m, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestRunViewAgainstDovecot runs real tasks through the Run view: a 200-message download
// reaches "message 200 of 200" with log lines and a success summary; Stop ends a
// 2,000-message run as cancelled within seconds; a second Start is refused while running,
// another view's Start of the same task reports that it is already running; and the
// History screen lists both runs, filters by task, and shows a run's log.
func TestRunViewAgainstDovecot(t *testing.T) {
	test.NewTempApp(t)
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	dc.SeedN(t, u.Name, "INBOX", 200, 800)
	dc.SeedN(t, u.Name, "Big", 2000, 800)
	s := runTestServices(t)

	w := test.NewWindow(nil)
	defer w.Close()
	var v *RunView
	finished := 0
	runUI(func() {
		v = NewRunView(s, w)
		v.OnFinished = func(*task.Result) { finished++ }
		w.SetContent(v.Content())
		w.Resize(fyne.NewSize(800, 600))
	})

	// 1. A full run of 200 messages.
	dest := t.TempDir()
	small := runDownloadTask(dc, "Download 200", "INBOX", dest)
	start := time.Now()
	runUI(func() { v.Start(small) })
	runEventually(t, 20*time.Second, "the run to end", func() bool { return finished == 1 })
	t.Logf("200 messages in %s", time.Since(start).Round(time.Millisecond))
	runUI(func() {
		if !strings.Contains(v.Summary.Text, "Outcome: success") || !strings.Contains(v.Summary.Text, "200 messages") {
			t.Errorf("summary %q", v.Summary.Text)
		}
		if v.Progress.Value != 200 || v.Progress.Max != 200 || v.progText != "message 200 of 200" {
			t.Errorf("progress %v of %v, text %q", v.Progress.Value, v.Progress.Max, v.progText)
		}
		downloaded := 0
		for _, l := range v.lines {
			if strings.Contains(l, "imap message downloaded") {
				downloaded++
			}
		}
		if downloaded != 200 || !strings.Contains(v.lines[0], "run started") || !strings.Contains(v.lines[len(v.lines)-1], "run ended") {
			t.Errorf("%d download lines in %d; first %q", downloaded, len(v.lines), v.lines[0])
		}
		if v.RunBtn.Disabled() || !v.StopBtn.Disabled() || v.Running() {
			t.Error("buttons not reset after the run")
		}
	})
	if n := runFiles(t, dest); n != 200 {
		t.Fatalf("%d files downloaded", n)
	}

	// 2. Stop in the middle of 2,000 messages.
	bigDest := t.TempDir()
	big := runDownloadTask(dc, "Download big", "Big", bigDest)
	runUI(func() { v.Start(big) })
	runEventually(t, 20*time.Second, "the big run to get going", func() bool {
		return v.Progress.Max == 2000 && v.Progress.Value >= 20
	})

	// A second Start here is refused with a message; the run goes on.
	runUI(func() { v.Start(small) })
	runUI(func() {
		if txt := runOverlayText(w); !strings.Contains(txt, "still running") {
			t.Errorf("second Start: dialog %q", txt)
		}
		runTapOverlayButton(t, w, "OK")
		if v.task.Name != "Download big" || !v.Running() {
			t.Error("the second Start replaced the running task")
		}
	})

	// Another view (another window) cannot run the same task at the same time.
	w2 := test.NewWindow(nil)
	defer w2.Close()
	var v2 *RunView
	runUI(func() {
		v2 = NewRunView(s, w2)
		w2.SetContent(v2.Content())
		w2.Resize(fyne.NewSize(700, 500))
		v2.Start(big)
	})
	runEventually(t, 10*time.Second, "the already-running refusal", func() bool {
		return strings.Contains(v2.Summary.Text, "another run of this task is in progress")
	})
	runUI(func() {
		if txt := runOverlayText(w2); !strings.Contains(txt, "already running") {
			t.Errorf("already running: dialog %q", txt)
		}
	})

	var stopAt time.Time
	runUI(func() {
		stopAt = time.Now()
		test.Tap(v.StopBtn)
	})
	runEventually(t, 10*time.Second, "the stopped run to end", func() bool { return finished == 2 })
	took := time.Since(stopAt)
	runUI(func() {
		if !strings.Contains(v.Summary.Text, "Outcome: cancelled") || !strings.Contains(v.Summary.Text, "You stopped the run") {
			t.Errorf("summary after Stop: %q", v.Summary.Text)
		}
		if v.Progress.Value >= 2000 {
			t.Errorf("the stopped run got to %v", v.Progress.Value)
		}
	})
	if took > 5*time.Second {
		t.Errorf("Stop took %s", took)
	}
	got := runFiles(t, bigDest)
	t.Logf("stopped after %d of 2000 messages, %s after Stop", got, took.Round(time.Millisecond))
	if got == 0 || got >= 2000 {
		t.Errorf("%d files downloaded by the stopped run", got)
	}

	// 3. The History screen lists both runs, filters by task and shows a run's log.
	w3 := test.NewWindow(nil)
	defer w3.Close()
	var h *HistoryScreen
	runUI(func() {
		h = NewHistoryScreen(s, w3)
		w3.SetContent(h.Content())
		w3.Resize(fyne.NewSize(1000, 600))
	})
	runEventually(t, 10*time.Second, "two runs in the history", func() bool { return len(h.runs) == 2 })
	runUI(func() {
		if h.runs[0].Task != "Download big" || h.runs[0].Outcome != task.OutcomeCancelled ||
			h.runs[1].Task != "Download 200" || h.runs[1].Outcome != task.OutcomeSuccess || h.runs[1].Items != 200 {
			t.Errorf("runs: %+v", h.runs)
		}
		if got := histCell(h.runs[1], 5); got != "200" {
			t.Errorf("messages cell %q", got)
		}
		h.Filter.SetSelected("Download 200")
	})
	runEventually(t, 10*time.Second, "the filter", func() bool { return len(h.runs) == 1 && h.runs[0].Task == "Download 200" })
	runUI(func() { h.Table.Select(widget.TableCellID{Row: 0, Col: 0}) })
	runEventually(t, 10*time.Second, "the run's log", func() bool { return len(h.logLines) > 200 })
	runUI(func() {
		if !strings.Contains(h.RunInfo.Text, "success") || !strings.Contains(h.logLines[0], "run started") {
			t.Errorf("run info %q, first line %q", h.RunInfo.Text, h.logLines[0])
		}
		h.Filter.SetSelected(histAllTasks)
	})
	runEventually(t, 10*time.Second, "all tasks again", func() bool { return len(h.runs) == 2 })
}

// The on-screen log keeps the latest lines and says where the older ones are.
func TestRunViewLogCap(t *testing.T) {
	test.NewTempApp(t)
	s := runTestServices(t)
	w := test.NewWindow(nil)
	defer w.Close()
	v := NewRunView(s, w)
	w.SetContent(v.Content())
	for batch := 0; batch < 3; batch++ {
		var p runPending
		for i := 0; i < 2500; i++ {
			p.lines = append(p.lines, fmt.Sprintf("line %d", batch*2500+i))
		}
		p.dirty = true
		v.apply(p)
	}
	if len(v.lines) != runMaxLines || v.lines[0] != runOlderLines || v.lines[len(v.lines)-1] != "line 7499" {
		t.Fatalf("%d lines, first %q, last %q", len(v.lines), v.lines[0], v.lines[len(v.lines)-1])
	}
	if v.lines[1] != fmt.Sprintf("line %d", 7500-(runMaxLines-1)) {
		t.Fatalf("second line %q", v.lines[1])
	}
}

// A run of a task with problems fails before connecting and says what is wrong; the
// screenshot shows a finished download run (fixed data, so the image is stable).
func TestRunViewProblemsAndScreenshot(t *testing.T) {
	test.NewTempApp(t)
	s := runTestServices(t)
	w := test.NewWindow(nil)
	defer w.Close()
	var v *RunView
	done := make(chan *task.Result, 1)
	runUI(func() {
		v = NewRunView(s, w)
		v.OnFinished = func(r *task.Result) { done <- r }
		w.SetContent(v.Content())
		w.Resize(fyne.NewSize(820, 520))
		v.Start(&task.Task{Version: 1, Name: "Broken", Steps: []task.Step{{Action: "imap.selekt"}}})
	})
	select {
	case r := <-done:
		if r == nil || r.Outcome != task.OutcomeFailed {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not end")
	}
	runUI(func() {
		if !strings.Contains(v.Summary.Text, "The task has problems") || !strings.Contains(v.Summary.Text, "steps[0]") {
			t.Errorf("summary %q", v.Summary.Text)
		}
	})

	// The screenshot: a finished run with fixed times.
	runUI(func() {
		at := time.Date(2026, 3, 2, 7, 0, 4, 0, time.Local)
		tk := &task.Task{Version: 1, Name: "Save invoices"}
		v.task = tk
		v.lines = nil
		v.Heading.SetText("Task: Save invoices")
		var p runPending
		p.lines = []string{"07:00:04 INFO  run started trigger=manual",
			`07:00:04 INFO  steps[0] imap open: logged in host=imap.example.com user=anna@example.com`,
			`07:00:05 INFO  steps[2] imap loop: messages to handle folder=INBOX matching=3 to_handle=3`}
		for i := 1; i <= 3; i++ {
			p.lines = append(p.lines, fmt.Sprintf(`07:00:0%d INFO  steps[2].body[0] imap message downloaded folder=INBOX uid=%d file=/home/anna/Invoices/%d.eml bytes=%d`, 5+i, 40+i, 40+i, 18000+i*731))
		}
		p.lines = append(p.lines, "07:00:09 INFO  run ended outcome=success steps=6 items=3")
		p.step, p.msgIndex, p.msgTotal, p.dirty = "IMAP Download Message — steps[2].body[0]", 3, 3, true
		v.apply(p)
		v.OnFinished = nil
		v.finish(tk, &task.Result{RunID: "x", Task: tk.Name, Start: at, End: at.Add(5200 * time.Millisecond),
			Outcome: task.OutcomeSuccess, Steps: 6, Items: 3}, nil)
		v.Log.ScrollToTop()
		runScreenshot(t, w, "run")
	})
}
