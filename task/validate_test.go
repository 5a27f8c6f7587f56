package task

import (
	"context"
	"strings"
	"testing"

	"github.com/mailwright/mailwright/actions"
)

// testAction is a registry entry for validation tests: validation only reads schemas.
type testAction struct{ s actions.Schema }

func (a testAction) Schema() actions.Schema                                     { return a.s }
func (a testAction) Run(context.Context, *actions.Env) error                    { return nil }
func (a testLoop) Loop(context.Context, *actions.Env) (actions.Iterator, error) { return nil, nil }

type testLoop struct{ testAction }

func testRegistry(t *testing.T) *actions.Registry {
	t.Helper()
	r := actions.NewRegistry()
	err := r.Register(
		testAction{actions.Schema{ID: "t.open", Title: "Open", Params: []actions.Param{
			{Name: "host", Label: "Host", Kind: actions.KindText, Required: true},
			{Name: "port", Label: "Port", Kind: actions.KindNumber, Default: "993"},
		}}},
		testLoop{testAction{actions.Schema{ID: "t.loop", Title: "Loop", IsLoop: true,
			Params:  []actions.Param{{Name: "max", Label: "Max", Kind: actions.KindNumber}},
			Outputs: []actions.Output{{Name: "MessageUID"}}}}},
		testAction{actions.Schema{ID: "t.save", Title: "Save", Params: []actions.Param{
			{Name: "folder", Label: "Folder", Kind: actions.KindFolder, Required: true},
			{Name: "name", Label: "Name", Kind: actions.KindText},
		}, Outputs: []actions.Output{{Name: "SavedFile"}}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestValidateReportsEverything(t *testing.T) {
	reg := testRegistry(t)
	tk := &Task{Version: 1, Name: "x",
		Variables: []Variable{{Name: "Dest", Default: "/tmp"}, {Name: "bad name"}},
		Steps: []Step{
			{Action: "t.open", Params: map[string]string{"port": "abc", "hots": "x"}},
			{Action: "t.lop"},
			{Action: "t.loop", Params: map[string]string{"max": "{Limit}"}, Body: []Step{
				{Action: "t.save", Params: map[string]string{"folder": "{Dest}/{MessageUID}", "name": "{SavedFile}"}},
				{Action: "t.save", Params: map[string]string{"folder": "{Dest", "name": "{SavedFile}.copy"}},
			}},
			{Action: "t.save", Params: map[string]string{"folder": "x"}, Body: []Step{{Action: "t.open"}}},
		},
		OnError:  &OnError{Policy: "retry"},
		Triggers: []Trigger{{Type: "interval", Every: "10ms"}, {Type: "hourly"}},
	}
	err := Validate(tk, reg)
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("Validate = %v", err)
	}
	want := map[string]string{
		"variables[1].name":              "not a variable name",
		"steps[0].params.hots":           `did you mean "host"`,
		"steps[0].params.host":           "required",
		"steps[0].params.port":           "not a whole number",
		"steps[1].action":                `unknown action "t.lop" (did you mean "t.loop"?)`,
		"steps[2].params.max":            "unknown variable {Limit}",
		"steps[2].body[0].params.name":   "unknown variable {SavedFile}",
		"steps[2].body[1].params.folder": "unclosed {",
		"steps[3].body":                  "not a loop",
		"on_error.retries":               "between 1 and 100",
		"triggers[0].every":              "at least 1s",
		"triggers[1].type":               "not cron, interval",
	}
	got := map[string]string{}
	for _, p := range ve.Problems {
		got[p.Path] += p.Message
	}
	for path, frag := range want {
		if !strings.Contains(got[path], frag) {
			t.Errorf("%s: got %q, want it to contain %q", path, got[path], frag)
		}
	}
	if len(got) != len(want) {
		t.Errorf("problems: %v", ve.Problems)
	}
	// The body's second step may use the first's output: no problem at body[1].params.name.
	if _, bad := got["steps[2].body[1].params.name"]; bad {
		t.Error("an earlier body step's output was not visible to a later one")
	}
	if err := Validate(&Task{Name: "ok", Steps: []Step{{Action: "t.open", Params: map[string]string{"host": "h"}}}}, reg); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&Task{Name: "v", Steps: []Step{{Action: "t.save", Params: map[string]string{"folder": "{Out}"}}}}, reg, "Out"); err != nil {
		t.Fatalf("--var names count as known: %v", err)
	}
}

func TestParseTaskErrors(t *testing.T) {
	cases := map[string]string{
		`{"name":"a"}`:             `no "version"`,
		`{"version":2,"name":"a"}`: "version 2 is not supported",
		"{\"version\":1,\n\"name\":\"a\",\n\"stpes\":[]}": `unknown field "stpes"`,
		"{\"version\":1,\n\"name\":5}":                    `line 2: "name" must be string`,
		"{\"version\":1,\n\"steps\":[}":                   "line 2",
		`{"version":1,"name":"a"} {}`:                     "after top-level value",
	}
	for in, frag := range cases {
		_, err := Parse(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("Parse(%q) = %v, want %q", in, err, frag)
		}
	}
	tk, err := Parse(strings.NewReader(`{"version":1,"name":"a","enabled":true,"steps":[{"action":"x","params":{"a":"b"},"body":[{"action":"y"}]}]}`))
	if err != nil || tk.Steps[0].Body[0].Action != "y" {
		t.Fatalf("%+v %v", tk, err)
	}
	b, err := tk.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tk2, err := Parse(strings.NewReader(string(b)))
	if err != nil || tk2.Steps[0].Params["a"] != "b" {
		t.Fatalf("round trip: %v", err)
	}
}
