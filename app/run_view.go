package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/task"
)

// Limits of the Run view.
const (
	runMaxLines      = 5000                   // log lines kept on screen
	runFlushInterval = 100 * time.Millisecond // at most 10 widget updates a second
	runOlderLines    = "…older lines in History"
)

// RunView runs one task by hand and shows it live: Run and Stop, a progress bar ("message i
// of n" inside loops), the current step, the log, and a summary when the run ends. A run
// goes on when the view is hidden; only Stop (or the app quitting) ends it early.
type RunView struct {
	s   *Services
	win fyne.Window

	// OnFinished, if set, is called on the UI goroutine after each run ends (res is nil
	// when the run could not start), e.g. to refresh the Tasks and History screens.
	OnFinished func(res *task.Result)

	Heading  *widget.Label
	RunBtn   *widget.Button
	StopBtn  *widget.Button
	Progress *widget.ProgressBar
	Step     *widget.Label
	Log      *widget.List
	Summary  *widget.Label

	content fyne.CanvasObject

	// UI-goroutine state.
	task     *task.Task
	lines    []string // log lines on screen; lines[0] is runOlderLines once some were dropped
	progText string
	progLoop bool // the bar shows loop messages (kept as is when the run ends)

	// Written by the run goroutine, read by the flusher.
	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	loops   map[string]bool // paths of loop steps of the running task
	pend    runPending
}

// runPending is what changed since the last widget update.
type runPending struct {
	dirty    bool
	lines    []string
	dropped  bool // lines were dropped before reaching the screen
	step     string
	detail   string
	msgIndex int
	msgTotal int
	// Progress of the current step outside loops (bytes sent, parsed, …).
	stepDone, stepTotal int
}

// NewRunView builds the view with no task loaded. win is the window its dialogs belong to.
func NewRunView(s *Services, win fyne.Window) *RunView {
	v := &RunView{s: s, win: win}
	v.Heading = widget.NewLabelWithStyle("No task loaded: use Run now on the Tasks screen", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	v.RunBtn = widget.NewButtonWithIcon("Run", theme.MediaPlayIcon(), v.onRun)
	v.RunBtn.Importance = widget.HighImportance
	v.RunBtn.Disable()
	v.StopBtn = widget.NewButtonWithIcon("Stop", theme.MediaStopIcon(), v.Stop)
	v.StopBtn.Disable()
	v.Progress = widget.NewProgressBar()
	v.Progress.TextFormatter = func() string { return v.progText }
	v.Step = widget.NewLabel("")
	v.Step.Truncation = fyne.TextTruncateEllipsis
	v.Summary = widget.NewLabel("")
	v.Summary.Wrapping = fyne.TextWrapWord
	v.Summary.Selectable = true
	v.Log = widget.NewList(
		func() int { return len(v.lines) },
		func() fyne.CanvasObject {
			l := widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			if id < len(v.lines) {
				o.(*widget.Label).SetText(v.lines[id])
			}
		})
	top := container.NewVBox(v.Heading, container.NewHBox(v.RunBtn, v.StopBtn), v.Progress, v.Step)
	v.content = container.NewBorder(top, v.Summary, nil, nil, v.Log)
	return v
}

// Content is the view's root object.
func (v *RunView) Content() fyne.CanvasObject { return v.content }

// Running reports whether a run started here is in progress.
func (v *RunView) Running() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.running
}

// Start loads t (a copy) and runs it. Call it on the UI goroutine. While a run started
// here is in progress it refuses with a message instead.
func (v *RunView) Start(t *task.Task) {
	if t == nil {
		return
	}
	v.mu.Lock()
	if v.running {
		v.mu.Unlock()
		cur := ""
		if v.task != nil {
			cur = v.task.Name
		}
		dialog.ShowInformation("A run is in progress",
			fmt.Sprintf("%q is still running here. Stop it or wait for it to end before starting %q.", cur, t.Name), v.win)
		return
	}
	v.mu.Unlock()
	c, err := runCloneTask(t)
	if err != nil {
		dialog.ShowError(err, v.win)
		return
	}
	v.task = c
	v.Heading.SetText("Task: " + c.Name)
	v.onRun()
}

// onRun starts a run of the loaded task.
func (v *RunView) onRun() {
	if v.task == nil {
		return
	}
	t := v.task
	ctx, cancel := context.WithCancel(context.Background())
	v.mu.Lock()
	if v.running {
		v.mu.Unlock()
		cancel()
		return
	}
	v.running = true
	v.cancel = cancel
	v.loops = runLoopPaths(v.s, "steps", t.Steps, map[string]bool{})
	v.pend = runPending{}
	v.mu.Unlock()

	v.lines = nil
	v.Log.Refresh()
	v.progText, v.progLoop = "starting", false
	v.Progress.Max, v.Progress.Value = 1, 0
	v.Progress.Refresh()
	v.Step.SetText("Starting…")
	v.Summary.SetText("")
	v.RunBtn.Disable()
	v.StopBtn.Enable()
	go v.run(ctx, cancel, t)
}

// Stop asks a run in progress to stop at its next safe point (between steps or messages);
// the summary then says "cancelled". Call it on the UI goroutine, e.g. when the app quits.
func (v *RunView) Stop() {
	v.mu.Lock()
	cancel := v.cancel
	v.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	v.StopBtn.Disable()
	v.Step.SetText("Stopping at the next safe point…")
}

// run runs t through the engine on its own goroutine, with a flusher that moves progress
// and log lines to the widgets at most ten times a second.
func (v *RunView) run(ctx context.Context, cancel context.CancelFunc, t *task.Task) {
	stop, flushed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(flushed)
		tick := time.NewTicker(runFlushInterval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				v.flush()
			case <-stop:
				v.flush()
				return
			}
		}
	}()
	res, err := v.s.Engine.Run(ctx, t, task.RunOptions{Trigger: "manual", Events: v.onEvent, LogHandler: &runLogHandler{v: v}})
	close(stop)
	<-flushed
	cancel()
	v.s.do(func() { v.finish(t, res, err) })
}

// finish shows the outcome of a run (UI goroutine).
func (v *RunView) finish(t *task.Task, res *task.Result, err error) {
	v.mu.Lock()
	v.running = false
	v.cancel = nil
	v.mu.Unlock()
	v.RunBtn.Enable()
	v.StopBtn.Disable()
	switch {
	case res == nil && errors.Is(err, task.ErrAlreadyRunning):
		v.Step.SetText("Not started: the task is already running")
		v.progText = ""
		v.Progress.Refresh()
		v.Summary.SetText("Not started: another run of this task is in progress.")
		dialog.ShowInformation("Already running", fmt.Sprintf(
			"%q is already running, in this window or in another Mailwright process (the command line or mailwright serve). "+
				"Wait for that run to end, or stop it there, then try again.", t.Name), v.win)
	case res == nil:
		v.Step.SetText("Not started")
		v.progText = ""
		v.Progress.Refresh()
		v.Summary.SetText(fmt.Sprintf("The run could not start: %v", err))
		dialog.ShowError(fmt.Errorf("run task %q: %w", t.Name, err), v.win)
	default:
		switch {
		case res.Outcome == task.OutcomeSuccess && !v.progLoop:
			v.Progress.Max, v.Progress.Value, v.progText = 1, 1, "done"
		case res.Outcome == task.OutcomeSuccess:
			v.Progress.Value = v.Progress.Max // a loop whose count was unknown
		case !v.progLoop:
			v.progText = res.Outcome
		}
		v.Progress.Refresh()
		v.Step.SetText("Ended: " + res.Outcome)
		text := runSummary(res)
		if err != nil {
			text += fmt.Sprintf("\nThe history could not record everything: %v", err)
		}
		v.Summary.SetText(text)
	}
	if v.OnFinished != nil {
		v.OnFinished(res)
	}
}

// runSummary is the final summary of a run in words.
func runSummary(res *task.Result) string {
	failed := "no failed steps"
	if res.Failures == 1 {
		failed = "1 failed step"
	} else if res.Failures > 1 {
		failed = fmt.Sprintf("%d failed steps", res.Failures)
	}
	s := fmt.Sprintf("Outcome: %s · took %s · %s · %d steps run · %s", res.Outcome,
		res.End.Sub(res.Start).Round(time.Millisecond), runPlural(res.Items, "message"), res.Steps, failed)
	if w := runErrorWords(res); w != "" {
		s += "\n" + w
	}
	return s
}

// runErrorWords explains why a run did not succeed.
func runErrorWords(res *task.Result) string {
	if res.Err == nil {
		return ""
	}
	var se *task.StepError
	var ve *task.ValidationError
	switch {
	case res.Outcome == task.OutcomeCancelled:
		where := strings.TrimSuffix(res.Err.Error(), ": context canceled")
		return "You stopped the run; it ended at a safe point (" + where + "). Loops that keep checkpoints resume where they stopped."
	case errors.As(res.Err, &ve):
		var b strings.Builder
		b.WriteString("The task has problems, so nothing ran:")
		for _, p := range ve.Problems {
			fmt.Fprintf(&b, "\n• %s: %s", p.Path, p.Message)
		}
		return b.String()
	case errors.As(res.Err, &se):
		return fmt.Sprintf("Step %s (%s) failed: %v", se.Path, se.Title, se.Err)
	}
	return "Error: " + res.Err.Error()
}

func runPlural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// onEvent records a progress event (run goroutine; must be quick).
func (v *RunView) onEvent(e task.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := &v.pend
	switch e.Kind {
	case task.EventStepStart:
		p.step = e.Title + " — " + e.Path
		p.detail = ""
		p.stepDone, p.stepTotal = 0, 0
	case task.EventItem:
		if v.loops[e.Path] {
			p.msgIndex = e.Index
			if e.Total > 0 {
				p.msgTotal = e.Total
			}
		}
	case task.EventProgress:
		if v.loops[e.Path] {
			p.msgIndex = e.Index
			p.msgTotal = max(e.Total, 0)
		} else {
			p.detail = e.What
			p.stepDone, p.stepTotal = e.Index, max(e.Total, 0)
			if e.Total > 0 {
				p.detail += fmt.Sprintf(" (%d%%)", int64(e.Index)*100/int64(e.Total))
			}
		}
	default:
		return
	}
	p.dirty = true
}

// addLine queues a log line (run goroutine).
func (v *RunView) addLine(line string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pend.lines = append(v.pend.lines, line)
	if len(v.pend.lines) > 2*runMaxLines {
		v.pend.lines = append(v.pend.lines[:0], v.pend.lines[len(v.pend.lines)-runMaxLines:]...)
		v.pend.dropped = true
	}
	v.pend.dirty = true
}

// flush moves what changed to the widgets (flusher goroutine).
func (v *RunView) flush() {
	v.mu.Lock()
	p := v.pend
	v.pend = runPending{step: p.step, detail: p.detail, msgIndex: p.msgIndex, msgTotal: p.msgTotal,
		stepDone: p.stepDone, stepTotal: p.stepTotal}
	v.mu.Unlock()
	if !p.dirty {
		return
	}
	v.s.do(func() { v.apply(p) })
}

// apply updates the widgets from p (UI goroutine).
func (v *RunView) apply(p runPending) {
	if len(p.lines) > 0 || p.dropped {
		older := len(v.lines) > 0 && v.lines[0] == runOlderLines
		if older {
			v.lines = v.lines[1:]
		}
		v.lines = append(v.lines, p.lines...)
		if n := len(v.lines); n > runMaxLines-1 {
			v.lines = v.lines[n-(runMaxLines-1):]
			older = true
		}
		if older || p.dropped {
			v.lines = append([]string{runOlderLines}, v.lines...)
		}
		v.Log.Refresh()
		v.Log.ScrollToBottom()
	}
	step := p.step
	if p.detail != "" {
		step += ": " + p.detail
	}
	if step != "" && v.Step.Text != step {
		v.Step.SetText(step)
	}
	v.progLoop = p.msgIndex > 0 || p.msgTotal > 0
	switch {
	case p.msgTotal > 0:
		v.Progress.Max = float64(p.msgTotal)
		v.Progress.Value = float64(min(p.msgIndex, p.msgTotal))
		v.progText = fmt.Sprintf("message %d of %d", p.msgIndex, p.msgTotal)
	case p.msgIndex > 0:
		v.Progress.Max, v.Progress.Value = 1, 0
		v.progText = fmt.Sprintf("message %d", p.msgIndex)
	case p.stepTotal > 0:
		v.Progress.Max = float64(p.stepTotal)
		v.Progress.Value = float64(min(p.stepDone, p.stepTotal))
		v.progText = p.detail
	default:
		v.progText = "running"
	}
	v.Progress.Refresh()
}

// runLoopPaths returns the paths ("steps[2]", "steps[2].body[0]") of the loop steps of
// steps, as the engine names them in events.
func runLoopPaths(s *Services, path string, steps []task.Step, out map[string]bool) map[string]bool {
	for i, st := range steps {
		p := path + "[" + strconv.Itoa(i) + "]"
		if a, ok := s.Registry.Get(st.Action); ok && a.Schema().IsLoop {
			out[p] = true
		}
		if len(st.Body) > 0 {
			runLoopPaths(s, p+".body", st.Body, out)
		}
	}
	return out
}

// runCloneTask returns a deep copy of t, so later edits do not reach a running run.
func runCloneTask(t *task.Task) (*task.Task, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("copy task %q: %w", t.Name, err)
	}
	var c task.Task
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("copy task %q: %w", t.Name, err)
	}
	return &c, nil
}

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
