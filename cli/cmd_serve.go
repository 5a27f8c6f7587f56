package cli

import (
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/mailwright/mailwright/task"
)

func serveCommand() Command {
	var status bool
	var retention time.Duration
	return Command{
		Name:    "serve",
		Summary: "run every enabled task on its triggers, headless, until stopped (SIGTERM/Ctrl-C)",
		Help: `Runs the triggers (cron, interval, once, new mail) of every enabled task in the data folder,
logging to stderr. Task files are re-read when they change. SIGTERM or Ctrl-C stops it: runs in
progress stop at a safe point and connections are closed. With --status it prints each task's
last run and next run instead.`,
		Flags: func(c *Context) {
			c.Flags.BoolVar(&status, "status", false, "print each task's last run and next run, then exit")
			c.Flags.DurationVar(&retention, "retention", 90*24*time.Hour, "delete run history older than `DURATION` (checkpoints are kept)")
		},
		Run: func(c *Context) error {
			dd, err := c.DataDir()
			if err != nil {
				return err
			}
			if status {
				return serveStatus(c, dd.Path)
			}
			eng, closeEng, err := c.engine(true)
			if err != nil {
				return err
			}
			defer closeEng()
			log := slog.New(slog.NewTextHandler(c.Env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			eng.Log = log
			if retention > 0 {
				if n, err := eng.History.Prune(time.Now().Add(-retention)); err != nil {
					log.Warn("could not prune the run history", "error", err.Error())
				} else if n > 0 {
					log.Info("pruned old runs from the history", "runs", n)
				}
			}
			log.Info("mailwright serve started", "data_dir", dd.Path, "version", c.Info.Version)
			s := &task.Scheduler{Engine: eng, Store: task.NewStore(dd.Path), Log: log}
			err = s.Run(c.Ctx)
			log.Info("mailwright serve stopped")
			return err
		},
	}
}

func serveStatus(c *Context, dir string) error {
	h, err := task.OpenHistory(dir)
	if err != nil {
		return err
	}
	defer h.Close()
	tasks, errs := task.NewStore(dir).List()
	for _, e := range errs {
		fmt.Fprintf(c.Env.Stderr, "mailwright: skipped %v\n", e)
	}
	next := task.NextRuns(tasks, time.Now(), h.LastFired)
	tw := tabwriter.NewWriter(c.Env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tENABLED\tLAST RUN\tOUTCOME\tLAST SUCCESS\tNEXT RUN")
	for _, t := range tasks {
		runs, err := h.Runs(t.Name, 200)
		if err != nil {
			return err
		}
		last, outcome, success := "-", "-", "-"
		if len(runs) > 0 {
			last, outcome = runs[0].Start.Format(time.DateTime), runs[0].Outcome
		}
		for _, r := range runs {
			if r.Outcome == task.OutcomeSuccess {
				success = r.Start.Format(time.DateTime)
				break
			}
		}
		nx := "-"
		if n, ok := next[t.Name]; ok {
			nx = n.Format(time.DateTime)
		} else if hasMailTrigger(t) && t.Enabled {
			nx = "on new mail"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\n", t.Name, t.Enabled, last, outcome, success, nx)
	}
	return tw.Flush()
}

func hasMailTrigger(t *task.Task) bool {
	for _, tr := range t.Triggers {
		if tr.Type == task.TriggerNewMail {
			return true
		}
	}
	return false
}
