package task

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/actions"
)

func openHistory(t *testing.T, dir string) *History {
	t.Helper()
	h, err := OpenHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestEngineHistoryAndLock(t *testing.T) {
	dir := t.TempDir()
	r, _, _ := engine(t, func(n int, _ actions.Values) error {
		if n == 2 {
			return errors.New("second call fails")
		}
		return nil
	})
	h := openHistory(t, dir)
	e := &Engine{DataDir: dir, Registry: r.Registry, History: h}
	tk := &Task{Name: "Nightly", Steps: []Step{{Action: "flaky", Params: map[string]string{"text": "hi"}}}}
	res, err := e.Run(context.Background(), tk, RunOptions{})
	if err != nil || res.Outcome != OutcomeSuccess {
		t.Fatalf("%+v %v", res, err)
	}
	res2, err := e.Run(context.Background(), tk, RunOptions{Trigger: "cron"})
	if err != nil || res2.Outcome != OutcomeFailed {
		t.Fatalf("%+v %v", res2, err)
	}
	runs, err := h.Runs("Nightly", 10)
	if err != nil || len(runs) != 2 || runs[0].ID != res2.RunID || runs[0].Outcome != OutcomeFailed ||
		!strings.Contains(runs[0].Error, "second call fails") || runs[0].Trigger != "cron" || runs[1].Outcome != OutcomeSuccess {
		t.Fatalf("runs %+v %v", runs, err)
	}
	_, lines, err := h.Run(res2.RunID)
	if err != nil || len(lines) < 2 {
		t.Fatalf("log %+v %v", lines, err)
	}
	var all []string
	for _, l := range lines {
		all = append(all, l.Level+" "+l.Step+" "+l.Message)
	}
	if !strings.Contains(strings.Join(all, "\n"), "ERROR steps[0] step failed") {
		t.Fatalf("log lines:\n%s", strings.Join(all, "\n"))
	}
	if _, _, err := h.Run("nope"); err == nil {
		t.Fatal("unknown run id")
	}

	// A second run while one holds the lock (another process would hold the same file lock).
	unlock, err := e.lock("nightly")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background(), tk, RunOptions{}); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("concurrent run: %v", err)
	}
	unlock()

	n, err := h.Prune(time.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("prune: %d %v", n, err)
	}
}

func TestCheckpointsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	h := openHistory(t, dir)
	cp := h.Checkpoints("T")
	if _, ok, err := cp.Load("k"); ok || err != nil {
		t.Fatal("empty store has a value")
	}
	if err := cp.Store("k", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := cp.Store("k", "v2"); err != nil {
		t.Fatal(err)
	}
	h.Close()
	h2 := openHistory(t, dir)
	if v, ok, err := h2.Checkpoints("T").Load("k"); !ok || v != "v2" || err != nil {
		t.Fatalf("%q %v %v", v, ok, err)
	}
	if _, ok, _ := h2.Checkpoints("Other").Load("k"); ok {
		t.Fatal("checkpoints leak between tasks")
	}
}

func TestTaskStore(t *testing.T) {
	s := NewStore(t.TempDir())
	tk := &Task{Name: "Save ../attachments", Enabled: true, Steps: []Step{{Action: "echo"}}}
	if err := s.Put(tk); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("save ../ATTACHMENTS")
	if err != nil || got.Name != tk.Name || got.Version != Version {
		t.Fatalf("%+v %v", got, err)
	}
	if FileName(tk.Name) != "save ___attachments.json" {
		t.Fatalf("file name %q", FileName(tk.Name))
	}
	list, errs := s.List()
	if len(list) != 1 || len(errs) != 0 {
		t.Fatalf("%v %v", list, errs)
	}
	if _, err := s.Get("missing"); !errors.Is(err, ErrNoTask) {
		t.Fatal(err)
	}
	if err := s.Delete(tk.Name); err != nil {
		t.Fatal(err)
	}
}

func TestEngineOnFailureRunsTask(t *testing.T) {
	dir := t.TempDir()
	r, calls, _ := engine(t, func(int, actions.Values) error { return errors.New("mailbox full") })
	h := openHistory(t, dir)
	st := NewStore(dir)
	e := &Engine{DataDir: dir, Registry: r.Registry, History: h, Tasks: st}
	alert := &Task{Name: "Alert", Steps: []Step{{Action: "echo", Params: map[string]string{"text": "{FailedTask} failed at {FailedStep}: {FailedError}"}}}}
	if err := Validate(alert, r.Registry); err != nil {
		t.Fatalf("a failure task validates on its own: %v", err)
	}
	if err := st.Put(alert); err != nil {
		t.Fatal(err)
	}
	tk := &Task{Name: "Main", OnError: &OnError{Policy: PolicyStop, RunTask: "alert"},
		Steps: []Step{{Action: "flaky", Label: "Fetch"}}}
	res, err := e.Run(context.Background(), tk, RunOptions{})
	if err != nil || res.Outcome != OutcomeFailed {
		t.Fatalf("%+v %v", res, err)
	}
	want := "echo:Main failed at steps[0] (Fetch): steps[0] (Fetch): mailbox full"
	if len(*calls) != 2 || (*calls)[1] != want {
		t.Fatalf("calls %q", *calls)
	}
	runs, _ := h.Runs("Alert", 5)
	if len(runs) != 1 || runs[0].Trigger != "on failure of Main" || runs[0].Outcome != OutcomeSuccess {
		t.Fatalf("alert runs %+v", runs)
	}
	bad := &Task{Name: "x", Steps: []Step{{Action: "echo", OnError: &OnError{Policy: "stop", RunTask: "alert"}}}}
	if err := Validate(bad, r.Registry); err == nil || !strings.Contains(err.Error(), "run_task belongs") {
		t.Fatalf("step-level run_task: %v", err)
	}
}
