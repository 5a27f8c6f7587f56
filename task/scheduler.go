package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Clock is the scheduler's time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Scheduler runs the enabled tasks of a data folder on their triggers: `mailwright serve`.
type Scheduler struct {
	Engine *Engine
	Store  *Store
	Clock  Clock        // nil: the real clock
	Log    *slog.Logger // nil: discard
	// Reload is how often task files are checked for changes (default 2 s).
	Reload time.Duration
	// WatchMail runs a new_mail trigger until ctx ends, calling fire on new mail. nil
	// means the built-in IMAP IDLE watcher (MailWatcher).
	WatchMail func(ctx context.Context, t *Task, tr Trigger, fire func())
}

// entry is one timed trigger of one task.
type entry struct {
	task *Task
	idx  int
	tr   Trigger
	next time.Time
}

func (e *entry) key() string { return triggerKey(e.idx, e.tr) }

// triggerKey is the checkpoint under which the scheduler records when a task's trigger
// number idx last fired.
func triggerKey(idx int, tr Trigger) string { return "trigger:" + strconv.Itoa(idx) + ":" + tr.Type }

// LastFired returns when the scheduler last fired trigger number idx of t (zero when never
// or unknown); NextRuns takes it as its last function.
func (h *History) LastFired(t *Task, idx int, tr Trigger) time.Time {
	v, ok, err := h.Checkpoints(t.Name).Load(triggerKey(idx, tr))
	if err != nil || !ok {
		return time.Time{}
	}
	at, _ := time.Parse(time.RFC3339Nano, v)
	return at
}

// Run schedules until ctx is cancelled, then waits for the runs in progress (which see the
// cancellation and stop at a safe point) and returns.
func (s *Scheduler) Run(ctx context.Context) error {
	clock := s.Clock
	if clock == nil {
		clock = realClock{}
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reload := s.Reload
	if reload <= 0 {
		reload = 2 * time.Second
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	mailFired := make(chan *Task, 16)
	fire := func(t *Task, trigger string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Engine.Run(ctx, t, RunOptions{Trigger: trigger})
			switch {
			case errors.Is(err, ErrAlreadyRunning):
				log.Warn("skipped a run: the task is still running", "task", t.Name, "trigger", trigger)
			case err != nil:
				log.Error("could not run the task", "task", t.Name, "trigger", trigger, "error", err.Error())
			case res.Err != nil:
				log.Error("run failed", "task", t.Name, "trigger", trigger, "run", res.RunID, "error", res.Err.Error())
			default:
				log.Info("run succeeded", "task", t.Name, "trigger", trigger, "run", res.RunID, "messages", res.Items)
			}
		}()
	}

	var entries []*entry
	var sig string
	var stopWatchers context.CancelFunc = func() {}
	defer func() { stopWatchers() }()
	load := func(now time.Time) {
		newSig := s.signature()
		if newSig == sig {
			return
		}
		sig = newSig
		tasks, errs := s.Store.List()
		for _, err := range errs {
			log.Error("task file skipped", "error", err.Error())
		}
		old := map[string]time.Time{}
		for _, e := range entries {
			old[e.task.Name+"\x00"+e.key()+"\x00"+e.tr.Cron+e.tr.Every+e.tr.At] = e.next
		}
		stopWatchers()
		wctx, cancel := context.WithCancel(ctx)
		stopWatchers = cancel
		entries = entries[:0]
		for _, t := range tasks {
			if !t.Enabled {
				continue
			}
			if err := Validate(t, s.Engine.Registry); err != nil {
				log.Error("task not scheduled: it has problems (mailwright task validate shows them)", "task", t.Name, "error", err.Error())
				continue
			}
			for i, tr := range t.Triggers {
				e := &entry{task: t, idx: i, tr: tr}
				if tr.Type == TriggerNewMail {
					s.startWatcher(wctx, t, tr, mailFired, log)
					continue
				}
				if n, ok := old[t.Name+"\x00"+e.key()+"\x00"+tr.Cron+tr.Every+tr.At]; ok {
					e.next = n
				} else {
					last := s.lastFire(t, e)
					if tr.Missed == "run_once" && tr.WasMissed(last, now) {
						log.Info("running a missed run", "task", t.Name, "trigger", tr.Type, "last", last)
						s.saveFire(t, e, now, log)
						fire(t, tr.Type+" (missed)")
						last = now
					}
					e.next = tr.Next(now, last)
				}
				if !e.next.IsZero() {
					entries = append(entries, e)
				}
			}
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].next.Before(entries[j].next) })
		log.Info("schedule loaded", "tasks", len(tasks), "timed_triggers", len(entries))
	}

	now := clock.Now()
	load(now)
	nextReload := now.Add(reload)
	for {
		wait := nextReload.Sub(now)
		for _, e := range entries {
			if d := e.next.Sub(now); d < wait {
				wait = d
			}
		}
		if wait < 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			log.Info("stopping: waiting for runs in progress to reach a safe point")
			return nil
		case t := <-mailFired:
			fire(t, TriggerNewMail)
		case <-clock.After(wait):
		}
		now = clock.Now()
		kept := entries[:0]
		for _, e := range entries {
			if !e.next.After(now) {
				s.saveFire(e.task, e, e.next, log)
				fire(e.task, e.tr.Type)
				e.next = e.tr.Next(now, e.next)
			}
			if !e.next.IsZero() {
				kept = append(kept, e)
			}
		}
		entries = kept
		if !now.Before(nextReload) {
			load(now)
			nextReload = now.Add(reload)
		}
	}
}

// signature changes when a task file is added, removed or modified.
func (s *Scheduler) signature() string {
	ents, err := os.ReadDir(s.Store.Dir())
	if err != nil {
		return "err:" + err.Error()
	}
	var b strings.Builder
	for _, e := range ents {
		if info, err := e.Info(); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	return b.String()
}

func (s *Scheduler) lastFire(t *Task, e *entry) time.Time {
	return s.Engine.History.LastFired(t, e.idx, e.tr)
}

func (s *Scheduler) saveFire(t *Task, e *entry, at time.Time, log *slog.Logger) {
	if err := s.Engine.History.Checkpoints(t.Name).Store(e.key(), at.UTC().Format(time.RFC3339Nano)); err != nil {
		log.Warn("could not record when the trigger fired", "task", t.Name, "error", err.Error())
	}
}

func (s *Scheduler) startWatcher(ctx context.Context, t *Task, tr Trigger, fired chan<- *Task, log *slog.Logger) {
	watch := s.WatchMail
	if watch == nil {
		mw := &MailWatcher{Tokens: s.Engine.Tokens, Log: log, Clock: s.Clock}
		watch = mw.Watch
	}
	go watch(ctx, t, tr, func() {
		select {
		case fired <- t:
		case <-ctx.Done():
		}
	})
}

// NextRuns returns, for `serve --status`, when each enabled task's timed triggers fire next
// after now.
func NextRuns(tasks []*Task, now time.Time, last func(t *Task, idx int, tr Trigger) time.Time) map[string]time.Time {
	out := map[string]time.Time{}
	for _, t := range tasks {
		if !t.Enabled {
			continue
		}
		for i, tr := range t.Triggers {
			n := tr.Next(now, last(t, i, tr))
			if n.IsZero() {
				continue
			}
			if cur, ok := out[t.Name]; !ok || n.Before(cur) {
				out[t.Name] = n
			}
		}
	}
	return out
}
