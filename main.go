// Command mailwright is an email automation app: with no arguments it opens the window,
// with a command it runs headless (see `mailwright --help`).
package main

import (
	_ "embed"
	"os"

	"github.com/mailwright/mailwright/cli"
)

// fyneApp is FyneApp.toml, the one place the name and version are written.
//
//go:embed FyneApp.toml
var fyneApp []byte

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		FyneApp: fyneApp,
		GUI:     window(),
	}))
}
