// Package buildinfo reads the application's identity (ID, name, version, build) from
// FyneApp.toml, the one place the version is written. main embeds that file and hands its
// bytes here, so the CLI's `version`, the window's title and Fyne's metadata always agree.
package buildinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Info is the application's identity as written in FyneApp.toml's [Details] table.
type Info struct {
	ID      string // reverse-DNS application ID
	Name    string // human-friendly name
	Version string // semantic version, e.g. "0.1.0"
	Build   int    // build number
}

// String gives "Name Version (build N)".
func (i Info) String() string {
	return fmt.Sprintf("%s %s (build %d)", i.Name, i.Version, i.Build)
}

// Parse reads the [Details] table of a FyneApp.toml. It understands the subset Fyne's own
// tool writes: `key = "string"` and `key = integer` lines. Name and Version are required.
func Parse(toml []byte) (Info, error) {
	var info Info
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(toml))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			table = strings.Trim(line, "[] ")
			continue
		}
		if table != "Details" {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return Info{}, fmt.Errorf("FyneApp.toml line %d: expected key = value", n)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "ID", "Name", "Version":
			s, err := strconv.Unquote(val)
			if err != nil {
				return Info{}, fmt.Errorf("FyneApp.toml line %d: %s must be a quoted string", n, key)
			}
			switch key {
			case "ID":
				info.ID = s
			case "Name":
				info.Name = s
			default:
				info.Version = s
			}
		case "Build":
			b, err := strconv.Atoi(val)
			if err != nil {
				return Info{}, fmt.Errorf("FyneApp.toml line %d: Build must be an integer", n)
			}
			info.Build = b
		}
	}
	if err := sc.Err(); err != nil {
		return Info{}, fmt.Errorf("read FyneApp.toml: %w", err)
	}
	if info.Name == "" || info.Version == "" {
		return Info{}, fmt.Errorf("FyneApp.toml: [Details] needs Name and Version")
	}
	return info, nil
}
