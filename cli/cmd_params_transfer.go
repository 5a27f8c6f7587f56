package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/mailwright/mailwright/oauthparams"
)

// maxImportBytes caps what `params import` reads; the importer refuses more anyway.
const maxImportBytes = 10 << 20

func paramsExportCommand() Command {
	var out, passFile string
	var withSecrets bool
	return Command{
		Name:    "export",
		Summary: "export parameter sets to a JSON file (without secrets unless asked)",
		Usage:   "[NAME...]",
		Help: `Exports every set, or the named ones. Without --with-secrets the file holds no client
secret or token: sets imported from it need a new sign-in. With --with-secrets the secrets are
encrypted with a passphrase (age, scrypt) read from --passphrase-file.`,
		MaxArgs: -1,
		Flags: func(c *Context) {
			c.Flags.StringVar(&out, "out", "", "write to `FILE` (- for standard output)")
			c.Flags.BoolVar(&withSecrets, "with-secrets", false, "include the secrets, encrypted with a passphrase")
			c.Flags.StringVar(&passFile, "passphrase-file", "", "read the passphrase from `FILE` (- for stdin)")
		},
		Run: func(c *Context) error {
			if out == "" {
				return usageError{"params export needs --out FILE (or --out - for standard output)"}
			}
			if withSecrets != (passFile != "") {
				return usageError{"--with-secrets and --passphrase-file go together"}
			}
			opts := oauthparams.ExportOptions{Names: c.Args, WithSecrets: withSecrets}
			if withSecrets {
				var err error
				if opts.Passphrase, err = readSecretFile(passFile); err != nil {
					return err
				}
			}
			s, err := c.openStore()
			if err != nil {
				return err
			}
			data, err := s.Export(opts)
			if err != nil {
				return err
			}
			if out == "-" {
				_, err = c.Env.Stdout.Write(data)
				return err
			}
			if err := oauthparams.WriteFileAtomic(out, data, 0o600); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			what := "without secrets"
			if withSecrets {
				what = "with encrypted secrets"
			}
			fmt.Fprintf(c.Env.Stdout, "exported to %s (%s)\n", out, what)
			return nil
		},
	}
}

func paramsImportCommand() Command {
	var onConflict, passFile string
	var dryRun bool
	return Command{
		Name:    "import",
		Summary: "import parameter sets from a JSON file (all or nothing)",
		Usage:   "FILE",
		Help: `Checks the whole file first and changes nothing if any part is wrong, listing every
problem with its position. A set whose name exists already is handled by --on-conflict:
fail (default), skip, overwrite or rename ("Name (2)"). --dry-run only shows the plan.`,
		MinArgs: 1, MaxArgs: 1,
		Flags: func(c *Context) {
			c.Flags.StringVar(&onConflict, "on-conflict", "fail", "`RULE` for existing names: fail, skip, overwrite, rename")
			c.Flags.StringVar(&passFile, "passphrase-file", "", "passphrase of a file with secrets, from `FILE` (- for stdin)")
			c.Flags.BoolVar(&dryRun, "dry-run", false, "show what would be added, replaced, renamed or skipped; change nothing")
		},
		Run: func(c *Context) error {
			opts := oauthparams.ImportOptions{OnConflict: oauthparams.Conflict(onConflict)}
			switch opts.OnConflict {
			case oauthparams.ConflictFail, oauthparams.ConflictSkip, oauthparams.ConflictOverwrite, oauthparams.ConflictRename:
			default:
				return usageError{fmt.Sprintf("--on-conflict: want fail, skip, overwrite or rename, got %q", onConflict)}
			}
			if passFile != "" {
				var err error
				if opts.Passphrase, err = readSecretFile(passFile); err != nil {
					return err
				}
			}
			data, err := readLimited(c.Args[0], maxImportBytes)
			if err != nil {
				return err
			}
			s, err := c.openStore()
			if err != nil {
				return err
			}
			do := s.Import
			if dryRun {
				do = s.PlanImport
			}
			plan, err := do(data, opts)
			if err != nil {
				return fmt.Errorf("import %s: nothing changed: %w", c.Args[0], err)
			}
			for _, it := range plan.Items {
				switch it.Action {
				case "rename":
					fmt.Fprintf(c.Env.Stdout, "%-8s %s -> %s\n", it.Action, it.Name, it.FinalName)
				default:
					fmt.Fprintf(c.Env.Stdout, "%-8s %s\n", it.Action, it.Name)
				}
			}
			if dryRun {
				fmt.Fprintln(c.Env.Stdout, "(dry run: nothing changed)")
			}
			return nil
		},
	}
}

// readLimited reads a file, refusing one larger than limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes, too large for a parameter-set file", path, limit)
	}
	return b, nil
}
