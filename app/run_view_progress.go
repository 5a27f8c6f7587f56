package app

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2/dialog"

	"github.com/mailwright/mailwright/task"
)

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
