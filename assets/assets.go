// Package assets holds Mailwright's embedded images. It has no GUI dependency, so the
// headless binary can carry it too.
package assets

import (
	"embed"
	"fmt"
)

//go:embed icon.png
var files embed.FS

// IconName is the file name of the application icon.
const IconName = "icon.png"

// Icon returns the application icon as PNG bytes (512×512).
func Icon() []byte {
	b, err := files.ReadFile(IconName)
	if err != nil {
		// The file is embedded at build time; failing here means a broken build.
		panic(fmt.Sprintf("assets: embedded %s missing: %v", IconName, err))
	}
	return b
}
