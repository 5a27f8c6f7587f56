//go:build nogui

package main

import "github.com/mailwright/mailwright/cli"

// window returns nil in a headless build (-tags nogui, CGO_ENABLED=0): a binary for
// servers that links no graphics libraries at all.
func window() cli.GUI { return nil }
