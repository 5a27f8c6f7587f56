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
		Usage:   "[COMMAND [SUBCOMMAND]]",
		MaxArgs: 2,
		Run: func(c *Context) error {
			if len(c.Args) == 0 {
				writeMainUsage(c.Env.Stdout, c.Info)
				return nil
			}
			// `help X Y` is `X Y --help`.
			return runCommand(c, "mailwright", commands(), append(c.Args, "--help"))
		},
	}
}
