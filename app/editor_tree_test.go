package app

import (
	"slices"
	"testing"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/task"
)

// editorShape is the tree as "action(body…)" strings, e.g. [imap.open imap.loop(imap.download)].
func editorShape(steps []task.Step) []string {
	var out []string
	for _, s := range steps {
		x := s.Action
		if len(s.Body) > 0 {
			x += "("
			for i, b := range editorShape(s.Body) {
				if i > 0 {
					x += " "
				}
				x += b
			}
			x += ")"
		}
		out = append(out, x)
	}
	return out
}

func TestEditorReorderIndentOutdentRemove(t *testing.T) {
	_, e, w, _ := editorTestSetup(t)
	e.Load(&task.Task{Version: 1, Name: "Shape", Steps: []task.Step{
		{Action: "imap.open", Params: map[string]string{"host": "h"}},
		{Action: "imap.loop", Body: []task.Step{{Action: "imap.download", Params: map[string]string{"folder": "/tmp/x"}}}},
		{Action: "imap.close"},
	}})
	check := func(what string, wantSel []int, want ...string) {
		t.Helper()
		if got := editorShape(e.Task().Steps); !slices.Equal(got, want) {
			t.Fatalf("%s: steps %v, want %v", what, got, want)
		}
		if !slices.Equal(e.selected, wantSel) {
			t.Fatalf("%s: selected %v, want %v", what, e.selected, wantSel)
		}
	}

	// The tree shows the body under its loop.
	if got := e.treeChildren(""); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("root children %v", got)
	}
	if got := e.treeChildren("1"); !slices.Equal(got, []string{"1/0"}) || !e.treeIsBranch("1") || e.treeIsBranch("0") {
		t.Fatalf("loop children %v", got)
	}

	e.tree.Select("2")
	if !slices.Equal(e.selected, []int{2}) || e.fields == nil {
		t.Fatalf("selecting a node: %v", e.selected)
	}
	test.Tap(e.indentBtn)
	check("indent", []int{1, 1}, "imap.open", "imap.loop(imap.download imap.close)")
	test.Tap(e.upBtn)
	check("up in body", []int{1, 0}, "imap.open", "imap.loop(imap.close imap.download)")
	if !e.upBtn.Disabled() || e.downBtn.Disabled() || e.outdentBtn.Disabled() {
		t.Fatal("button states at the top of a body")
	}
	test.Tap(e.outdentBtn)
	check("outdent", []int{2}, "imap.open", "imap.loop(imap.download)", "imap.close")
	test.Tap(e.upBtn)
	check("up", []int{1}, "imap.open", "imap.close", "imap.loop(imap.download)")
	test.Tap(e.downBtn)
	check("down", []int{2}, "imap.open", "imap.loop(imap.download)", "imap.close")

	e.tree.Select("1")
	if !e.indentBtn.Disabled() {
		t.Fatal("indent is possible although the step above is not a loop")
	}
	if e.addMode.Disabled() {
		t.Fatal("a selected loop must allow adding into its body")
	}
	// Adding after a loop that has a body, then into it.
	e.addMode.SetSelected(editorAddAfter)
	editorTap(t, e, "email.parse")
	check("add after", []int{2}, "imap.open", "imap.loop(imap.download)", "email.parse", "imap.close")
	e.tree.Select("1")
	e.addMode.SetSelected(editorAddInto)
	editorTap(t, e, "imap.move")
	check("add into", []int{1, 1}, "imap.open", "imap.loop(imap.download imap.move)", "email.parse", "imap.close")

	// Removing a leaf is immediate; removing a loop asks first.
	test.Tap(e.removeBtn)
	check("remove leaf", []int{1, 0}, "imap.open", "imap.loop(imap.download)", "email.parse", "imap.close")
	e.tree.Select("1")
	test.Tap(e.removeBtn)
	if w.Canvas().Overlays().Top() == nil {
		t.Fatal("removing a loop with a body did not ask")
	}
	if len(e.Task().Steps) != 4 {
		t.Fatal("the loop went before the user confirmed")
	}
	e.removeSelected() // what the confirmation's Yes does
	check("remove loop", []int{1}, "imap.open", "email.parse", "imap.close")
}

func TestEditorPaletteSearch(t *testing.T) {
	_, e, _, _ := editorTestSetup(t)
	if len(e.paletteButtons) != len(e.s.Registry.List()) {
		t.Fatalf("palette has %d actions, registry %d", len(e.paletteButtons), len(e.s.Registry.List()))
	}
	test.Type(e.paletteSearch, "loop")
	var ids []string
	for id := range e.paletteButtons {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"imap.loop", "pop3.loop"}) {
		t.Fatalf("search loop: %v", ids)
	}
	e.paletteSearch.SetText("smtp.")
	if _, ok := e.paletteButtons["smtp.send"]; !ok || len(e.paletteButtons) != 1 {
		t.Fatalf("search by ID: %v", e.paletteButtons)
	}
	// The groups come in palette order.
	e.paletteSearch.SetText("")
	var groups []string
	for _, o := range e.paletteBox.Objects {
		if l, ok := o.(*widget.Label); ok {
			groups = append(groups, l.Text)
		}
	}
	if !slices.Equal(groups, []string{"POP3", "IMAP", "SMTP", "Email"}) {
		t.Fatalf("groups %v", groups)
	}
}
