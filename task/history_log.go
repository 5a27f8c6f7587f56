package task

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// RunLog stores a run's log lines in the history. Lines are written in batches (at most
// logBatch lines or at every warning or error) to keep fsyncs out of the per-message path;
// Flush writes the rest.
type RunLog struct {
	h     *History
	runID string
	mu    sync.Mutex
	seq   int
	buf   []LogLine
	err   error
}

const logBatch = 200

// logRowsPerInsert is how many log lines one INSERT statement writes (7 parameters each;
// SQLite allows 32,766).
const logRowsPerInsert = 100

// NewRunLog returns the log of run runID.
func (h *History) NewRunLog(runID string) *RunLog { return &RunLog{h: h, runID: runID} }

// Handler returns an slog.Handler that records lines into the run's log and passes them on
// to next (nil: only recorded).
func (l *RunLog) Handler(next slog.Handler) slog.Handler {
	return &runLogHandler{l: l, next: next}
}

func (l *RunLog) add(line LogLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, line)
	if len(l.buf) >= logBatch || line.Level == slog.LevelWarn.String() || line.Level == slog.LevelError.String() {
		l.flushLocked()
	}
}

// Flush writes the buffered lines and returns the first write error, if any.
func (l *RunLog) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	return l.err
}

func (l *RunLog) flushLocked() {
	if len(l.buf) == 0 {
		return
	}
	tx, err := l.h.db.Begin()
	if err == nil {
		// Many rows per INSERT: modernc's sqlite compiles a statement at every Exec, even a
		// prepared one, and that was half the cost of logging a downloaded message.
		for rest := l.buf; len(rest) > 0 && err == nil; {
			n := min(len(rest), logRowsPerInsert)
			var q strings.Builder
			q.WriteString(`INSERT INTO logs(run_id, seq, time_ms, level, step, message, attrs) VALUES `)
			args := make([]any, 0, 7*n)
			for i, ln := range rest[:n] {
				if i > 0 {
					q.WriteString(",")
				}
				q.WriteString("(?, ?, ?, ?, ?, ?, ?)")
				l.seq++
				args = append(args, l.runID, l.seq, ln.Time.UnixMilli(), ln.Level, ln.Step, ln.Message, ln.Attrs)
			}
			_, err = tx.Exec(q.String(), args...)
			rest = rest[n:]
		}
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
	}
	l.buf = l.buf[:0]
	if err != nil && l.err == nil {
		l.err = fmt.Errorf("write log of run %s: %w", l.runID, err)
	}
}

type runLogHandler struct {
	l     *RunLog
	next  slog.Handler
	attrs []slog.Attr
	group string
}

func (h *runLogHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= slog.LevelInfo || (h.next != nil && h.next.Enabled(ctx, lv))
}

func (h *runLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		var step string
		var b strings.Builder
		add := func(a slog.Attr) {
			switch a.Key {
			case "step":
				step = a.Value.String()
				return
			case "task", "run":
				return
			}
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%q", a.Key, a.Value.String())
		}
		for _, a := range h.attrs {
			add(a)
		}
		r.Attrs(func(a slog.Attr) bool { add(a); return true })
		t := r.Time
		if t.IsZero() {
			t = time.Now()
		}
		h.l.add(LogLine{Time: t, Level: r.Level.String(), Step: step, Message: r.Message, Attrs: b.String()})
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *runLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	if h.next != nil {
		c.next = h.next.WithAttrs(as)
	}
	return &c
}

func (h *runLogHandler) WithGroup(name string) slog.Handler {
	c := *h
	if h.next != nil {
		c.next = h.next.WithGroup(name)
	}
	return &c
}
