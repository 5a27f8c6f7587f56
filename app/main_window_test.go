package app

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/mailwright/mailwright/internal/buildinfo"
)

func TestMainWindowRendersHeadless(t *testing.T) {
	test.NewTempApp(t)
	info := buildinfo.Info{ID: "io.github.mailwright", Name: "Mailwright", Version: "0.1.0", Build: 1}
	mw := NewMainWindow(Options{DataDir: "/home/user/.config/mailwright", Info: info})
	w := test.NewWindow(mw.Content())
	defer w.Close()
	w.Resize(fyne.NewSize(900, 560))

	if got := len(mw.Tabs.Items); got != 4 {
		t.Fatalf("want 4 screens, got %d", got)
	}
	mw.Tabs.SelectIndex(3)
	if mw.Tabs.Selected().Text != "Settings" {
		t.Fatalf("selected %q", mw.Tabs.Selected().Text)
	}
	if mw.DataDirText.Text != "/home/user/.config/mailwright" {
		t.Fatalf("settings shows data folder %q", mw.DataDirText.Text)
	}

	img := w.Canvas().Capture()
	test.AssertImageMatches(t, "main_window_settings.png", img)

	// Also leave a copy where a person can look at it after a run.
	out := filepath.Join(t.TempDir(), "main_window.png")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}
