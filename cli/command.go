package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mailwright/mailwright/internal/buildinfo"
)

// Command is one `mailwright <name>` subcommand.
type Command struct {
	Name    string               // what the user types
	Summary string               // one line for the command list
	Usage   string               // argument synopsis, e.g. "[NAME]"
	Help    string               // longer text for `mailwright NAME --help`
	MinArgs int                  // positional arguments required
	MaxArgs int                  // positional arguments allowed; -1 for any number
	Sub     []Command            // subcommands (`mailwright params list`); then Run is unused
	Flags   func(c *Context)     // registers the command's own flags on c.Flags
	Run     func(*Context) error // does the work
}

// Context is what a command runs with.
type Context struct {
	Ctx   context.Context // cancelled on Ctrl-C or SIGTERM
	Env   *Env
	Info  buildinfo.Info
	Flags *flag.FlagSet // the command's flags (the global ones included)
	Args  []string      // positional arguments
	Path  string        // the command as typed, e.g. "mailwright params list"

	globals *globals
}

// DataDir resolves the data folder from --data-dir, MAILWRIGHT_DATA_DIR or the default.
func (c *Context) DataDir() (DataDir, error) {
	return resolveDataDir(c.globals.dataDir, c.Env.Getenv)
}

// commands lists every subcommand, in the order help shows them.
func commands() []Command {
	return []Command{
		paramsCommand(),
		taskCommand(),
		historyCommand(),
		serveCommand(),
		infoCommand(),
		versionCommand(),
		helpCommand(),
	}
}

func findCommand(cmds []Command, name string) (Command, bool) {
	for _, c := range cmds {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

func writeMainUsage(w io.Writer, info buildinfo.Info) {
	fmt.Fprintf(w, "%s %s: email automation with OAuth 2.0, in a window or headless.\n\n", info.Name, info.Version)
	fmt.Fprintf(w, "Usage:\n  mailwright [--data-dir DIR]                    open the window\n")
	fmt.Fprintf(w, "  mailwright [--data-dir DIR] <command> [flags]   run headless (no display needed)\n\n")
	fmt.Fprintf(w, "Commands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n  --data-dir DIR   data folder (env %s; default %s)\n", envDataDir, defaultDataDirHint())
	fmt.Fprintf(w, "\nRun 'mailwright <command> --help' for a command's flags.\n")
}

func writeCommandUsage(w io.Writer, path string, c Command, fs *flag.FlagSet) {
	if len(c.Sub) > 0 {
		fmt.Fprintf(w, "Usage: %s <command> [flags]\n\n%s\n\nCommands:\n", path, c.Summary)
		for _, sc := range c.Sub {
			fmt.Fprintf(w, "  %-10s %s\n", sc.Name, sc.Summary)
		}
		fmt.Fprintf(w, "\nRun '%s <command> --help' for a command's flags.\n", path)
		return
	}
	fmt.Fprintf(w, "Usage: %s [flags] %s\n\n%s\n", path, c.Usage, c.Summary)
	if c.Help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Help))
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n      %s\n", f.Name, name, usage)
	})
}
