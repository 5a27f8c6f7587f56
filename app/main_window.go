// Package app holds Mailwright's Fyne screens, one file each. Each screen is a struct
// holding its widgets; work runs in goroutines and touches widgets only through fyne.Do.
// The package imports widgets only, never the graphics driver (see app/desktop).
package app

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/assets"
	"github.com/mailwright/mailwright/internal/buildinfo"
)

// Options is what the main window is opened with.
type Options struct {
	DataDir string         // the data folder in use (already created)
	Info    buildinfo.Info // name and version, from FyneApp.toml
}

// MainWindow is the window's content: a header and one tab per screen.
type MainWindow struct {
	opts Options

	Tabs        *container.AppTabs
	DataDirText *widget.Label
}

// NewMainWindow builds the main window's widgets. It does no I/O, so it is safe on the UI
// goroutine and in headless tests.
func NewMainWindow(opts Options) *MainWindow {
	mw := &MainWindow{opts: opts}
	mw.DataDirText = widget.NewLabel(opts.DataDir)
	mw.DataDirText.Wrapping = fyne.TextWrapBreak
	mw.DataDirText.Selectable = true
	mw.Tabs = container.NewAppTabs(
		container.NewTabItemWithIcon("Parameter sets", theme.AccountIcon(), mw.placeholder(
			"OAuth parameter sets",
			"Named sign-in settings (client ID, endpoints, scope, refresh token) that every mail action uses.")),
		container.NewTabItemWithIcon("Tasks", theme.ListIcon(), mw.placeholder(
			"Tasks",
			"Automations built from IMAP, POP3, SMTP and email actions, run by hand or on a schedule.")),
		container.NewTabItemWithIcon("History", theme.HistoryIcon(), mw.placeholder(
			"Run history",
			"Every run with its outcome, duration and step log.")),
		container.NewTabItemWithIcon("Settings", theme.SettingsIcon(), mw.settings()),
	)
	mw.Tabs.SetTabLocation(container.TabLocationLeading)
	return mw
}

// Content is the window's root object.
func (mw *MainWindow) Content() fyne.CanvasObject {
	return container.NewBorder(mw.header(), nil, nil, nil, mw.Tabs)
}

func (mw *MainWindow) header() fyne.CanvasObject {
	logo := canvas.NewImageFromResource(fyne.NewStaticResource(assets.IconName, assets.Icon()))
	logo.FillMode = canvas.ImageFillContain
	logo.SetMinSize(fyne.NewSize(32, 32))
	title := widget.NewLabelWithStyle(mw.opts.Info.Name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	version := widget.NewLabel("version " + mw.opts.Info.Version)
	return container.NewVBox(container.NewHBox(logo, title, version), widget.NewSeparator())
}

// placeholder is the empty state of a screen that later releases fill in.
func (mw *MainWindow) placeholder(title, what string) fyne.CanvasObject {
	heading := widget.NewLabelWithStyle(title, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	body := widget.NewLabel(what + "\nThis screen is not built yet; its commands will also be available headless.")
	body.Wrapping = fyne.TextWrapWord
	return container.NewVBox(heading, body)
}

func (mw *MainWindow) settings() fyne.CanvasObject {
	form := widget.NewForm(
		widget.NewFormItem("Data folder", mw.DataDirText),
		widget.NewFormItem("Version", widget.NewLabel(fmt.Sprintf("%s (build %d)", mw.opts.Info.Version, mw.opts.Info.Build))),
	)
	return container.NewVBox(widget.NewLabelWithStyle("Settings", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), form)
}
