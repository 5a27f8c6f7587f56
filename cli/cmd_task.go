package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/oauthparams"
	"github.com/mailwright/mailwright/task"
	"golang.org/x/oauth2"
)

func taskCommand() Command {
	return Command{
		Name:    "task",
		Summary: "tasks: list, validate, run, import, export, delete",
		Sub:     []Command{taskListCommand(), taskValidateCommand(), taskRunCommand(), taskImportCommand(), taskExportCommand(), taskDeleteCommand()},
	}
}

// loadTask reads a task from a file path (anything with a path separator or ending in
// .json that exists) or, otherwise, by name from the data folder.
func (c *Context) loadTask(ref string) (*task.Task, error) {
	if strings.HasSuffix(ref, ".json") || strings.ContainsRune(ref, filepath.Separator) {
		if _, err := os.Stat(ref); err == nil {
			return task.LoadFile(ref)
		}
	}
	dd, err := c.DataDir()
	if err != nil {
		return nil, err
	}
	return task.NewStore(dd.Path).Get(ref)
}

func taskListCommand() Command {
	var asJSON *bool
	return Command{
		Name:    "list",
		Summary: "list the tasks of the data folder",
		Flags:   func(c *Context) { asJSON = jsonFlag(c) },
		Run: func(c *Context) error {
			dd, err := c.DataDir()
			if err != nil {
				return err
			}
			tasks, errs := task.NewStore(dd.Path).List()
			for _, e := range errs {
				fmt.Fprintf(c.Env.Stderr, "mailwright: skipped %v\n", e)
			}
			if *asJSON {
				return writeJSON(c.Env.Stdout, tasks)
			}
			if len(tasks) == 0 {
				fmt.Fprintln(c.Env.Stdout, "No tasks yet: mailwright task import FILE adds one.")
				return nil
			}
			tw := tabwriter.NewWriter(c.Env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tENABLED\tTRIGGERS\tSTEPS\tDESCRIPTION")
			for _, t := range tasks {
				fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%s\n", t.Name, t.Enabled, len(t.Triggers), len(t.Steps), t.Description)
			}
			return tw.Flush()
		},
	}
}

func taskValidateCommand() Command {
	return Command{
		Name:    "validate",
		Summary: "check task files: actions, parameters, variables, triggers (every problem at once)",
		Usage:   "FILE|NAME...",
		MinArgs: 1, MaxArgs: -1,
		Run: func(c *Context) error {
			reg := actions.NewDefaultRegistry()
			bad := 0
			for _, ref := range c.Args {
				t, err := c.loadTask(ref)
				if err == nil {
					err = task.Validate(t, reg)
				}
				if err != nil {
					bad++
					fmt.Fprintf(c.Env.Stdout, "%s: %v\n", ref, err)
					continue
				}
				fmt.Fprintf(c.Env.Stdout, "%s: ok\n", ref)
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d task(s) have problems", bad, len(c.Args))
			}
			return nil
		},
	}
}

// varFlags collects repeated --var NAME=VALUE.
type varFlags map[string]string

func (v varFlags) String() string { return "" }

func (v varFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || !task.ValidName(name) {
		return fmt.Errorf("--var wants NAME=VALUE with a variable name, got %q", s)
	}
	v[name] = value
	return nil
}

func taskRunCommand() Command {
	vars := varFlags{}
	var quiet, dryRun bool
	return Command{
		Name:    "run",
		Summary: "run a task now, headless; progress on stderr, exit 1 if it fails",
		Usage:   "FILE|NAME",
		Help: `Runs the task once, as a scheduled run would: the run, its log and the mailbox checkpoints
are recorded in the history of the data folder. Ctrl-C stops it at a safe point.`,
		MinArgs: 1, MaxArgs: 1,
		Flags: func(c *Context) {
			c.Flags.Var(vars, "var", "set a task variable: `NAME=VALUE` (repeatable)")
			c.Flags.BoolVar(&quiet, "quiet", false, "print only the summary")
			c.Flags.BoolVar(&dryRun, "dry-run", false, "connect and show what would be touched, but change no flags, move or delete nothing, send nothing")
		},
		Run: func(c *Context) error {
			t, err := c.loadTask(c.Args[0])
			if err != nil {
				return err
			}
			eng, closeEng, err := c.engine(quiet)
			if err != nil {
				return err
			}
			defer closeEng()
			trigger := "manual"
			if dryRun {
				trigger = "dry-run"
			}
			res, err := eng.Run(c.Ctx, t, task.RunOptions{Vars: vars, Trigger: trigger, DryRun: dryRun})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.Env.Stderr, "run %s of %q: %s in %s (%d steps, %d messages, %d failed steps)\n",
				res.RunID, t.Name, res.Outcome, res.End.Sub(res.Start).Round(time.Millisecond), res.Steps, res.Items, res.Failures)
			if res.Err != nil {
				return res.Err
			}
			return nil
		},
	}
}

// engine builds the task engine of the data folder; progress goes to stderr unless quiet.
func (c *Context) engine(quiet bool) (*task.Engine, func(), error) {
	dd, err := c.DataDir()
	if err != nil {
		return nil, nil, err
	}
	if err := ensureDataDir(dd.Path); err != nil {
		return nil, nil, err
	}
	h, err := task.OpenHistory(dd.Path)
	if err != nil {
		return nil, nil, err
	}
	eng := &task.Engine{DataDir: dd.Path, Registry: actions.NewDefaultRegistry(), History: h, Tasks: task.NewStore(dd.Path),
		Tokens: &lazyTokens{open: c.openStore}}
	if !quiet {
		eng.Log = slog.New(slog.NewTextHandler(c.Env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		eng.Events = progressPrinter(c.Env.Stderr)
	}
	return eng, func() { h.Close() }, nil
}

// progressPrinter prints loop progress ("message 3 of 120") at most a few times a second.
func progressPrinter(w io.Writer) func(task.Event) {
	var last time.Time
	return func(e task.Event) {
		if e.Kind != task.EventProgress || time.Since(last) < 500*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "  %s: %s\n", e.Path, e.What)
	}
}

// lazyTokens opens the parameter-set store only when a step needs a token, so tasks that
// use passwords run without a keyring or passphrase.
type lazyTokens struct {
	open func() (*oauthparams.Store, error)
	once sync.Once
	tp   actions.TokenProvider
	err  error
}

func (l *lazyTokens) get() (actions.TokenProvider, error) {
	l.once.Do(func() {
		s, err := l.open()
		if err != nil {
			l.err = fmt.Errorf("open OAuth parameter sets: %w", err)
			return
		}
		l.tp = actions.NewTokenProvider(s, oauthparams.NewTokenManager(s, nil))
	})
	return l.tp, l.err
}

func (l *lazyTokens) Token(ctx context.Context, set string) (*oauth2.Token, error) {
	tp, err := l.get()
	if err != nil {
		return nil, err
	}
	return tp.Token(ctx, set)
}

func (l *lazyTokens) ForceRefresh(ctx context.Context, set, rejected string) (*oauth2.Token, error) {
	tp, err := l.get()
	if err != nil {
		return nil, err
	}
	return tp.ForceRefresh(ctx, set, rejected)
}

func (l *lazyTokens) Account(set string) (string, error) {
	tp, err := l.get()
	if err != nil {
		return "", err
	}
	return tp.Account(set)
}

func taskImportCommand() Command {
	var replace bool
	return Command{
		Name:    "import",
		Summary: "add task files to the data folder (validated first)",
		Usage:   "FILE...",
		MinArgs: 1, MaxArgs: -1,
		Flags: func(c *Context) {
			c.Flags.BoolVar(&replace, "replace", false, "replace a task of the same name")
		},
		Run: func(c *Context) error {
			dd, err := c.DataDir()
			if err != nil {
				return err
			}
			st := task.NewStore(dd.Path)
			reg := actions.NewDefaultRegistry()
			var ts []*task.Task
			seen := map[string]string{}
			for _, f := range c.Args {
				t, err := task.LoadFile(f)
				if err != nil {
					return err
				}
				if err := task.Validate(t, reg); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				key := task.FileName(t.Name)
				if other, dup := seen[key]; dup {
					return fmt.Errorf("%s: task %q is also in %s: import one of them", f, t.Name, other)
				}
				seen[key] = f
				if _, err := st.Get(t.Name); err == nil && !replace {
					return fmt.Errorf("%s: a task named %q exists already: use --replace", f, t.Name)
				}
				ts = append(ts, t)
			}
			for _, t := range ts {
				if err := st.Put(t); err != nil {
					return err
				}
				fmt.Fprintf(c.Env.Stdout, "imported %q\n", t.Name)
			}
			return nil
		},
	}
}

func taskExportCommand() Command {
	var out string
	return Command{
		Name:    "export",
		Summary: "write a task to a file (parameter sets are referred to by name, not copied)",
		Usage:   "NAME",
		MinArgs: 1, MaxArgs: 1,
		Flags: func(c *Context) {
			c.Flags.StringVar(&out, "out", "-", "write to `FILE` (- for standard output)")
		},
		Run: func(c *Context) error {
			t, err := c.loadTask(c.Args[0])
			if err != nil {
				return err
			}
			data, err := t.Marshal()
			if err != nil {
				return err
			}
			if out == "-" {
				_, err = c.Env.Stdout.Write(data)
				return err
			}
			if err := oauthparams.WriteFileAtomic(out, data, 0o600); err != nil {
				return fmt.Errorf("export task %q: %w", t.Name, err)
			}
			return nil
		},
	}
}

func taskDeleteCommand() Command {
	return Command{
		Name:    "delete",
		Summary: "delete a task (its run history stays)",
		Usage:   "NAME",
		MinArgs: 1, MaxArgs: 1,
		Run: func(c *Context) error {
			dd, err := c.DataDir()
			if err != nil {
				return err
			}
			if err := task.NewStore(dd.Path).Delete(c.Args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.Env.Stdout, "deleted %q\n", c.Args[0])
			return nil
		},
	}
}
