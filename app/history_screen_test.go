package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/task"
)

// histRecord stores a finished run with log lines at fixed times, as the engine would.
func histRecord(t *testing.T, s *Services, id, name, trigger string, start time.Time, took time.Duration, outcome string, items, failures int, runErr error, lines ...string) {
	t.Helper()
	if err := s.History.BeginRun(context.Background(), id, name, trigger, start); err != nil {
		t.Fatal(err)
	}
	rl := s.History.NewRunLog(id)
	hd := rl.Handler(nil)
	for i, l := range lines {
		lvl := slog.LevelInfo
		if strings.HasPrefix(l, "WARN ") {
			lvl, l = slog.LevelWarn, strings.TrimPrefix(l, "WARN ")
		}
		step, msg, ok := strings.Cut(l, ": ")
		r := slog.NewRecord(start.Add(time.Duration(i)*took/time.Duration(len(lines))), lvl, l, 0)
		if ok && strings.HasPrefix(step, "steps[") {
			r = slog.NewRecord(r.Time, lvl, msg, 0)
			r.AddAttrs(slog.String("step", step))
		}
		if err := hd.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := rl.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.History.EndRun(&task.Result{RunID: id, Task: name, Start: start, End: start.Add(took), Outcome: outcome,
		Items: items, Failures: failures, Steps: items + 2, Err: runErr}); err != nil {
		t.Fatal(err)
	}
}

// histSeed stores three runs of two tasks.
func histSeed(t *testing.T, s *Services) {
	day := time.Date(2026, 3, 2, 7, 0, 0, 0, time.Local)
	histRecord(t, s, "20260302T060000Z-aaaa", "Save invoices", "new_mail", day, 3200*time.Millisecond, task.OutcomeSuccess, 3, 0, nil,
		"run started", "steps[0]: imap open: logged in", "steps[2].body[0]: imap message downloaded", "steps[2].body[0]: imap message downloaded",
		"steps[2].body[0]: imap message downloaded", "run ended")
	histRecord(t, s, "20260302T070000Z-bbbb", "Morning report", "cron", day.Add(time.Hour), 1400*time.Millisecond, task.OutcomeFailed, 0, 1,
		errors.New("steps[1] (SMTP Send): 535 5.7.8 authentication failed: the app password was revoked"),
		"run started", "WARN steps[1]: step failed", "run ended")
	histRecord(t, s, "20260302T080000Z-cccc", "Save invoices", "manual", day.Add(2*time.Hour), 42*time.Second, task.OutcomeCancelled, 120, 0,
		errors.New("cancelled during steps[2].body[0] (IMAP Download Message): context canceled"),
		"run started", "run cancelled", "run ended")
}

// TestHistoryScreen: the table lists every run newest first, the task filter narrows it,
// and selecting a run shows its step log.
func TestHistoryScreen(t *testing.T) {
	test.NewTempApp(t)
	s := runTestServices(t)
	histSeed(t, s)
	w := test.NewWindow(nil)
	defer w.Close()
	var h *HistoryScreen
	runUI(func() {
		h = NewHistoryScreen(s, w)
		w.SetContent(h.Content())
		w.Resize(fyne.NewSize(1100, 620))
	})
	runEventually(t, 10*time.Second, "three runs", func() bool { return len(h.runs) == 3 })
	runUI(func() {
		if h.runs[0].ID != "20260302T080000Z-cccc" || h.runs[2].ID != "20260302T060000Z-aaaa" {
			t.Errorf("order: %s … %s", h.runs[0].ID, h.runs[2].ID)
		}
		want := []string{"Morning report", "2026-03-02 08:00:00", "1.4s", "failed", "cron", "0", "1", "steps[1] (SMTP Send): 535 5.7.8 authentication failed: the app password was revoked"}
		for col, wv := range want {
			if got := histCell(h.runs[1], col); got != wv {
				t.Errorf("column %d: %q, want %q", col, got, wv)
			}
		}
		if got := strings.Join(h.Filter.Options, "|"); got != "All tasks|Morning report|Save invoices" {
			t.Errorf("filter options %q", got)
		}
		h.Filter.SetSelected("Save invoices")
	})
	runEventually(t, 10*time.Second, "the filter", func() bool { return len(h.runs) == 2 })
	runUI(func() {
		for _, r := range h.runs {
			if r.Task != "Save invoices" {
				t.Errorf("filtered list has %q", r.Task)
			}
		}
		h.Table.Select(widget.TableCellID{Row: 1, Col: 2})
	})
	runEventually(t, 10*time.Second, "the log", func() bool { return len(h.logLines) == 6 })
	runUI(func() {
		if !strings.Contains(h.RunInfo.Text, "success") || !strings.Contains(h.RunInfo.Text, "3 messages") {
			t.Errorf("run info %q", h.RunInfo.Text)
		}
		if got := h.logLines[2]; got != "07:00:01.066 INFO  steps[2].body[0] imap message downloaded" {
			t.Errorf("log line %q", got)
		}
		h.Filter.SetSelected(histAllTasks)
	})
	runEventually(t, 10*time.Second, "all runs again", func() bool { return len(h.runs) == 3 && len(h.logLines) == 6 })

	// A new run shows after Refresh.
	histRecord(t, s, "20260303T060000Z-dddd", "Morning report", "cron", time.Date(2026, 3, 3, 7, 0, 0, 0, time.Local), time.Second,
		task.OutcomeSuccess, 0, 0, nil, "run started", "run ended")
	runUI(func() { test.Tap(h.RefreshBtn) })
	runEventually(t, 10*time.Second, "the new run", func() bool { return len(h.runs) == 4 && h.runs[0].ID == "20260303T060000Z-dddd" })
}

func TestHistoryScreenScreenshot(t *testing.T) {
	test.NewTempApp(t)
	s := runTestServices(t)
	histSeed(t, s)
	w := test.NewWindow(nil)
	defer w.Close()
	var h *HistoryScreen
	runUI(func() {
		h = NewHistoryScreen(s, w)
		w.SetContent(h.Content())
		w.Resize(fyne.NewSize(1100, 620))
	})
	runEventually(t, 10*time.Second, "three runs", func() bool { return len(h.runs) == 3 })
	runUI(func() { h.Table.Select(widget.TableCellID{Row: 2, Col: 0}) })
	runEventually(t, 10*time.Second, "the log", func() bool { return len(h.logLines) == 6 })
	runUI(func() { runScreenshot(t, w, "history") })
}
