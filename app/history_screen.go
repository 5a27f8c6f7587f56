package app

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/task"
)

// histAllTasks is the filter choice that shows every task's runs.
const histAllTasks = "All tasks"

// histLimit is how many runs the table shows at most.
const histLimit = 500

// histColumns are the table's column titles and widths.
var histColumns = []struct {
	title string
	width float32
}{
	{"Task", 170}, {"Started", 160}, {"Duration", 90}, {"Outcome", 90}, {"Trigger", 110},
	{"Messages", 85}, {"Failures", 75}, {"Error", 320},
}

// HistoryScreen shows the run history: a table of runs (newest first) filtered by task,
// and the step log of the run selected.
type HistoryScreen struct {
	s   *Services
	win fyne.Window

	Filter     *widget.Select
	RefreshBtn *widget.Button
	Table      *widget.Table
	Status     *widget.Label
	RunInfo    *widget.Label
	Log        *widget.List

	content fyne.CanvasObject

	// UI-goroutine state.
	runs     []task.RunRecord
	logLines []string
	shownRun string // the run whose log is shown (or loading)
	loadSeq  int    // drops answers of superseded loads
}

// NewHistoryScreen builds the screen and starts loading the history.
func NewHistoryScreen(s *Services, win fyne.Window) *HistoryScreen {
	h := &HistoryScreen{s: s, win: win}
	h.Filter = widget.NewSelect([]string{histAllTasks}, func(string) { h.Refresh() })
	h.Filter.Selected = histAllTasks
	h.RefreshBtn = widget.NewButtonWithIcon("Refresh", theme.ViewRefreshIcon(), h.Refresh)
	h.Status = widget.NewLabel("Loading the history…")
	h.RunInfo = widget.NewLabel("Select a run to see its step log.")
	h.RunInfo.Wrapping = fyne.TextWrapWord
	h.RunInfo.Selectable = true

	h.Table = widget.NewTableWithHeaders(
		func() (int, int) { return len(h.runs), len(histColumns) },
		func() fyne.CanvasObject {
			l := widget.NewLabel("")
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(id widget.TableCellID, o fyne.CanvasObject) {
			if id.Row < len(h.runs) {
				o.(*widget.Label).SetText(histCell(h.runs[id.Row], id.Col))
			}
		})
	h.Table.ShowHeaderColumn = false
	h.Table.CreateHeader = func() fyne.CanvasObject {
		return widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	}
	h.Table.UpdateHeader = func(id widget.TableCellID, o fyne.CanvasObject) {
		if id.Col >= 0 && id.Col < len(histColumns) {
			o.(*widget.Label).SetText(histColumns[id.Col].title)
		}
	}
	for i, c := range histColumns {
		h.Table.SetColumnWidth(i, c.width)
	}
	h.Table.OnSelected = h.onSelected

	h.Log = widget.NewList(
		func() int { return len(h.logLines) },
		func() fyne.CanvasObject {
			l := widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			if id < len(h.logLines) {
				o.(*widget.Label).SetText(h.logLines[id])
			}
		})

	heading := widget.NewLabelWithStyle("Run history", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	filter := container.NewGridWrap(fyne.NewSize(280, h.Filter.MinSize().Height), h.Filter)
	bar := container.NewHBox(widget.NewLabel("Task"), filter, h.RefreshBtn)
	top := container.NewVBox(heading, bar, h.Status)
	logPane := container.NewBorder(h.RunInfo, nil, nil, nil, h.Log)
	split := container.NewVSplit(h.Table, logPane)
	split.Offset = 0.5
	h.content = container.NewBorder(top, nil, nil, nil, split)
	h.Refresh()
	return h
}

// Content is the screen's root object.
func (h *HistoryScreen) Content() fyne.CanvasObject { return h.content }

// Refresh reloads the task names and the runs of the chosen task in the background.
func (h *HistoryScreen) Refresh() {
	filter := h.Filter.Selected
	if filter == histAllTasks {
		filter = ""
	}
	go func() {
		runs, err := h.s.History.Runs(filter, histLimit)
		names := h.taskNames()
		h.s.do(func() { h.show(filter, names, runs, err) })
	}()
}

// taskNames returns the names of the stored tasks plus those of recent runs (a deleted
// task's runs stay in the history), sorted (background goroutine).
func (h *HistoryScreen) taskNames() []string {
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	tasks, _ := h.s.Tasks.List()
	for _, t := range tasks {
		add(t.Name)
	}
	if runs, err := h.s.History.Runs("", histLimit); err == nil {
		for _, r := range runs {
			add(r.Task)
		}
	}
	sort.Slice(names, func(i, j int) bool { return strings.ToLower(names[i]) < strings.ToLower(names[j]) })
	return names
}

// show puts loaded runs on screen (UI goroutine). filter is the task they were loaded for
// ("" for all); an answer for a filter no longer chosen is dropped.
func (h *HistoryScreen) show(filter string, names []string, runs []task.RunRecord, err error) {
	cur := h.Filter.Selected
	if cur == histAllTasks {
		cur = ""
	}
	if cur != filter {
		return
	}
	opts := append([]string{histAllTasks}, names...)
	if filter != "" && !histContains(opts, filter) {
		opts = append(opts, filter)
	}
	h.Filter.SetOptions(opts)
	if err != nil {
		h.Status.SetText(fmt.Sprintf("Could not read the run history: %v", err))
		return
	}
	h.runs = runs
	h.Table.UnselectAll()
	h.Table.Refresh()
	switch {
	case len(runs) == 0 && filter == "":
		h.Status.SetText("No runs yet. Runs by hand, on a schedule and from the command line all show up here.")
	case len(runs) == 0:
		h.Status.SetText(fmt.Sprintf("No runs of %q yet.", filter))
	case len(runs) == histLimit:
		h.Status.SetText(fmt.Sprintf("The latest %d runs, newest first. Select one to see its step log.", histLimit))
	default:
		h.Status.SetText(fmt.Sprintf("%s, newest first. Select one to see its step log.", runPlural(len(runs), "run")))
	}
	keep := false
	for _, r := range runs {
		if r.ID == h.shownRun {
			keep = true
		}
	}
	if !keep {
		h.shownRun = ""
		h.logLines = nil
		h.Log.Refresh()
		h.RunInfo.SetText("Select a run to see its step log.")
	}
}

func histContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// onSelected loads the step log of the run on the selected row.
func (h *HistoryScreen) onSelected(id widget.TableCellID) {
	if id.Row < 0 || id.Row >= len(h.runs) {
		return
	}
	runID := h.runs[id.Row].ID
	h.shownRun = runID
	h.loadSeq++
	seq := h.loadSeq
	h.RunInfo.SetText("Loading the log of run " + runID + "…")
	go func() {
		run, lines, err := h.s.History.Run(runID)
		h.s.do(func() {
			if seq != h.loadSeq {
				return
			}
			if err != nil {
				h.RunInfo.SetText(fmt.Sprintf("Could not read run %s: %v", runID, err))
				h.logLines = nil
				h.Log.Refresh()
				return
			}
			h.RunInfo.SetText(histRunInfo(run, len(lines)))
			h.logLines = make([]string, len(lines))
			for i, l := range lines {
				h.logLines[i] = histLogLine(l)
			}
			h.Log.Refresh()
			h.Log.ScrollToTop()
		})
	}()
}

// histRunInfo is the heading of a run's log.
func histRunInfo(r task.RunRecord, lines int) string {
	s := fmt.Sprintf("Run %s of %q (%s): %s, started %s", r.ID, r.Task, r.Trigger, r.Outcome, r.Start.Format(time.DateTime))
	if !r.End.IsZero() {
		s += ", took " + r.End.Sub(r.Start).Round(time.Millisecond).String()
	}
	s += fmt.Sprintf(" · %s, %d failed steps · %s", runPlural(r.Items, "message"), r.Failures, runPlural(lines, "log line"))
	if r.Error != "" {
		s += "\nError: " + r.Error
	}
	return s
}

// histLogLine formats one stored log line.
func histLogLine(l task.LogLine) string {
	s := l.Time.Format("15:04:05.000") + " " + fmt.Sprintf("%-5s", l.Level)
	if l.Step != "" {
		s += " " + l.Step
	}
	s += " " + l.Message
	if l.Attrs != "" {
		s += " " + l.Attrs
	}
	return s
}

// histCell is the text of one table cell.
func histCell(r task.RunRecord, col int) string {
	switch col {
	case 0:
		return r.Task
	case 1:
		return r.Start.Format(time.DateTime)
	case 2:
		if r.End.IsZero() {
			if r.Outcome == "running" {
				return "running"
			}
			return "—"
		}
		return histDuration(r.End.Sub(r.Start))
	case 3:
		return r.Outcome
	case 4:
		return r.Trigger
	case 5:
		return strconv.Itoa(r.Items)
	case 6:
		return strconv.Itoa(r.Failures)
	case 7:
		return histClip(strings.ReplaceAll(r.Error, "\n", " "), 120)
	}
	return ""
}

// histDuration rounds a duration for the table: ms below a second, then 0.1 s, then s.
func histDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// histClip shortens s to n characters with an ellipsis.
func histClip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
