package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/mailwright/mailwright/task"
)

func historyCommand() Command {
	var asJSON *bool
	var taskName string
	var limit int
	return Command{
		Name:    "history",
		Summary: "recent runs (newest first); history show RUNID prints one run's log",
		Usage:   "[show RUNID]",
		MaxArgs: 2,
		Flags: func(c *Context) {
			asJSON = jsonFlag(c)
			c.Flags.StringVar(&taskName, "task", "", "only runs of task `NAME`")
			c.Flags.IntVar(&limit, "limit", 20, "show at most `N` runs")
		},
		Run: func(c *Context) error {
			dd, err := c.DataDir()
			if err != nil {
				return err
			}
			if err := ensureDataDir(dd.Path); err != nil {
				return err
			}
			h, err := task.OpenHistory(dd.Path)
			if err != nil {
				return err
			}
			defer h.Close()
			if len(c.Args) > 0 {
				if c.Args[0] != "show" || len(c.Args) != 2 {
					return usageError{"usage: mailwright history [show RUNID]"}
				}
				run, lines, err := h.Run(c.Args[1])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(c.Env.Stdout, map[string]any{"run": run, "log": lines})
				}
				fmt.Fprintf(c.Env.Stdout, "run %s of %q (%s): %s, started %s", run.ID, run.Task, run.Trigger, run.Outcome, run.Start.Format(time.DateTime))
				if !run.End.IsZero() {
					fmt.Fprintf(c.Env.Stdout, ", took %s", run.End.Sub(run.Start).Round(time.Millisecond))
				}
				fmt.Fprintln(c.Env.Stdout)
				if run.Error != "" {
					fmt.Fprintf(c.Env.Stdout, "error: %s\n", run.Error)
				}
				for _, l := range lines {
					fmt.Fprintf(c.Env.Stdout, "%s %-5s %s %s %s\n", l.Time.Format("15:04:05.000"), l.Level, l.Step, l.Message, l.Attrs)
				}
				return nil
			}
			runs, err := h.Runs(taskName, limit)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(c.Env.Stdout, runs)
			}
			if len(runs) == 0 {
				fmt.Fprintln(c.Env.Stdout, "No runs yet.")
				return nil
			}
			tw := tabwriter.NewWriter(c.Env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tTASK\tSTARTED\tOUTCOME\tMESSAGES\tERROR")
			for _, r := range runs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Task, r.Start.Format(time.DateTime), r.Outcome, r.Items, clipText(r.Error, 80))
			}
			return tw.Flush()
		},
	}
}

func clipText(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
