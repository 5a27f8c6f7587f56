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
	cmds := commands()
	if len(rest) == 0 {
		return openWindow(g, env, info)
	}
	name := rest[0]
	cmd, ok := findCommand(cmds, name)
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q; run 'mailwright --help' for the list", name)}
	}
	cfs := newFlagSet("mailwright "+cmd.Name, g)
	c := &Context{Ctx: ctx, Env: env, Info: info, globals: g, Flags: cfs}
	if cmd.Flags != nil {
		cmd.Flags(c)
	}
	if err := parseFlags(cfs, rest[1:], "mailwright "+cmd.Name); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeCommandUsage(env.Stdout, cmd, cfs)
		}
		return err
	}
	c.Args = cfs.Args()
	if cmd.MaxArgs >= 0 && len(c.Args) > cmd.MaxArgs {
		return usageError{fmt.Sprintf("%s: unexpected argument %q; run 'mailwright %s --help'", cmd.Name, c.Args[cmd.MaxArgs], cmd.Name)}
	}
	return cmd.Run(c)
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
