package app

import (
	"context"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"

	"github.com/mailwright/mailwright/internal/buildinfo"
)

// settingsEventually polls cond under the UI lock until it holds or 10 s pass.
func settingsEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	runEventually(t, 10*time.Second, what, cond)
}

func TestSettingsScreen(t *testing.T) {
	a := test.NewTempApp(t)
	s := runTestServices(t)
	w := test.NewWindow(nil)
	defer w.Close()
	var st *SettingsScreen
	runUI(func() {
		st = NewSettingsScreen(s, w, buildinfo.Info{Name: "Mailwright", Version: "0.1.0", Build: 1})
		w.SetContent(st.Content())
		w.Resize(fyne.NewSize(800, 500))
	})

	if st.DataDir.Text != s.DataDir {
		t.Fatalf("data folder %q", st.DataDir.Text)
	}
	settingsEventually(t, "the secret storage description", func() bool { return st.Secrets.Text != "…" })

	runUI(func() { st.Theme.SetSelected("dark") })
	if got := a.Settings().Theme().Color(theme.ColorNameBackground, theme.VariantLight); got != theme.DefaultTheme().Color(theme.ColorNameBackground, theme.VariantDark) {
		t.Fatalf("dark theme not applied: %v", got)
	}
	if a.Preferences().String(prefTheme) != "dark" {
		t.Fatal("theme preference not saved")
	}

	// Pruning keeps recent runs and deletes old ones.
	old := time.Now().AddDate(0, 0, -40)
	if err := s.History.BeginRun(context.Background(), "old-run", "T", "manual", old); err != nil {
		t.Fatal(err)
	}
	if err := s.History.BeginRun(context.Background(), "new-run", "T", "manual", time.Now()); err != nil {
		t.Fatal(err)
	}
	runUI(func() {
		st.Retention.SetSelected("30 days")
		test.Tap(st.PruneNow)
	})
	settingsEventually(t, "pruning", func() bool {
		runs, _ := s.History.Runs("T", 10)
		return len(runs) == 1 && runs[0].ID == "new-run" && !st.PruneNow.Disabled()
	})

	st.Scheduler.SetChecked(true)
	if !st.SchedulerRunning() || !a.Preferences().Bool(prefScheduler) {
		t.Fatal("scheduler did not start")
	}
	st.StopScheduler(5 * time.Second)
	if st.SchedulerRunning() {
		t.Fatal("scheduler still running")
	}
}
