package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
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
