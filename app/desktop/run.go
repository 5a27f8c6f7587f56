// Package desktop opens Mailwright's window. It is the only package that imports Fyne's
// graphics driver: the screens in package app import widgets only, so they test headless
// with CGO_ENABLED=0, and the CLI never initialises the driver.
package desktop

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"
	fynedesktop "fyne.io/fyne/v2/driver/desktop"

	"github.com/mailwright/mailwright/app"
	"github.com/mailwright/mailwright/assets"
	"github.com/mailwright/mailwright/internal/buildinfo"
	"github.com/mailwright/mailwright/task"
)

// Run opens the main window on dataDir and returns when it is closed.
func Run(dataDir string, info buildinfo.Info) error {
	if runtime.GOOS == "linux" && os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return errors.New("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset); run a command instead, see 'mailwright --help'")
	}
	// The stores open before the window: a few small files and the history database.
	s, err := app.OpenServices(dataDir, os.Getenv("MAILWRIGHT_PASSPHRASE"))
	if err != nil {
		return fmt.Errorf("open the data folder %s: %w", dataDir, err)
	}
	defer s.Close()
	icon := fyne.NewStaticResource(assets.IconName, assets.Icon())
	fyneapp.SetMetadata(fyne.AppMetadata{ID: info.ID, Name: info.Name, Version: info.Version, Build: info.Build, Icon: icon})
	a := fyneapp.NewWithID(info.ID)
	a.SetIcon(icon)
	w := a.NewWindow(info.Name)
	mw := app.NewMainWindow(app.Options{DataDir: dataDir, Info: info, Services: s, Window: w})
	w.SetContent(mw.Content())
	w.Resize(fyne.NewSize(1100, 720))
	w.SetMaster()
	if desk, ok := a.(fynedesktop.App); ok {
		desk.SetSystemTrayMenu(trayMenu(mw, w, s))
		desk.SetSystemTrayIcon(icon)
	}
	w.SetOnClosed(mw.Shutdown)
	a.Lifecycle().SetOnStarted(mw.Settings.RestorePreferences)
	w.ShowAndRun()
	return nil
}

// trayMenu is the system tray menu: open the window, scheduler on/off, run a task.
func trayMenu(mw *app.MainWindow, w fyne.Window, s *app.Services) *fyne.Menu {
	open := fyne.NewMenuItem("Open Mailwright", func() { w.Show(); w.RequestFocus() })
	sched := fyne.NewMenuItem("Scheduler on/off", func() {
		mw.Settings.Scheduler.SetChecked(!mw.Settings.Scheduler.Checked)
	})
	run := fyne.NewMenuItem("Run a task", nil)
	tasks, _ := s.Tasks.List()
	var items []*fyne.MenuItem
	for _, t := range tasks {
		items = append(items, fyne.NewMenuItem(t.Name, func(t *task.Task) func() {
			return func() { w.Show(); mw.Tabs.SelectIndex(app.TabRun); mw.Run.Start(t) }
		}(t)))
	}
	if len(items) == 0 {
		items = append(items, fyne.NewMenuItem("(no tasks yet)", nil))
	}
	run.ChildMenu = fyne.NewMenu("", items...)
	return fyne.NewMenu("Mailwright", open, sched, run)
}
