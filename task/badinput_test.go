package task

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwright/mailwright/actions"
)

// badInputTask is a valid task file the bad-input cases are made from.
const badInputTask = `{
  "version": 1,
  "name": "Save",
  "variables": [{"name": "Dest", "default": "/tmp"}],
  "steps": [
    {"action": "email.parse", "params": {"file": "{Dest}/a.eml"}}
  ]
}
`

// badInputImport does what `mailwright task import` does with one file: parse, validate,
// refuse a name in use, store.
func badInputImport(st *Store, reg *actions.Registry, data []byte) error {
	t, err := Parse(bytes.NewReader(data))
	if err != nil {
		return err
	}
	if err := Validate(t, reg); err != nil {
		return err
	}
	return st.Put(t)
}

// badInputSnapshot returns every file of dir with its content.
func badInputSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, rerr := os.ReadFile(p)
			if rerr != nil {
				t.Fatal(rerr)
			}
			out[p] = string(b)
		}
		return err
	})
	return out
}

// TestBadInputTaskFiles feeds broken task files through import: each is refused with an
// error that says what is wrong (and where), and the stored tasks stay as they were.
func TestBadInputTaskFiles(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(badInputTask, old) {
			t.Fatalf("edit: %q not in the base task", old)
		}
		return strings.Replace(badInputTask, old, new, 1)
	}
	deep := strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001)
	cases := []struct{ name, file, want string }{
		{"empty", "", "unexpected end of JSON input"},
		{"truncated", badInputTask[:len(badInputTask)/2], "unexpected end of JSON input"},
		{"cut inside a string", badInputTask[:strings.Index(badInputTask, "Save")+2], "unexpected end of JSON input"},
		{"not an object", `[1, 2]`, "cannot unmarshal array"},
		{"binary", "\x00\xff\xfe{", "line 1: invalid character"},
		{"syntax error with line", edit(`"name": "Save",`, `"name": "Save",,`), "task file line 3: invalid character ','"},
		{"trailing data", badInputTask + `{"version": 1}`, "after top-level value"},
		{"version missing", edit(`"version": 1,`, ``), `no "version"`},
		{"version too new", edit(`"version": 1`, `"version": 2`), "version 2 is not supported"},
		{"version a string", edit(`"version": 1`, `"version": "1"`), `"version" must be int, not JSON string`},
		{"steps an object", edit(`"steps": [`, `"steps": {"a": [`) + "}", "task file line 5"},
		{"param a number", edit(`"file": "{Dest}/a.eml"`, `"file": 5`), `"steps.params" must be string, not JSON number`},
		{"enabled a string", edit(`"name": "Save",`, `"name": "Save", "enabled": "yes",`), `"enabled" must be bool`},
		{"unknown field", edit(`"params":`, `"parmas":`), `unknown field "parmas"`},
		{"oversized", badInputTask + strings.Repeat(" ", MaxFileSize), "larger than 16 MiB"},
		{"nested 10,001 deep", edit(`"name": "Save",`, `"name": "Save", "description": `+deep+`,`), "exceeded max depth"},
		{"duplicate key", edit(`"name": "Save",`, `"name": "Save", "name": "Other",`), `line 3: "name" is given twice`},
		{"duplicate key in params", edit(`"file": "{Dest}/a.eml"`, `"file": "a.eml", "file": "b.eml"`), `line 6: "file" is given twice`},
		{"duplicate key differing in case", edit(`"name": "Save",`, `"name": "Save", "Name": "Other",`), `"Name" is given twice`},
		{"duplicate variables", edit(`{"name": "Dest", "default": "/tmp"}`, `{"name": "Dest"}, {"name": "Dest"}`),
			`variables[1].name: "Dest" is also the name of variables[0]`},
		{"no name", edit(`"name": "Save"`, `"name": "  "`), "name: the task needs a name"},
		{"name with NUL", edit(`"name": "Save"`, `"name": "Sa\u0000ve"`), "name: the name must not contain control characters"},
		{"name with a line break", edit(`"name": "Save"`, `"name": "Save\nrun succeeded"`), "must not contain control characters"},
		{"name of 300 characters", edit(`"name": "Save"`, `"name": "`+strings.Repeat("n", 300)+`"`), "300 characters long: use at most 100"},
		{"name too long as a file name", edit(`"name": "Save"`, `"name": "`+strings.Repeat("日", 100)+`"`), "more than file systems allow"},
		{"unknown action", edit(`"email.parse"`, `"email.prase"`), `unknown action "email.prase" (did you mean "email.parse"?)`},
		{"unknown variable", edit(`{Dest}`, `{Dset}`), "unknown variable {Dset}"},
		{"unclosed brace", edit(`{Dest}/a.eml`, `{Dest/a.eml`), "unclosed {"},
		{"empty steps", edit(`{"action": "email.parse", "params": {"file": "{Dest}/a.eml"}}`, ``), "steps: the task has no steps"},
	}
	reg := actions.NewDefaultRegistry()
	st := NewStore(t.TempDir())
	existing, err := Parse(strings.NewReader(strings.Replace(badInputTask, `"Save"`, `"Existing"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(existing); err != nil {
		t.Fatal(err)
	}
	before := badInputSnapshot(t, st.Dir())
	if err := badInputImport(NewStore(t.TempDir()), reg, []byte(badInputTask)); err != nil {
		t.Fatalf("the base task is refused: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := badInputImport(st, reg, []byte(tc.file))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %.300q\nwant it to contain %q", err.Error(), tc.want)
			}
			if len(err.Error()) > 2000 {
				t.Errorf("error of %d bytes: it should say what is wrong, not repeat the input", len(err.Error()))
			}
			after := badInputSnapshot(t, st.Dir())
			if len(after) != len(before) {
				t.Fatalf("the store changed: %d files, want %d", len(after), len(before))
			}
			for p, b := range before {
				if after[p] != b {
					t.Fatalf("%s changed", p)
				}
			}
		})
	}
}

// TestBadInputTaskNamesShareAFile: two names that differ only in characters a file name
// cannot hold map to one file; saving the second must not replace the first.
func TestBadInputTaskNamesShareAFile(t *testing.T) {
	st := NewStore(t.TempDir())
	steps := []Step{{Action: "email.parse"}}
	if err := st.Put(&Task{Name: "Mail a/b", Steps: steps, Description: "first"}); err != nil {
		t.Fatal(err)
	}
	err := st.Put(&Task{Name: "mail a:b", Steps: steps, Description: "second"})
	if err == nil || !strings.Contains(err.Error(), `already holds the task "Mail a/b"`) {
		t.Fatalf("Put of a name sharing the file: %v", err)
	}
	if got, err := st.Get("Mail a/b"); err != nil || got.Description != "first" {
		t.Fatalf("the first task was replaced: %+v, %v", got, err)
	}
	// The same name in another case is the same task: it is replaced.
	if err := st.Put(&Task{Name: " MAIL A/B ", Steps: steps, Description: "third"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Get("mail a/b"); got.Description != "third" {
		t.Fatalf("not replaced: %+v", got)
	}
}

// TestSecurityTaskSecretNotEchoed: a password that contains braces is not a valid
// {Variable} text; the error says so without quoting any part of the password (the error
// goes to the terminal, the run history and {LastError}).
func TestSecurityTaskSecretNotEchoed(t *testing.T) {
	reg := actions.NewDefaultRegistry()
	for _, pw := range []string{"S3cr{etPart}Zq", "S3cr{etPartZq", "S3cr{et Part}Zq", "S3cr{}Zq"} {
		tk := &Task{Name: "T", Steps: []Step{{Action: "imap.open", Params: map[string]string{
			"host": "imap.example.com", "auth": "password", "user": "u", "password": pw}}}}
		err := Validate(tk, reg)
		if err == nil || !strings.Contains(err.Error(), "steps[0].params.password: the value has a { that does not start a reference") {
			t.Fatalf("%q: Validate = %v", pw, err)
		}
		res := (&Runner{Registry: reg}).Run(context.Background(), tk, RunOptions{})
		if res.Err == nil {
			t.Fatalf("%q: the run succeeded", pw)
		}
		for _, e := range []string{err.Error(), res.Err.Error()} {
			for _, part := range []string{"etPart", "S3cr", "Zq"} {
				if strings.Contains(e, part) {
					t.Errorf("%q: the error shows part of the password: %s", pw, e)
				}
			}
		}
	}
	// Other parameters still say exactly what is wrong.
	tk := &Task{Name: "T", Steps: []Step{{Action: "imap.open", Params: map[string]string{"host": "{Hots}"}}}}
	if err := Validate(tk, reg); err == nil || !strings.Contains(err.Error(), "unknown variable {Hots}") {
		t.Fatalf("Validate = %v", err)
	}
}

// FuzzTaskFile parses arbitrary task files and validates those that parse against the
// real actions. Neither may panic; a file that parses must survive Marshal and Parse
// again unchanged, with the same validation outcome.
func FuzzTaskFile(f *testing.F) {
	f.Add([]byte(badInputTask))
	f.Add([]byte(badInputTask[:60]))
	f.Add([]byte(`{"version":1,"name":"a","name":"b","steps":[]}`))
	f.Add([]byte(`{"version":1,"name":"x","steps":[{"action":"imap.loop","body":[{"action":"imap.loop","body":[]}]}],"on_error":{"policy":"retry","retries":3,"backoff":"1s"},"triggers":[{"type":"cron","cron":"*/5 * * * *"}]}`))
	examples, _ := filepath.Glob(filepath.Join("..", "examples", "*.json"))
	for _, e := range examples {
		if b, err := os.ReadFile(e); err == nil {
			f.Add(b)
		}
	}
	reg := actions.NewDefaultRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := Parse(bytes.NewReader(data))
		if err != nil {
			if tk != nil {
				t.Fatal("Parse returned a task with an error")
			}
			return
		}
		verr := Validate(tk, reg)
		out, err := tk.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		tk2, err := Parse(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("Parse(Marshal(task)) failed: %v\n%s", err, out)
		}
		out2, err := tk2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the task:\n%s\n%s", out, out2)
		}
		if verr2 := Validate(tk2, reg); (verr == nil) != (verr2 == nil) {
			t.Fatalf("validation differs after a round trip: %v / %v", verr, verr2)
		}
	})
}
