package task

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailwright/mailwright/actions"
)

// The engine's own logic (expansion, policies, loop commits) is tested here with small
// in-memory actions; the actions themselves are tested against real servers in package
// actions, and end-to-end tasks in e2e_test.go.

// recAction records the expanded params it ran with and fails as told.
type recAction struct {
	id    string
	calls *[]string
	fail  func(n int, v actions.Values) error
	n     int
}

func (a *recAction) Schema() actions.Schema {
	return actions.Schema{ID: a.id, Title: a.id, Params: []actions.Param{
		{Name: "text", Label: "Text", Kind: actions.KindText},
	}, Outputs: []actions.Output{{Name: "Echo"}}}
}

func (a *recAction) Run(ctx context.Context, env *actions.Env) error {
	a.n++
	*a.calls = append(*a.calls, a.id+":"+env.Params.String("text"))
	env.SetVar("Echo", env.Params.String("text"))
	if a.fail != nil {
		return a.fail(a.n, env.Params)
	}
	return nil
}

// countLoop yields items 1..N and records commits.
type countLoop struct {
	commits *[]string
	n       int
}

func (l *countLoop) Schema() actions.Schema {
	return actions.Schema{ID: "count", Title: "Count", IsLoop: true,
		Params:  []actions.Param{{Name: "n", Label: "N", Kind: actions.KindNumber, Default: "3"}},
		Outputs: []actions.Output{{Name: "Item"}}}
}
func (l *countLoop) Run(context.Context, *actions.Env) error { return errors.New("loop") }
func (l *countLoop) Loop(ctx context.Context, env *actions.Env) (actions.Iterator, error) {
	return &countIter{l: l, env: env, max: int(env.Params.Int("n"))}, nil
}

type countIter struct {
	l   *countLoop
	env *actions.Env
	i   int
	max int
}

func (it *countIter) Next(context.Context) (bool, error) {
	if it.i >= it.max {
		return false, nil
	}
	it.i++
	it.env.SetVar("Item", strconv.Itoa(it.i))
	return true, nil
}
func (it *countIter) Commit(_ context.Context, ok bool) error {
	*it.l.commits = append(*it.l.commits, fmt.Sprintf("%d:%v", it.i, ok))
	return nil
}
func (it *countIter) Close() error { return nil }

func engine(t *testing.T, fail func(n int, v actions.Values) error) (*Runner, *[]string, *[]string) {
	t.Helper()
	var calls, commits []string
	reg := actions.NewRegistry()
	if err := reg.Register(&recAction{id: "echo", calls: &calls}, &recAction{id: "flaky", calls: &calls, fail: fail}, &countLoop{commits: &commits}); err != nil {
		t.Fatal(err)
	}
	r := &Runner{Registry: reg, Now: func() time.Time { return time.Date(2026, 11, 23, 9, 5, 0, 0, time.UTC) },
		Sleep: func(context.Context, time.Duration) error { return nil }}
	return r, &calls, &commits
}

func TestRunnerVariablesAndLoop(t *testing.T) {
	r, calls, commits := engine(t, func(n int, v actions.Values) error {
		if v.String("text") == "item 2" {
			return errors.New("boom")
		}
		return nil
	})
	tk := &Task{Name: "T", Variables: []Variable{{Name: "Who", Default: "world"}}, Steps: []Step{
		{Action: "echo", Params: map[string]string{"text": "hello {Who} {{literal}} {Date}"}},
		{Action: "count", Params: map[string]string{"n": "3"}, OnError: &OnError{Policy: PolicyContinue}, Body: []Step{
			{Action: "flaky", Params: map[string]string{"text": "item {Item}"}, OnError: &OnError{Policy: PolicyContinue}},
			{Action: "echo", Params: map[string]string{"text": "after {Echo} / {LastError}"}},
		}},
	}}
	res := r.Run(context.Background(), tk, RunOptions{Vars: map[string]string{"Who": "Ann"}})
	if res.Outcome != OutcomeSuccess || res.Items != 3 || res.Failures != 1 {
		t.Fatalf("result %+v", res)
	}
	want := "echo:hello Ann {literal} 2026-11-23|flaky:item 1|echo:after item 1 /|flaky:item 2|echo:after item 2 / boom|flaky:item 3|echo:after item 3 / boom"
	if got := strings.Join(*calls, "|"); got != want {
		t.Fatalf("calls\n got %s\nwant %s", got, want)
	}
	// Item 2's body had a failed step: it is committed as not done, so it is retried next run.
	if got := strings.Join(*commits, " "); got != "1:true 2:false 3:true" {
		t.Fatalf("commits %s", got)
	}
}

func TestRunnerStopPolicyAndStepPath(t *testing.T) {
	r, calls, commits := engine(t, func(int, actions.Values) error { return errors.New("bad folder") })
	tk := &Task{Name: "T", Steps: []Step{
		{Action: "count", Body: []Step{{Action: "flaky", Label: "Save it"}}},
		{Action: "echo", Params: map[string]string{"text": "never"}},
	}}
	res := r.Run(context.Background(), tk, RunOptions{})
	if res.Outcome != OutcomeFailed || res.Err == nil || !strings.Contains(res.Err.Error(), "steps[0].body[0] (Save it): bad folder") {
		t.Fatalf("result %+v", res)
	}
	var se *StepError
	if !errors.As(res.Err, &se) || se.Path != "steps[0]" {
		t.Fatalf("outer step error: %#v", res.Err)
	}
	if strings.Join(*calls, "|") != "flaky:" || strings.Join(*commits, " ") != "1:false" {
		t.Fatalf("calls %v commits %v", *calls, *commits)
	}
}

func TestRunnerRetryOnlyTemporary(t *testing.T) {
	r, calls, _ := engine(t, func(n int, _ actions.Values) error {
		if n < 3 {
			return fmt.Errorf("connect: %w", syscall.ECONNREFUSED)
		}
		return nil
	})
	tk := &Task{Name: "T", Steps: []Step{{Action: "flaky", OnError: &OnError{Policy: PolicyRetry, Retries: 3, Backoff: "1s"}}}}
	if res := r.Run(context.Background(), tk, RunOptions{}); res.Outcome != OutcomeSuccess || len(*calls) != 3 {
		t.Fatalf("retry: %+v calls %v", res, *calls)
	}
	r2, calls2, _ := engine(t, func(int, actions.Values) error { return errors.New("no such folder") })
	if res := r2.Run(context.Background(), tk, RunOptions{}); res.Outcome != OutcomeFailed || len(*calls2) != 1 {
		t.Fatalf("permanent errors are not retried: %+v calls %v", res, *calls2)
	}
}

func TestRunnerCancelAndValidation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, calls, commits := engine(t, func(n int, _ actions.Values) error {
		if n == 2 {
			cancel()
		}
		return nil
	})
	tk := &Task{Name: "T", Steps: []Step{{Action: "count", Params: map[string]string{"n": "5"}, Body: []Step{{Action: "flaky"}, {Action: "echo"}}}}}
	res := r.Run(ctx, tk, RunOptions{})
	if res.Outcome != OutcomeCancelled {
		t.Fatalf("result %+v", res)
	}
	// Cancelled after item 2's first step: item 2 is not done, nothing after it ran.
	if strings.Join(*commits, " ") != "1:true 2:false" || len(*calls) != 3 {
		t.Fatalf("calls %v commits %v", *calls, *commits)
	}
	res = r.Run(context.Background(), &Task{Name: "T", Steps: []Step{{Action: "echo", Params: map[string]string{"text": "{Nope}"}}}}, RunOptions{})
	if res.Outcome != OutcomeFailed || !strings.Contains(res.Err.Error(), "unknown variable {Nope}") || len(*calls) != 3 {
		t.Fatalf("validation must fail before any step: %+v", res)
	}
}
