package task

import (
	"context"
	"log/slog"
)

// watchLog signals each "watching for new mail" line.
type watchLog struct {
	ch   chan struct{}
	logf func(string, ...any)
}

func newWatchLog(ch chan struct{}, logf func(string, ...any)) *slog.Logger {
	return slog.New(&watchLog{ch: ch, logf: logf})
}

func (w *watchLog) Enabled(context.Context, slog.Level) bool { return true }
func (w *watchLog) Handle(_ context.Context, r slog.Record) error {
	var attrs []any
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a.Key+"="+a.Value.String()); return true })
	w.logf("%s %s %v", r.Level, r.Message, attrs)
	if r.Message == "watching for new mail" {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (w *watchLog) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *watchLog) WithGroup(string) slog.Handler      { return w }
