package app

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// runLogHandler is the slog.Handler of the Run view: it formats each line of level Info and
// above and queues it for the log list (the flusher shows it).
type runLogHandler struct {
	v      *RunView
	attrs  []slog.Attr
	prefix string // group prefix, "g." for WithGroup("g")
}

// Enabled implements slog.Handler.
func (h *runLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

// Handle implements slog.Handler.
func (h *runLogHandler) Handle(_ context.Context, r slog.Record) error {
	var step string
	var b strings.Builder
	add := func(prefix string, a slog.Attr) {
		switch a.Key {
		case "step":
			if prefix == "" {
				step = a.Value.String()
				return
			}
		case "task", "run", "action":
			if prefix == "" {
				return
			}
		}
		fmt.Fprintf(&b, " %s%s=%s", prefix, a.Key, runQuote(a.Value.Resolve().String()))
	}
	for _, a := range h.attrs {
		add("", a)
	}
	r.Attrs(func(a slog.Attr) bool { add(h.prefix, a); return true })
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	line := t.Format("15:04:05") + " " + fmt.Sprintf("%-5s", r.Level.String())
	if step != "" {
		line += " " + step
	}
	line += " " + r.Message + b.String()
	h.v.addLine(line)
	return nil
}

// WithAttrs implements slog.Handler.
func (h *runLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		if h.prefix != "" {
			a.Key = h.prefix + a.Key
		}
		c.attrs = append(c.attrs, a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *runLogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

// runQuote quotes a value that has spaces or quotes in it.
func runQuote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		return strconv.Quote(s)
	}
	return s
}
