package cli

import (
	"fmt"
	"os"
)

func versionCommand() Command {
	return Command{
		Name:    "version",
		Summary: "print the version",
		Run: func(c *Context) error {
			_, err := fmt.Fprintf(c.Env.Stdout, "mailwright %s (build %d)\n", c.Info.Version, c.Info.Build)
			return err
		},
	}
}

func infoCommand() Command {
	return Command{
		Name:    "info",
		Summary: "show the data folder and where that choice came from",
		Run: func(c *Context) error {
			dd, err := c.DataDir()
			if err != nil {
				return err
			}
			state := "exists"
			if _, err := os.Stat(dd.Path); os.IsNotExist(err) {
				state = "not created yet"
			} else if err != nil {
				state = "unreadable: " + err.Error()
			}
			fmt.Fprintf(c.Env.Stdout, "version:     %s (build %d)\n", c.Info.Version, c.Info.Build)
			fmt.Fprintf(c.Env.Stdout, "data folder: %s (%s; %s)\n", dd.Path, dd.Source, state)
			return nil
		},
	}
}

func helpCommand() Command {
	return Command{
		Name:    "help",
		Summary: "show this help, or a command's help",
		Usage:   "[COMMAND]",
		MaxArgs: 1,
		Run: func(c *Context) error {
			if len(c.Args) == 0 {
				writeMainUsage(c.Env.Stdout, c.Info)
				return nil
			}
			cmd, ok := findCommand(commands(), c.Args[0])
			if !ok {
				return usageError{fmt.Sprintf("unknown command %q; run 'mailwright --help' for the list", c.Args[0])}
			}
			fs := newFlagSet("mailwright "+cmd.Name, c.globals)
			sub := &Context{Ctx: c.Ctx, Env: c.Env, Info: c.Info, Flags: fs, globals: c.globals}
			if cmd.Flags != nil {
				cmd.Flags(sub)
			}
			writeCommandUsage(c.Env.Stdout, cmd, fs)
			return nil
		},
	}
}
