package task

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// fakeClock is a Clock whose time moves only when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	gen     int // After calls so far
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	c.gen++
	return ch
}

// Advance moves time by d in one-second steps, waking due waiters, and waits (briefly, by
// polling) for the scheduler to be waiting again after each wake-up.
func (c *fakeClock) Advance(t *testing.T, d time.Duration) {
	t.Helper()
	end := c.Now().Add(d)
	for c.Now().Before(end) {
		c.mu.Lock()
		gen := c.gen
		c.now = c.now.Add(time.Second)
		kept := c.waiters[:0]
		woke := 0
		for _, w := range c.waiters {
			if !w.at.After(c.now) {
				w.ch <- c.now
				woke++
			} else {
				kept = append(kept, w)
			}
		}
		c.waiters = kept
		c.mu.Unlock()
		if woke > 0 {
			c.waitForWaiter(t, gen)
		}
	}
}

// waitForWaiter polls until the scheduler has called After since generation gen.
func (c *fakeClock) waitForWaiter(t *testing.T, gen int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		g := c.gen
		c.mu.Unlock()
		if g > gen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the scheduler did not wait again")
		}
		time.Sleep(time.Millisecond)
	}
}

func waitRuns(t *testing.T, h *History, task string, n int) []RunRecord {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		runs, err := h.Runs(task, 100)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, r := range runs {
			if r.Outcome != "running" {
				done++
			}
		}
		if done >= n {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %q: %d finished runs, want %d", task, done, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSchedulerIntervalCronAndMissed(t *testing.T) {
	dir := t.TempDir()
	r, _, _ := engine(t, nil)
	h := openHistory(t, dir)
	st := NewStore(dir)
	put := func(tk *Task) {
		if err := st.Put(tk); err != nil {
			t.Fatal(err)
		}
	}
	step := []Step{{Action: "echo", Params: map[string]string{"text": "{TaskName}"}}}
	put(&Task{Name: "every2m", Enabled: true, Triggers: []Trigger{{Type: TriggerInterval, Every: "2m"}}, Steps: step})
	put(&Task{Name: "cron5", Enabled: true, Triggers: []Trigger{{Type: TriggerCron, Cron: "*/5 * * * *"}}, Steps: step})
	put(&Task{Name: "off", Enabled: false, Triggers: []Trigger{{Type: TriggerInterval, Every: "1m"}}, Steps: step})
	// Fired last at 08:00, missed the 08:30 slot while "the machine was off": run once at start.
	put(&Task{Name: "missed", Enabled: true, Triggers: []Trigger{{Type: TriggerCron, Cron: "30 8 * * *", Missed: "run_once"}}, Steps: step})
	if err := h.Checkpoints("missed").Store("trigger:0:cron", "2026-11-23T08:00:00Z"); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock(time.Date(2026, 11, 23, 9, 0, 30, 0, time.UTC))
	s := &Scheduler{Engine: &Engine{DataDir: dir, Registry: r.Registry, History: h}, Store: st, Clock: clock, Reload: time.Hour, Log: newWatchLog(make(chan struct{}, 1), t.Logf)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	clock.waitForWaiter(t, 0)
	waitRuns(t, h, "missed", 1)
	// Advance in steps shorter than the triggers' periods, letting each run finish (runs of
	// one task never overlap: a start while it runs is skipped and logged).
	for i, want := range []int{1, 2, 3, 4, 5} { // every2m at 09:02:30, 09:04:30, …, 09:10:30
		clock.Advance(t, 2*time.Minute)
		waitRuns(t, h, "every2m", want)
		if i == 2 {
			waitRuns(t, h, "cron5", 1) // 09:05, seen at 09:06:30
		}
	}
	waitRuns(t, h, "cron5", 2) // 09:10
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"every2m": 5, "cron5": 2, "off": 0, "missed": 1} {
		runs, _ := h.Runs(name, 100)
		if len(runs) != want {
			t.Errorf("%s: %d runs, want %d", name, len(runs), want)
		}
	}
	runs, _ := h.Runs("cron5", 10)
	if runs[0].Trigger != TriggerCron || runs[0].Outcome != OutcomeSuccess {
		t.Fatalf("%+v", runs[0])
	}
}

func TestTriggerNext(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	iv := Trigger{Type: TriggerInterval, Every: "10m"}
	if n := iv.Next(at, at.Add(-25*time.Minute)); !n.Equal(at.Add(5 * time.Minute)) {
		t.Fatalf("interval behind schedule: %v", n)
	}
	once := Trigger{Type: TriggerOnce, At: "2026-11-23T10:00:00Z"}
	if n := once.Next(at, time.Time{}); n.Hour() != 10 {
		t.Fatalf("once: %v", n)
	}
	if n := once.Next(at.Add(2*time.Hour), time.Time{}); !n.IsZero() {
		t.Fatal("a past once trigger does not fire")
	}
	if !once.WasMissed(time.Time{}, at.Add(2*time.Hour)) {
		t.Fatal("a once trigger in the past with no fire is missed")
	}
	sec := Trigger{Type: TriggerCron, Cron: "*/20 * * * * *"}
	if n := sec.Next(at, time.Time{}); !n.Equal(at.Add(20 * time.Second)) {
		t.Fatalf("six-field cron: %v", n)
	}
	if _, err := ParseCron("61 * * * *"); err == nil {
		t.Fatal("bad cron accepted")
	}
}

// cutProxy relays TCP to target and can cut every open connection (a server restart, as
// far as the client can tell).
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	down  bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// cut closes every relayed connection; down refuses new ones until cut(false).
func (p *cutProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.down = down
}

// TestNewMailTriggerSurvivesRestart: a new_mail trigger over IMAP IDLE fires on new mail,
// keeps working after the connection is cut and refused for a while (a server restart),
// and fires for mail that arrived while it was disconnected.
func TestNewMailTriggerSurvivesRestart(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	dc.SeedN(t, u.Name, "INBOX", 2, 300)
	proxy := startCutProxy(t, dc.Addr(dc.IMAPSPort))
	dir := t.TempDir()
	r, _, _ := engine(t, nil)
	h := openHistory(t, dir)
	st := NewStore(dir)
	mail := map[string]string{"host": "localhost", "port": strconv.Itoa(proxy.port()), "security": "tls", "auth": "password",
		"user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile, "folder": "INBOX"}
	if err := st.Put(&Task{Name: "on mail", Enabled: true, Triggers: []Trigger{{Type: TriggerNewMail, Mail: mail}},
		Steps: []Step{{Action: "echo", Params: map[string]string{"text": "got mail"}}}}); err != nil {
		t.Fatal(err)
	}
	watching := make(chan struct{}, 10)
	log := newWatchLog(watching, t.Logf)
	s := &Scheduler{Engine: &Engine{DataDir: dir, Registry: r.Registry, History: h}, Store: st, Log: log, Reload: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitWatching(t, watching)
	if runs, _ := h.Runs("on mail", 10); len(runs) != 0 {
		t.Fatalf("fired without new mail: %+v", runs)
	}
	dc.SeedN(t, u.Name, "INBOX", 1, 300)
	waitRuns(t, h, "on mail", 1)

	proxy.cut(true) // the server goes away…
	dc.SeedN(t, u.Name, "INBOX", 1, 300)
	time.Sleep(1500 * time.Millisecond) // …long enough for at least one refused reconnection
	proxy.cut(false)
	waitWatching(t, watching)
	waitRuns(t, h, "on mail", 2) // mail that came while disconnected
	dc.SeedN(t, u.Name, "INBOX", 1, 300)
	waitRuns(t, h, "on mail", 3)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func waitWatching(t *testing.T, ch chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("the new-mail trigger never started watching")
	}
}

// TestSchedulerReloadsTaskFiles: a task file added while serve runs is scheduled, and one
// disabled is no longer run.
func TestSchedulerReloadsTaskFiles(t *testing.T) {
	dir := t.TempDir()
	r, _, _ := engine(t, nil)
	h := openHistory(t, dir)
	st := NewStore(dir)
	clock := newFakeClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	s := &Scheduler{Engine: &Engine{DataDir: dir, Registry: r.Registry, History: h}, Store: st, Clock: clock, Reload: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	clock.waitForWaiter(t, 0)
	late := &Task{Name: "late", Enabled: true, Triggers: []Trigger{{Type: TriggerInterval, Every: "1m"}},
		Steps: []Step{{Action: "echo"}}}
	if err := st.Put(late); err != nil {
		t.Fatal(err)
	}
	clock.Advance(t, 75*time.Second) // reload at 09:00:10, first run at 09:01:10
	waitRuns(t, h, "late", 1)
	late.Enabled = false
	if err := st.Put(late); err != nil {
		t.Fatal(err)
	}
	clock.Advance(t, 3*time.Minute)
	cancel()
	<-done
	if runs, _ := h.Runs("late", 10); len(runs) != 1 {
		t.Fatalf("a disabled task kept running: %d runs", len(runs))
	}
}
