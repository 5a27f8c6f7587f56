//go:build !nogui

package main

import (
	"github.com/mailwright/mailwright/app/desktop"
	"github.com/mailwright/mailwright/cli"
)

// window returns the desktop window launcher. The graphics driver is only initialised
// when it is called, so headless commands never touch it.
func window() cli.GUI { return desktop.Run }
