package app

import (
	"context"
	"fmt"
	"image/color"
	"log/slog"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/internal/buildinfo"
	"github.com/mailwright/mailwright/task"
)

// Preference keys of the Settings screen.
const (
	prefTheme     = "theme"     // "system", "light" or "dark"
	prefRetention = "retention" // days of run history to keep; 0 = forever
	prefScheduler = "scheduler" // run scheduled tasks while the window is open
)

// retentionChoices are the offered history retentions, in days.
var settingsRetentionLabels = []string{"30 days", "90 days", "1 year", "forever"}

func settingsRetentionDays(label string) int {
	switch label {
	case "30 days":
		return 30
	case "90 days":
		return 90
	case "1 year":
		return 365
	}
	return 0
}

// SettingsScreen shows the data folder, where secrets are kept, and the app's options:
// the scheduler while the window is open, the theme and how long run history is kept.
type SettingsScreen struct {
	s    *Services
	win  fyne.Window
	info buildinfo.Info

	DataDir   *widget.Label
	Secrets   *widget.Label
	Scheduler *widget.Check
	SchedInfo *widget.Label
	Theme     *widget.Select
	Retention *widget.Select
	PruneNow  *widget.Button

	mu        sync.Mutex
	stopSched context.CancelFunc
	schedDone chan struct{}
}

// NewSettingsScreen builds the screen; it reads preferences (no disk I/O of its own) and
// loads the secret-storage description in the background.
func NewSettingsScreen(s *Services, win fyne.Window, info buildinfo.Info) *SettingsScreen {
	st := &SettingsScreen{s: s, win: win, info: info}
	st.DataDir = widget.NewLabel(s.DataDir)
	st.DataDir.Wrapping = fyne.TextWrapBreak
	st.DataDir.Selectable = true
	st.Secrets = widget.NewLabel("…")
	st.Secrets.Wrapping = fyne.TextWrapWord
	st.SchedInfo = widget.NewLabel("")
	st.SchedInfo.Wrapping = fyne.TextWrapWord
	st.Scheduler = widget.NewCheck("Run scheduled tasks while the window is open", st.onScheduler)
	st.Theme = widget.NewSelect([]string{"system", "light", "dark"}, st.onTheme)
	st.Retention = widget.NewSelect(settingsRetentionLabels, st.onRetention)
	st.PruneNow = widget.NewButtonWithIcon("Prune now", theme.DeleteIcon(), st.onPruneNow)

	prefs := fyne.CurrentApp().Preferences()
	st.Theme.SetSelected(prefs.StringWithFallback(prefTheme, "system"))
	st.Retention.SetSelected(prefs.StringWithFallback(prefRetention, "90 days"))
	st.loadSecrets()
	return st
}

// Content is the screen's root object.
func (st *SettingsScreen) Content() fyne.CanvasObject {
	form := widget.NewForm(
		widget.NewFormItem("Data folder", st.DataDir),
		widget.NewFormItem("Secret storage", st.Secrets),
		widget.NewFormItem("Scheduler", container.NewVBox(st.Scheduler, st.SchedInfo)),
		widget.NewFormItem("Theme", st.Theme),
		widget.NewFormItem("Keep run history", container.NewHBox(st.Retention, st.PruneNow)),
		widget.NewFormItem("Version", widget.NewLabel(fmt.Sprintf("%s (build %d)", st.info.Version, st.info.Build))),
	)
	heading := widget.NewLabelWithStyle("Settings", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	return container.NewVScroll(container.NewVBox(heading, form))
}

// RestorePreferences applies the saved scheduler preference (call once the window shows).
func (st *SettingsScreen) RestorePreferences() {
	if fyne.CurrentApp().Preferences().Bool(prefScheduler) {
		st.Scheduler.SetChecked(true)
	}
}

func (st *SettingsScreen) loadSecrets() {
	if st.s.Params == nil {
		st.Secrets.SetText(fmt.Sprintf("not available: %v", st.s.ParamsErr))
		return
	}
	go func() {
		_, err := st.s.Params.List() // opens the backend if needed
		b := st.s.Params.Backend()
		text := b.Name
		if b.Detail != "" {
			text += ": " + b.Detail
		}
		if text == "" {
			text = "chosen when the first secret is saved (OS keyring if reachable, else an encrypted file in the data folder)"
		}
		if err != nil {
			text += fmt.Sprintf(" (error: %v)", err)
		}
		st.s.do(func() { st.Secrets.SetText(text) })
	}()
}

// SchedulerRunning reports whether the in-window scheduler is on.
func (st *SettingsScreen) SchedulerRunning() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stopSched != nil
}

func (st *SettingsScreen) onScheduler(on bool) {
	fyne.CurrentApp().Preferences().SetBool(prefScheduler, on)
	st.mu.Lock()
	defer st.mu.Unlock()
	if on == (st.stopSched != nil) {
		return
	}
	if !on {
		st.stopSched()
		st.stopSched = nil
		st.SchedInfo.SetText("Stopped. Runs in progress finish at a safe point.")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	st.stopSched, st.schedDone = cancel, done
	sched := &task.Scheduler{Engine: st.s.Engine, Store: st.s.Tasks, Log: slog.New(slog.DiscardHandler)}
	st.SchedInfo.SetText("Running: enabled tasks start on their triggers. A `mailwright serve` elsewhere on this data folder is fine: a task never runs twice at once.")
	go func() {
		defer close(done)
		if err := sched.Run(ctx); err != nil {
			st.s.do(func() { st.SchedInfo.SetText("Scheduler stopped: " + err.Error()) })
		}
	}()
}

// StopScheduler stops the in-window scheduler and waits (up to timeout) for runs to reach
// a safe point; used when the window closes.
func (st *SettingsScreen) StopScheduler(timeout time.Duration) {
	st.mu.Lock()
	stop, done := st.stopSched, st.schedDone
	st.stopSched = nil
	st.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

func (st *SettingsScreen) onTheme(v string) {
	fyne.CurrentApp().Preferences().SetString(prefTheme, v)
	fyne.CurrentApp().Settings().SetTheme(variantTheme{Theme: theme.DefaultTheme(), variant: v})
}

func (st *SettingsScreen) onRetention(v string) {
	fyne.CurrentApp().Preferences().SetString(prefRetention, v)
}

func (st *SettingsScreen) onPruneNow() {
	days := settingsRetentionDays(st.Retention.Selected)
	if days == 0 {
		dialog.ShowInformation("Keep run history", "History is kept forever: nothing to prune.", st.win)
		return
	}
	st.PruneNow.Disable()
	go func() {
		n, err := st.s.History.Prune(time.Now().AddDate(0, 0, -days))
		st.s.do(func() {
			st.PruneNow.Enable()
			if err != nil {
				dialog.ShowError(err, st.win)
				return
			}
			dialog.ShowInformation("Keep run history", fmt.Sprintf("Deleted %d run(s) older than %d days. Checkpoints are kept.", n, days), st.win)
		})
	}()
}

// variantTheme forces the light or dark variant of a theme ("system" follows the desktop).
type variantTheme struct {
	fyne.Theme
	variant string
}

// Color implements fyne.Theme.
func (t variantTheme) Color(n fyne.ThemeColorName, v fyne.ThemeVariant) color.Color {
	switch t.variant {
	case "light":
		v = theme.VariantLight
	case "dark":
		v = theme.VariantDark
	}
	return t.Theme.Color(n, v)
}
