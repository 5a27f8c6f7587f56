package app

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/oauthparams"
	"github.com/mailwright/mailwright/task"
)

// The generated form of every shipped action builds, with the widget its kinds call for.
func TestEditorFormForEveryAction(t *testing.T) {
	s, e, _, _ := editorTestSetup(t)
	reg := actions.NewDefaultRegistry()
	for _, a := range reg.List() {
		sc := a.Schema()
		e.Load(&task.Task{Version: 1, Name: "form " + sc.ID, Steps: []task.Step{{Action: sc.ID}}})
		e.selectPath([]int{0})
		editorIdle(t, e)
		if _, _, _, err := e.paramForm(sc.Params, editorFormOpts{values: map[string]string{}, set: func(string, string) {}}); err != nil {
			t.Errorf("%s: %v", sc.ID, err)
		}
		if len(e.fields) != len(sc.Params) {
			t.Errorf("%s: %d fields for %d params", sc.ID, len(e.fields), len(sc.Params))
		}
		for _, p := range sc.Params {
			f := e.fields[p.Name]
			if f == nil {
				continue
			}
			ok := true
			switch p.Kind {
			case actions.KindBool:
				ok = f.check != nil
			case actions.KindEnum, actions.KindParamSet:
				ok = f.sel != nil
			default:
				ok = f.entry != nil && f.picker != nil
				ok = ok && f.entry.Password == (p.Kind == actions.KindSecret)
				ok = ok && f.entry.MultiLine == (p.Kind == actions.KindMultiline)
				ok = ok && (f.browse != nil) == (p.Kind == actions.KindFile || p.Kind == actions.KindFolder)
				ok = ok && (f.entry.Validator != nil) == (p.Kind == actions.KindNumber || p.Kind == actions.KindDuration)
			}
			if !ok {
				t.Errorf("%s: param %s (%s) got the wrong widget", sc.ID, p.Name, p.Kind)
			}
		}
	}
	_ = s
	bad := []actions.Param{{Name: "x", Label: "X", Kind: "hologram"}}
	if _, _, _, err := e.paramForm(bad, editorFormOpts{values: map[string]string{}, set: func(string, string) {}}); err == nil {
		t.Fatal("an unknown kind built a form")
	}
}

// Entries validate numbers and durations, selects write enum values, checks write bools,
// and the parameter-set select lists the stored sets (read in the background).
func TestEditorFieldKinds(t *testing.T) {
	s, e, _, _ := editorTestSetup(t)
	if err := s.Params.Put(oauthparams.ParamSet{Name: "Work mail", ClientID: "id",
		AuthURL: "https://login.example.com/auth", TokenURL: "https://login.example.com/token"}); err != nil {
		t.Fatal(err)
	}
	editorTap(t, e, "imap.open")
	ps := editorFieldOf(t, e, "param_set").sel
	if !slices.Contains(ps.Options, "Work mail") || !slices.Contains(ps.Options, editorNewParamSet) {
		t.Fatalf("parameter-set options %v", ps.Options)
	}
	ps.SetSelected("Work mail")
	port := editorFieldOf(t, e, "port").entry
	test.Type(port, "99x")
	if port.Validate() == nil || len(editorProblemsAt(e, "steps[0].params.port")) != 1 {
		t.Fatalf("a bad port passes: %v", e.problems)
	}
	port.SetText("{Port}")
	if port.Validate() != nil {
		t.Fatal("a variable in a number field is refused by the entry")
	}
	port.SetText("143")
	editorFieldOf(t, e, "security").sel.SetSelected("starttls")
	editorFieldOf(t, e, "allow_insecure_auth").check.SetChecked(true)
	editorFieldOf(t, e, "mechanism").sel.SetSelected(editorDefaultChoice)
	test.Type(editorFieldOf(t, e, "timeout").entry, "1m")
	got := e.Task().Steps[0].Params
	want := map[string]string{"param_set": "Work mail", "port": "143", "security": "starttls", "allow_insecure_auth": "true", "timeout": "1m"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("params %v, want %v", got, want)
	}
	editorFieldOf(t, e, "allow_insecure_auth").check.SetChecked(false)
	if _, set := e.Task().Steps[0].Params["allow_insecure_auth"]; set {
		t.Fatal("unchecking a bool whose default is false must unset it")
	}
}

// The picker offers exactly what task.Validate accepts at each step.
func TestEditorVariablesMirrorValidate(t *testing.T) {
	s, e, _, _ := editorTestSetup(t)
	e.Load(&task.Task{Version: 1, Name: "Scope", Variables: []task.Variable{{Name: "Target", Default: "/tmp"}}, Steps: []task.Step{
		{Action: "imap.open", Params: map[string]string{"host": "h"}},
		{Action: "imap.select"},
		{Action: "imap.loop", Body: []task.Step{{Action: "imap.download", Params: map[string]string{"folder": "/tmp/x"}}}},
		{Action: "smtp.send", Params: map[string]string{"host": "h", "from": "a@example.com"}},
	}})
	all := map[string]bool{}
	for _, v := range e.varsAt([]int{3}) {
		all[v.Name] = true
	}
	for _, path := range [][]int{{0}, {1}, {2}, {2, 0}, {3}} {
		offered := map[string]bool{}
		for _, v := range e.varsAt(path) {
			offered[v.Name] = true
		}
		for name := range all {
			tk := e.Task()
			st := &tk.Steps[path[0]]
			if len(path) == 2 {
				st = &st.Body[path[1]]
			}
			param := "connection"
			if st.Action == "smtp.send" {
				param = "subject"
			}
			if st.Params == nil {
				st.Params = map[string]string{}
			}
			st.Params[param] = "{" + name + "}"
			err := task.Validate(tk, s.Registry)
			accepted := err == nil || !strings.Contains(err.Error(), "unknown variable {"+name+"}")
			if accepted != offered[name] {
				t.Errorf("step %v: {%s} offered %v, accepted by Validate %v", path, name, offered[name], accepted)
			}
		}
	}
	if !all["Target"] || !all["MessageUID"] || !all["DownloadedFile"] || all["EmailHeader_<Name>"] {
		t.Fatalf("variables at the last step: %v", all)
	}
}

func TestEditorTaskHeaderTriggersAndPolicies(t *testing.T) {
	_, e, _, _ := editorTestSetup(t)
	e.Load(&task.Task{Version: 1, Name: "Header", Steps: []task.Step{{Action: "imap.open", Params: map[string]string{"host": "h"}}}})
	test.Type(e.descEntry, "Keeps invoices")
	test.Tap(e.enabledCheck)

	// Variables: add two rows, an empty name is a problem, fill one, remove the other.
	e.onAddVariable()
	e.onAddVariable()
	if len(editorProblemsAt(e, "variables[0].name")) != 1 {
		t.Fatalf("an empty variable name is no problem: %v", e.problems)
	}
	test.Type(e.varRows[0][0], "Folder")
	test.Type(e.varRows[0][1], "/tmp/out")
	e.onRemoveVariable(1)
	if len(e.varRows) != 1 || len(e.problems) != 0 {
		t.Fatalf("variables: %d rows, problems %v", len(e.varRows), e.problems)
	}

	// Triggers: a new one runs every 15m; switch the second to new_mail, which needs a host.
	e.onAddTrigger()
	e.onAddTrigger()
	if len(e.problems) != 0 || e.triggerRows[0].value.Text != "15m" {
		t.Fatalf("new interval triggers: %v", e.problems)
	}
	e.triggerRows[0].typ.SetSelected(task.TriggerCron)
	test.Type(e.triggerRows[0].value, "0 8 * * 1-5")
	e.triggerRows[1].typ.SetSelected(task.TriggerNewMail)
	if len(editorProblemsAt(e, "triggers[1].mail.host")) != 1 {
		t.Fatalf("a new_mail trigger without host: %v", e.problems)
	}
	test.Type(e.triggerRows[1].mail["host"].entry, "imap.example.com")
	e.triggerRows[1].mail["auth"].sel.SetSelected("password")
	e.triggerRows[1].missed.SetSelected("run_once")

	// The task policy: choosing retry fills 3 retries; a bad backoff is a problem.
	e.taskPolicyEd.policy.SetSelected(task.PolicyRetry)
	test.Type(e.taskPolicyEd.backoff, "x")
	if len(editorProblemsAt(e, "on_error.backoff")) != 1 {
		t.Fatalf("bad backoff: %v", e.problems)
	}
	e.taskPolicyEd.backoff.SetText("10s")

	// A step's policy.
	e.selectPath([]int{0})
	editorIdle(t, e)
	e.stepPolicy.policy.SetSelected(task.PolicyContinue)

	if len(e.problems) != 0 {
		t.Fatalf("problems: %v", e.problems)
	}
	got := e.Task()
	want := &task.Task{Version: 1, Name: "Header", Description: "Keeps invoices", Enabled: true,
		Variables: []task.Variable{{Name: "Folder", Default: "/tmp/out"}},
		Triggers: []task.Trigger{
			{Type: task.TriggerCron, Cron: "0 8 * * 1-5"},
			{Type: task.TriggerNewMail, Mail: map[string]string{"host": "imap.example.com", "auth": "password"}, Missed: "run_once"},
		},
		OnError: &task.OnError{Policy: task.PolicyRetry, Retries: 3, Backoff: "10s"},
		Steps: []task.Step{{Action: "imap.open", Params: map[string]string{"host": "h"},
			OnError: &task.OnError{Policy: task.PolicyContinue}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("task\n got %+v\nwant %+v", got, want)
	}
	// Back to the default policy removes it.
	e.stepPolicy.policy.SetSelected("(task's policy)")
	if e.Task().Steps[0].OnError != nil {
		t.Fatal("the inherited policy is still stored")
	}
}

// The picker types at the cursor, or appends to a field the cursor never entered.
func TestEditorPickerInsertsAtCursor(t *testing.T) {
	_, e, _, _ := editorTestSetup(t)
	editorTap(t, e, "smtp.send")
	pick := func(f *editorField, name string) {
		t.Helper()
		test.Tap(f.picker)
		i := slices.IndexFunc(e.pickerShown, func(v editorVar) bool { return v.Name == name })
		if i < 0 {
			t.Fatalf("picker lacks %s", name)
		}
		e.pickerList.Select(i)
	}
	subj := editorFieldOf(t, e, "subject")
	subj.entry.SetText("Report of ")
	pick(subj, "Date")
	if subj.entry.Text != "Report of {Date}" {
		t.Fatalf("subject %q", subj.entry.Text)
	}
	body := editorFieldOf(t, e, "text_body")
	test.Type(body.entry, "Hello\n from ")
	pick(body, "TaskName")
	test.Type(body.entry, ".")
	if body.entry.Text != "Hello\n from {TaskName}." {
		t.Fatalf("body %q", body.entry.Text)
	}
	if got := e.Task().Steps[0].Params["text_body"]; got != body.entry.Text {
		t.Fatalf("stored body %q", got)
	}
}
