package cli

import (
	"fmt"
	"os"
	"path/filepath"
)

const envDataDir = "MAILWRIGHT_DATA_DIR"

// DataDir is the resolved data folder and which setting chose it.
type DataDir struct {
	Path   string // absolute path
	Source string // "--data-dir", "MAILWRIGHT_DATA_DIR" or "default"
}

// resolveDataDir picks the data folder: the flag, else the environment, else
// os.UserConfigDir()/mailwright. The result is absolute so that logs and the GUI show
// exactly which folder is used.
func resolveDataDir(flagValue string, getenv func(string) string) (DataDir, error) {
	dd := DataDir{Path: flagValue, Source: "--data-dir"}
	if dd.Path == "" {
		dd = DataDir{Path: getenv(envDataDir), Source: envDataDir}
	}
	if dd.Path == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return DataDir{}, fmt.Errorf("find the default data folder: %w; pass --data-dir DIR or set %s", err, envDataDir)
		}
		dd = DataDir{Path: filepath.Join(base, "mailwright"), Source: "default"}
	}
	abs, err := filepath.Abs(dd.Path)
	if err != nil {
		return DataDir{}, fmt.Errorf("data folder %q: %w", dd.Path, err)
	}
	dd.Path = abs
	return dd, nil
}

// ensureDataDir creates the data folder with mode 0700 (it will hold secrets) if missing.
func ensureDataDir(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("create data folder %s: %w", path, err)
	}
	return nil
}

func defaultDataDirHint() string {
	base, err := os.UserConfigDir()
	if err != nil {
		return "$XDG_CONFIG_HOME/mailwright"
	}
	return filepath.Join(base, "mailwright")
}
