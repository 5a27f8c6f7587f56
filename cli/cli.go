// Package cli is Mailwright's headless face: `mailwright <command>` parses its flags here and
// runs without touching the graphics driver, so scheduled runs work on servers with no
// display. With no command, Main hands over to the window through Env.GUI.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mailwright/mailwright/internal/buildinfo"
)

// ExitUsage is the exit code for an unknown command or flag, as with most Unix tools.
const ExitUsage = 2

// GUI opens the window on a data folder and returns when the window closes.
type GUI func(dataDir string, info buildinfo.Info) error

// Env is everything Main needs from the outside world, so tests can run it in-process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string // os.Getenv when nil
	FyneApp        []byte              // contents of FyneApp.toml (the version's one source)
	GUI            GUI                 // nil in a headless build (-tags nogui)
}

// usageError marks errors that should exit with ExitUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Main runs Mailwright with the given arguments (without the program name) and returns the
// process exit code.
func Main(args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, args, &env)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(env.Stderr, "mailwright: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return 1
}

func run(ctx context.Context, args []string, env *Env) error {
	info, err := buildinfo.Parse(env.FyneApp)
	if err != nil {
		return fmt.Errorf("build metadata: %w", err)
	}
	g := &globals{}
	fs := newFlagSet("mailwright", g)
	if err := parseFlags(fs, args, "mailwright"); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeMainUsage(env.Stdout, info)
		}
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return openWindow(g, env, info)
	}
	c := &Context{Ctx: ctx, Env: env, Info: info, globals: g}
	return runCommand(c, "mailwright", commands(), rest)
}

// runCommand finds the command named by args[0] among cmds, parses its flags (anywhere
// among its arguments) and runs it, or descends into its subcommands.
func runCommand(c *Context, parent string, cmds []Command, args []string) error {
	cmd, ok := findCommand(cmds, args[0])
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q; run '%s --help' for the list", args[0], parent)}
	}
	path := parent + " " + cmd.Name
	fs := newFlagSet(path, c.globals)
	c.Flags, c.Path = fs, path
	if cmd.Flags != nil {
		cmd.Flags(c)
	}
	if len(cmd.Sub) > 0 {
		// Only the global flags come before a subcommand's name.
		if err := parseFlags(fs, args[1:], path); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				writeCommandUsage(c.Env.Stdout, path, cmd, fs)
			}
			return err
		}
		if fs.NArg() == 0 {
			names := make([]string, len(cmd.Sub))
			for i, sc := range cmd.Sub {
				names[i] = sc.Name
			}
			return usageError{fmt.Sprintf("%s needs a subcommand (%s); run '%s --help'", path, strings.Join(names, ", "), path)}
		}
		return runCommand(c, path, cmd.Sub, fs.Args())
	}
	positional, err := parseInterspersed(fs, args[1:], path)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeCommandUsage(c.Env.Stdout, path, cmd, fs)
		}
		return err
	}
	c.Args = positional
	if len(c.Args) < cmd.MinArgs {
		return usageError{fmt.Sprintf("%s needs %s; run '%s --help'", path, cmd.Usage, path)}
	}
	if cmd.MaxArgs >= 0 && len(c.Args) > cmd.MaxArgs {
		return usageError{fmt.Sprintf("%s: unexpected argument %q; run '%s --help'", path, c.Args[cmd.MaxArgs], path)}
	}
	return cmd.Run(c)
}

// parseInterspersed parses flags that may stand before, between or after positional
// arguments (`params show Work --json`); after "--" everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string, who string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args, who); err != nil {
			return nil, err
		}
		consumed := len(args) - fs.NArg()
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, fs.Args()...), nil
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// openWindow starts the GUI on the chosen data folder, creating it (0700) if needed.
func openWindow(g *globals, env *Env, info buildinfo.Info) error {
	if env.GUI == nil {
		return usageError{"this build has no window (built with -tags nogui); run 'mailwright --help' for the commands"}
	}
	dd, err := resolveDataDir(g.dataDir, env.Getenv)
	if err != nil {
		return err
	}
	if err := ensureDataDir(dd.Path); err != nil {
		return err
	}
	return env.GUI(dd.Path, info)
}

// parseFlags parses with the flag package but turns its multi-line complaints into one line.
func parseFlags(fs *flag.FlagSet, args []string, who string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		msg = "unknown flag " + name
	}
	return usageError{fmt.Sprintf("%s; run '%s --help'", msg, who)}
}

func newFlagSet(name string, g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // parseFlags reports errors in one line; help is printed by the caller
	fs.StringVar(&g.dataDir, "data-dir", g.dataDir, "`DIR`: the data folder (env "+envDataDir+")")
	return fs
}

// globals are the flags every command accepts.
type globals struct {
	dataDir string
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
