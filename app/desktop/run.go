// Package desktop opens Mailwright's window. It is the only package that imports Fyne's
// graphics driver: the screens in package app import widgets only, so they test headless
// with CGO_ENABLED=0, and the CLI never initialises the driver.
package desktop

import (
	"errors"
	"os"
	"runtime"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	"github.com/mailwright/mailwright/app"
	"github.com/mailwright/mailwright/assets"
	"github.com/mailwright/mailwright/internal/buildinfo"
)

// Run opens the main window on dataDir and returns when it is closed.
func Run(dataDir string, info buildinfo.Info) error {
	if runtime.GOOS == "linux" && os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return errors.New("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset); run a command instead, see 'mailwright --help'")
	}
	icon := fyne.NewStaticResource(assets.IconName, assets.Icon())
	fyneapp.SetMetadata(fyne.AppMetadata{ID: info.ID, Name: info.Name, Version: info.Version, Build: info.Build, Icon: icon})
	a := fyneapp.NewWithID(info.ID)
	a.SetIcon(icon)
	w := a.NewWindow(info.Name)
	mw := app.NewMainWindow(app.Options{DataDir: dataDir, Info: info})
	w.SetContent(mw.Content())
	w.Resize(fyne.NewSize(1024, 700))
	w.SetMaster()
	w.ShowAndRun()
	return nil
}
