package app

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/task"
)

// The add modes of the steps tree.
const (
	editorAddAfter = "After the selected step"
	editorAddInto  = "Into the selected loop"
)

// editorGroupOrder is the palette's group order; other groups follow, sorted.
var editorGroupOrder = []string{"POP3", "IMAP", "SMTP", "Email"}

// buildStepsTab lays out palette | steps tree | properties form and problems.
func (e *TaskEditor) buildStepsTab() fyne.CanvasObject {
	e.tree = widget.NewTree(e.treeChildren, e.treeIsBranch, e.treeCreate, e.treeUpdate)
	e.tree.OnSelected = e.onTreeSelected

	e.removeBtn = widget.NewButtonWithIcon("Remove", theme.DeleteIcon(), e.onRemove)
	e.upBtn = widget.NewButtonWithIcon("Up", theme.MoveUpIcon(), func() { e.onMove(-1) })
	e.downBtn = widget.NewButtonWithIcon("Down", theme.MoveDownIcon(), func() { e.onMove(1) })
	e.indentBtn = widget.NewButtonWithIcon("Into loop", theme.NavigateNextIcon(), e.onIndent)
	e.outdentBtn = widget.NewButtonWithIcon("Out of loop", theme.NavigateBackIcon(), e.onOutdent)
	e.addMode = widget.NewRadioGroup([]string{editorAddAfter, editorAddInto}, nil)
	e.addMode.Horizontal = true
	e.addMode.Required = true
	e.addMode.SetSelected(editorAddAfter)
	treeTop := container.NewVBox(
		editorHeading("Steps"),
		container.NewHBox(e.upBtn, e.downBtn, e.indentBtn, e.outdentBtn, e.removeBtn),
		container.NewHBox(widget.NewLabel("New steps go:"), e.addMode),
	)
	steps := container.NewBorder(treeTop, nil, nil, nil, e.tree)

	e.paletteSearch = widget.NewEntry()
	e.paletteSearch.SetPlaceHolder("Search actions")
	e.paletteSearch.OnChanged = func(string) { e.rebuildPalette() }
	e.paletteBox = container.NewVBox()
	e.paletteButtons = map[string]*widget.Button{}
	e.rebuildPalette()
	palette := container.NewBorder(container.NewVBox(editorHeading("Actions"), e.paletteSearch), nil, nil, nil,
		container.NewVScroll(e.paletteBox))

	e.formBox = container.NewVBox()
	e.formScroll = container.NewVScroll(e.formBox)
	e.problemsBox = container.NewVBox()
	props := container.NewVSplit(e.formScroll, container.NewVScroll(e.problemsBox))
	props.SetOffset(0.72)

	right := container.NewHSplit(steps, props)
	right.SetOffset(0.42)
	all := container.NewHSplit(palette, right)
	all.SetOffset(0.2)
	return all
}

// rebuildPalette shows the actions grouped by Schema.Group, filtered by the search text
// (title or ID). Tapping an action adds it at the selection.
func (e *TaskEditor) rebuildPalette() {
	q := strings.ToLower(strings.TrimSpace(e.paletteSearch.Text))
	byGroup := map[string][]actions.Schema{}
	var groups []string
	for _, a := range e.s.Registry.List() {
		sc := a.Schema()
		if q != "" && !strings.Contains(strings.ToLower(sc.Title), q) && !strings.Contains(strings.ToLower(sc.ID), q) {
			continue
		}
		if _, seen := byGroup[sc.Group]; !seen {
			groups = append(groups, sc.Group)
		}
		byGroup[sc.Group] = append(byGroup[sc.Group], sc)
	}
	slices.SortStableFunc(groups, func(a, b string) int {
		ia, ib := slices.Index(editorGroupOrder, a), slices.Index(editorGroupOrder, b)
		if ia < 0 {
			ia = len(editorGroupOrder)
		}
		if ib < 0 {
			ib = len(editorGroupOrder)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	e.paletteBox.RemoveAll()
	e.paletteButtons = map[string]*widget.Button{}
	for _, g := range groups {
		e.paletteBox.Add(editorHeading(g))
		for _, sc := range byGroup[g] {
			id := sc.ID
			b := widget.NewButtonWithIcon(sc.Title, theme.ContentAddIcon(), func() { e.addAction(id) })
			b.Alignment = widget.ButtonAlignLeading
			b.Importance = widget.LowImportance
			e.paletteButtons[id] = b
			e.paletteBox.Add(b)
		}
	}
	if len(groups) == 0 {
		e.paletteBox.Add(editorHint("No action matches."))
	}
	e.paletteBox.Refresh()
}

// Tree node IDs are index paths: "" is the root, "2" the third step, "2/0" the first step
// of its body.

// editorUID is the tree node ID of an index path.
func editorUID(path []int) string {
	parts := make([]string, len(path))
	for i, n := range path {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, "/")
}

// editorPath parses a tree node ID.
func editorPath(uid string) []int {
	if uid == "" {
		return nil
	}
	var out []int
	for _, p := range strings.Split(uid, "/") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil
		}
		out = append(out, n)
	}
	return out
}

// editorProblemPath is the validation path of a step, e.g. steps[2].body[0].
func editorProblemPath(path []int) string {
	var b strings.Builder
	for i, n := range path {
		if i == 0 {
			fmt.Fprintf(&b, "steps[%d]", n)
		} else {
			fmt.Fprintf(&b, ".body[%d]", n)
		}
	}
	return b.String()
}

// editorProblemStep returns the step a validation path belongs to, if it belongs to one.
func editorProblemStep(p string) ([]int, bool) {
	var path []int
	for i, seg := range strings.Split(p, ".") {
		prefix := "body["
		if i == 0 {
			prefix = "steps["
		}
		if !strings.HasPrefix(seg, prefix) || !strings.HasSuffix(seg, "]") {
			break
		}
		n, err := strconv.Atoi(seg[len(prefix) : len(seg)-1])
		if err != nil {
			break
		}
		path = append(path, n)
	}
	return path, len(path) > 0
}

// list returns the step list a step at path lives in (nil: the path is invalid).
func (e *TaskEditor) list(parent []int) *[]task.Step {
	l := &e.task.Steps
	for _, n := range parent {
		if n < 0 || n >= len(*l) {
			return nil
		}
		l = &(*l)[n].Body
	}
	return l
}

// step returns the step at path, or nil.
func (e *TaskEditor) step(path []int) *task.Step {
	if len(path) == 0 {
		return nil
	}
	l := e.list(path[:len(path)-1])
	if l == nil {
		return nil
	}
	i := path[len(path)-1]
	if i < 0 || i >= len(*l) {
		return nil
	}
	return &(*l)[i]
}

// isLoop reports whether st's action is a loop.
func (e *TaskEditor) isLoop(st *task.Step) bool {
	if st == nil {
		return false
	}
	a, ok := e.s.Registry.Get(st.Action)
	return ok && a.Schema().IsLoop
}

func (e *TaskEditor) treeChildren(uid widget.TreeNodeID) []widget.TreeNodeID {
	var steps []task.Step
	path := editorPath(uid)
	if uid == "" {
		steps = e.task.Steps
	} else if st := e.step(path); st != nil {
		steps = st.Body
	}
	out := make([]widget.TreeNodeID, len(steps))
	for i := range steps {
		out[i] = editorUID(append(slices.Clone(path), i))
	}
	return out
}

func (e *TaskEditor) treeIsBranch(uid widget.TreeNodeID) bool {
	if uid == "" {
		return true
	}
	st := e.step(editorPath(uid))
	return st != nil && (e.isLoop(st) || len(st.Body) > 0)
}

func (e *TaskEditor) treeCreate(bool) fyne.CanvasObject {
	return container.NewBorder(nil, nil, widget.NewIcon(nil), nil, widget.NewLabel("Template step label"))
}

func (e *TaskEditor) treeUpdate(uid widget.TreeNodeID, _ bool, o fyne.CanvasObject) {
	c := o.(*fyne.Container)
	label, icon := c.Objects[0].(*widget.Label), c.Objects[1].(*widget.Icon)
	label.SetText(e.stepTitle(e.step(editorPath(uid))))
	if e.badSteps[uid] {
		icon.SetResource(theme.WarningIcon())
	} else {
		icon.SetResource(nil)
	}
}

// stepTitle is a step's tree label: "IMAP Mail Loop — each new invoice".
func (e *TaskEditor) stepTitle(st *task.Step) string {
	if st == nil {
		return ""
	}
	title := "Unknown action " + strconv.Quote(st.Action)
	if a, ok := e.s.Registry.Get(st.Action); ok {
		title = a.Schema().Title
	}
	if l := strings.TrimSpace(st.Label); l != "" {
		title += " — " + l
	}
	if st.Disabled {
		title += " (disabled)"
	}
	return title
}

func (e *TaskEditor) onTreeSelected(uid widget.TreeNodeID) {
	if e.selecting {
		return
	}
	e.selected = editorPath(uid)
	e.showSelection()
}

// selectPath selects the step at path (nil: none) in the tree and shows its form.
func (e *TaskEditor) selectPath(path []int) {
	e.selected = slices.Clone(path)
	e.selecting = true
	if path == nil {
		e.tree.UnselectAll()
	} else {
		for i := 1; i < len(path); i++ {
			e.tree.OpenBranch(editorUID(path[:i]))
		}
		e.tree.UnselectAll() // the same ID may now be another step: force the change
		e.tree.Select(editorUID(path))
	}
	e.selecting = false
	e.showSelection()
}

// showSelection rebuilds the form and the buttons' state for e.selected.
func (e *TaskEditor) showSelection() {
	if e.step(e.selected) == nil {
		e.selected = nil
	}
	e.buildForm()
	e.updateButtons()
}

// updateButtons enables the tree buttons that apply to the selection.
func (e *TaskEditor) updateButtons() {
	enable := func(b *widget.Button, on bool) {
		if on {
			b.Enable()
		} else {
			b.Disable()
		}
	}
	st := e.step(e.selected)
	var siblings []task.Step
	i := -1
	if st != nil {
		siblings = *e.list(e.selected[:len(e.selected)-1])
		i = e.selected[len(e.selected)-1]
	}
	enable(e.removeBtn, st != nil)
	enable(e.upBtn, st != nil && i > 0)
	enable(e.downBtn, st != nil && i < len(siblings)-1)
	enable(e.indentBtn, st != nil && i > 0 && e.isLoop(&siblings[i-1]))
	enable(e.outdentBtn, st != nil && len(e.selected) > 1)
	if e.isLoop(st) {
		e.addMode.Enable()
		if len(st.Body) == 0 {
			e.addMode.SetSelected(editorAddInto)
		}
	} else {
		e.addMode.SetSelected(editorAddAfter)
		e.addMode.Disable()
	}
}

// addAction adds a step of the action id at the selection: after the selected step, or
// at the end of the selected loop's body, or at the end of the task when none is selected.
func (e *TaskEditor) addAction(id string) {
	st := task.Step{Action: id}
	var path []int
	switch sel := e.step(e.selected); {
	case sel == nil:
		e.task.Steps = append(e.task.Steps, st)
		path = []int{len(e.task.Steps) - 1}
	case e.isLoop(sel) && e.addMode.Selected == editorAddInto:
		sel.Body = append(sel.Body, st)
		path = append(slices.Clone(e.selected), len(sel.Body)-1)
	default:
		parent, i := e.selected[:len(e.selected)-1], e.selected[len(e.selected)-1]
		l := e.list(parent)
		*l = slices.Insert(*l, i+1, st)
		path = append(slices.Clone(parent), i+1)
	}
	e.structureChanged(path)
}

// structureChanged refreshes the tree after steps were added, removed or moved and
// selects path.
func (e *TaskEditor) structureChanged(path []int) {
	e.tree.Refresh()
	e.tree.OpenAllBranches()
	e.selectPath(path)
	e.changed()
}

func (e *TaskEditor) onRemove() {
	st := e.step(e.selected)
	if st == nil {
		return
	}
	if len(st.Body) == 0 {
		e.removeSelected()
		return
	}
	msg := fmt.Sprintf("Remove %q and the %d step(s) of its body?", e.stepTitle(st), len(st.Body))
	dialog.ShowConfirm("Remove step", msg, func(ok bool) {
		if ok {
			e.removeSelected()
		}
	}, e.win)
}

// removeSelected deletes the selected step and selects its neighbour.
func (e *TaskEditor) removeSelected() {
	if e.step(e.selected) == nil {
		return
	}
	parent, i := slices.Clone(e.selected[:len(e.selected)-1]), e.selected[len(e.selected)-1]
	l := e.list(parent)
	*l = slices.Delete(*l, i, i+1)
	var next []int
	switch {
	case i < len(*l):
		next = append(parent, i)
	case i > 0:
		next = append(parent, i-1)
	case len(parent) > 0:
		next = parent
	}
	e.structureChanged(next)
}

// onMove moves the selected step up (-1) or down (+1) among its siblings.
func (e *TaskEditor) onMove(delta int) {
	if e.step(e.selected) == nil {
		return
	}
	parent, i := slices.Clone(e.selected[:len(e.selected)-1]), e.selected[len(e.selected)-1]
	l := *e.list(parent)
	j := i + delta
	if j < 0 || j >= len(l) {
		return
	}
	l[i], l[j] = l[j], l[i]
	e.structureChanged(append(parent, j))
}

// onIndent moves the selected step to the end of the body of the loop just above it.
func (e *TaskEditor) onIndent() {
	if e.step(e.selected) == nil {
		return
	}
	parent, i := slices.Clone(e.selected[:len(e.selected)-1]), e.selected[len(e.selected)-1]
	l := e.list(parent)
	if i == 0 || !e.isLoop(&(*l)[i-1]) {
		return
	}
	st := (*l)[i]
	*l = slices.Delete(*l, i, i+1)
	loop := &(*l)[i-1]
	loop.Body = append(loop.Body, st)
	e.structureChanged(append(parent, i-1, len(loop.Body)-1))
}

// onOutdent moves the selected step out of its loop, right after the loop.
func (e *TaskEditor) onOutdent() {
	if len(e.selected) < 2 || e.step(e.selected) == nil {
		return
	}
	loopPath := slices.Clone(e.selected[:len(e.selected)-1])
	i := e.selected[len(e.selected)-1]
	loop := e.step(loopPath)
	st := loop.Body[i]
	loop.Body = slices.Delete(loop.Body, i, i+1)
	grand, li := loopPath[:len(loopPath)-1], loopPath[len(loopPath)-1]
	l := e.list(grand)
	*l = slices.Insert(*l, li+1, st)
	e.structureChanged(append(slices.Clone(grand), li+1))
}
