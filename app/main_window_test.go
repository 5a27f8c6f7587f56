package app

import (
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/mailwright/mailwright/internal/buildinfo"
	"github.com/mailwright/mailwright/task"
)

// TestMainWindowRendersHeadless builds the whole window on real services, checks the
// screens are wired (Edit opens the editor tab, Run now the run tab) and compares the
// Settings tab with its reference image.
func TestMainWindowRendersHeadless(t *testing.T) {
	test.NewTempApp(t)
	info := buildinfo.Info{ID: "io.github.mailwright", Name: "Mailwright", Version: "0.1.0", Build: 1}
	s := runTestServices(t)
	w := test.NewWindow(nil)
	defer w.Close()
	var mw *MainWindow
	runUI(func() {
		mw = NewMainWindow(Options{DataDir: s.DataDir, Info: info, Services: s, Window: w})
		w.SetContent(mw.Content())
		w.Resize(fyne.NewSize(1000, 640))
	})

	if got := len(mw.Tabs.Items); got != 6 {
		t.Fatalf("want 6 screens, got %d", got)
	}
	names := []string{"Parameter sets", "Tasks", "Task editor", "Run", "History", "Settings"}
	for i, n := range names {
		if mw.Tabs.Items[i].Text != n {
			t.Fatalf("tab %d is %q, want %q", i, mw.Tabs.Items[i].Text, n)
		}
	}
	if mw.DataDirText.Text != s.DataDir {
		t.Fatalf("settings shows data folder %q", mw.DataDirText.Text)
	}

	// Wiring: "Edit" from the task list opens the editor tab with that task.
	runUI(func() { mw.editTask(&task.Task{Version: 1, Name: "New task"}) })
	if mw.Tabs.SelectedIndex() != TabEditor || mw.Editor.Task().Name != "New task" {
		t.Fatalf("edit did not open the editor: tab %d, task %q", mw.Tabs.SelectedIndex(), mw.Editor.Task().Name)
	}

	runUI(func() { mw.Tabs.SelectIndex(TabSettings) })
	settingsEventually(t, "the secret storage description", func() bool { return mw.Settings.Secrets.Text != "…" })
	// Fixed texts for a stable picture (the real ones hold the temporary folder's path).
	runUI(func() {
		mw.DataDirText.SetText("/home/user/.config/mailwright")
		mw.Settings.Secrets.SetText("file: age-encrypted file /home/user/.config/mailwright/secrets.age (key file)")
		test.AssertImageMatches(t, "main_window_settings.png", w.Canvas().Capture())
	})
	mw.Shutdown()
}
