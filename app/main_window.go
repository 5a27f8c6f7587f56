// Package app holds Mailwright's Fyne screens, one file each. Each screen is a struct
// holding its widgets; work runs in goroutines and touches widgets only through fyne.Do.
// The package imports widgets only, never the graphics driver (see app/desktop).
package app

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/assets"
	"github.com/mailwright/mailwright/internal/buildinfo"
	"github.com/mailwright/mailwright/task"
)

// Options is what the main window is opened with.
type Options struct {
	DataDir  string         // the data folder in use (already created)
	Info     buildinfo.Info // name and version, from FyneApp.toml
	Services *Services      // the stores and engine (OpenServices)
	Window   fyne.Window    // the window the content goes into (dialogs open on it)
}

// The tabs, in order.
const (
	TabParams = iota
	TabTasks
	TabEditor
	TabRun
	TabHistory
	TabSettings
)

// MainWindow is the window's content: a header and one tab per screen, wired together
// (Edit in Tasks opens the editor tab, Run now the run tab, a finished run refreshes the
// lists).
type MainWindow struct {
	opts Options

	Tabs        *container.AppTabs
	DataDirText *widget.Label

	Params   *ParamsScreen
	Tasks    *TasksScreen
	Editor   *TaskEditor
	Run      *RunView
	History  *HistoryScreen
	Settings *SettingsScreen
}

// NewMainWindow builds the screens. Their constructors start background loads; none does
// I/O on the calling goroutine.
func NewMainWindow(opts Options) *MainWindow {
	mw := &MainWindow{opts: opts}
	s, win := opts.Services, opts.Window
	mw.Params = NewParamsScreen(s, win)
	mw.Editor = NewTaskEditor(s, win, func(*task.Task) { mw.Tasks.Refresh() })
	mw.Run = NewRunView(s, win)
	mw.History = NewHistoryScreen(s, win)
	mw.Tasks = NewTasksScreen(s, win, mw.editTask)
	mw.Tasks.OnRunNow = mw.runTask
	mw.Run.OnFinished = func(*task.Result) { mw.Tasks.Refresh(); mw.History.Refresh() }
	mw.Settings = NewSettingsScreen(s, win, opts.Info)
	mw.DataDirText = mw.Settings.DataDir

	mw.Tabs = container.NewAppTabs(
		container.NewTabItemWithIcon("Parameter sets", theme.AccountIcon(), mw.Params.Content()),
		container.NewTabItemWithIcon("Tasks", theme.ListIcon(), mw.Tasks.Content()),
		container.NewTabItemWithIcon("Task editor", theme.DocumentCreateIcon(), mw.Editor.Content()),
		container.NewTabItemWithIcon("Run", theme.MediaPlayIcon(), mw.Run.Content()),
		container.NewTabItemWithIcon("History", theme.HistoryIcon(), mw.History.Content()),
		container.NewTabItemWithIcon("Settings", theme.SettingsIcon(), mw.Settings.Content()),
	)
	mw.Tabs.SetTabLocation(container.TabLocationLeading)
	mw.Tabs.OnSelected = func(ti *container.TabItem) {
		switch mw.Tabs.SelectedIndex() {
		case TabHistory:
			mw.History.Refresh()
		case TabTasks:
			mw.Tasks.Refresh()
		}
	}
	return mw
}

// editTask opens t in the editor tab, asking first when the editor has unsaved changes.
func (mw *MainWindow) editTask(t *task.Task) {
	open := func() {
		mw.Editor.Load(t)
		mw.Tabs.SelectIndex(TabEditor)
	}
	if !mw.Editor.Dirty() {
		open()
		return
	}
	dialog.ShowConfirm("Unsaved changes", "The task editor has unsaved changes. Discard them and open \""+t.Name+"\"?",
		func(ok bool) {
			if ok {
				open()
			}
		}, mw.opts.Window)
}

// runTask shows the run tab and starts t.
func (mw *MainWindow) runTask(t *task.Task) {
	mw.Tabs.SelectIndex(TabRun)
	mw.Run.Start(t)
}

// Content is the window's root object.
func (mw *MainWindow) Content() fyne.CanvasObject {
	return container.NewBorder(mw.header(), nil, nil, nil, mw.Tabs)
}

// Shutdown stops the run in progress and the in-window scheduler (at a safe point); call
// it when the window closes.
func (mw *MainWindow) Shutdown() {
	mw.Run.Stop()
	mw.Settings.StopScheduler(10e9)
}

func (mw *MainWindow) header() fyne.CanvasObject {
	logo := canvas.NewImageFromResource(fyne.NewStaticResource(assets.IconName, assets.Icon()))
	logo.FillMode = canvas.ImageFillContain
	logo.SetMinSize(fyne.NewSize(32, 32))
	title := widget.NewLabelWithStyle(mw.opts.Info.Name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	version := widget.NewLabel("version " + mw.opts.Info.Version)
	return container.NewVBox(container.NewHBox(logo, title, version), widget.NewSeparator())
}
