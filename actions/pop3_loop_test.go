package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

// pop3Run is one run of a task against the harness Dovecot: a fresh test env (its own
// variables and sessions) that shares the state store of earlier runs, with POP3 Open done.
func pop3Run(t *testing.T, dc *testmail.Dovecot, state *memState) (*testEnv, *POP3Session) {
	t.Helper()
	te := newTestEnv(t)
	if state != nil {
		te.State = state
	}
	return te, pop3MustOpen(t, te, pop3Params(dc, dc.POP3SPort, SecurityTLS, nil))
}

// pop3LoopUIDLs runs a POP3 Mail Loop and returns the UIDL of each item; fail says for
// which item (by index) the body fails.
func pop3LoopUIDLs(t *testing.T, te *testEnv, params map[string]string, fail func(i int) bool) []string {
	t.Helper()
	var got []string
	_, err := te.loop(context.Background(), NewPOP3MailLoop(), params, false, func(i int) error {
		got = append(got, te.Var("MessageUIDL"))
		if fail != nil && fail(i) {
			return errors.New("a step failed")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("loop: %v", err)
	}
	return got
}

func TestPOP3LoopVariables(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	first := []byte("From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.test>\r\n" +
		"To: Alice <alice@example.test>, bob@example.test\r\nCc: \"Carol, C.\" <carol@example.test>\r\n" +
		"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus Bern\r\nDate: Mon, 15 Jan 2024 10:30:00 +0100\r\n" +
		"Message-ID: <first@mailwright.test>\r\n\r\nHallo.\r\n")
	dc.Seed(t, user, "INBOX", first)
	rest := dc.SeedN(t, user, "INBOX", 3, 5000)
	all := append([][]byte{first}, rest...)
	te, s := pop3Run(t, dc, nil)

	type seen struct {
		vars map[string]string
		body []byte
	}
	run := func(params map[string]string) []seen {
		var out []seen
		_, err := te.loop(context.Background(), NewPOP3MailLoop(), params, true, func(i int) error {
			vars := map[string]string{}
			for _, o := range NewPOP3MailLoop().Schema().Outputs {
				vars[o.Name] = te.Var(o.Name)
			}
			cur := te.Sessions.Current()
			if cur == nil || cur.Protocol != "pop3" || cur.Session != s.Name || strconv.Itoa(cur.Number) != vars["MessageNumber"] || cur.UIDL != vars["MessageUIDL"] {
				return errors.New("the current message does not match the variables")
			}
			r, err := cur.Open(context.Background())
			if err != nil {
				return err
			}
			defer r.Close()
			body, err := io.ReadAll(r)
			out = append(out, seen{vars, body})
			return err
		})
		if err != nil {
			t.Fatalf("loop %v: %v", params, err)
		}
		if te.Sessions.Current() != nil {
			t.Error("the current message is still set after the loop")
		}
		return out
	}

	got := run(nil)
	if len(got) != 4 {
		t.Fatalf("%d items, want 4", len(got))
	}
	v := got[0].vars
	for name, want := range map[string]string{
		"MessageNumber": "1", "MessageID": "first@mailwright.test", "MessageFrom": "Jörg Müller <joerg@example.test>",
		"MessageTo": "Alice <alice@example.test>, bob@example.test", "MessageCc": "Carol, C. <carol@example.test>",
		"MessageSubject": "Grüße aus Bern", "MessageDate": "2024-01-15T10:30:00+01:00", "MessageSize": strconv.Itoa(len(first)),
		"MessageIndex": "1", "MessageCount": "4",
	} {
		if v[name] != want {
			t.Errorf("%s = %q, want %q", name, v[name], want)
		}
	}
	for i, it := range got {
		uidl, err := s.Client.UIDLOne(i + 1)
		if err != nil || it.vars["MessageUIDL"] != uidl || it.vars["MessageIndex"] != strconv.Itoa(i+1) {
			t.Errorf("item %d: UIDL %q (server %q, %v), index %s", i, it.vars["MessageUIDL"], uidl, err, it.vars["MessageIndex"])
		}
		if !bytes.Equal(it.body, all[i]) {
			t.Errorf("item %d: the current message's Open did not stream the stored bytes", i)
		}
	}
	// SeedN numbers on from the message already in the folder.
	if got[1].vars["MessageSubject"] != "Test message 2" || got[1].vars["MessageDate"] != "2024-01-01T00:02:00Z" {
		t.Errorf("item 2: %v", got[1].vars)
	}

	numbers := func(items []seen) string {
		var ns []string
		for _, it := range items {
			ns = append(ns, it.vars["MessageNumber"])
		}
		return strings.Join(ns, ",")
	}
	for _, tc := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"order": "newest"}, "4,3,2,1"},
		{map[string]string{"order": "newest", "max_messages": "2"}, "4,3"},
		{map[string]string{"from_contains": "MÜLLER"}, "1"},
		{map[string]string{"from_contains": "sender@example", "max_messages": "2"}, "2,3"},
		{map[string]string{"subject_contains": "grüße"}, "1"},
		{map[string]string{"subject_contains": "message 3", "from_contains": "mailwright sender"}, "3"},
		{map[string]string{"larger_than": strconv.Itoa(len(first))}, "2,3,4"},
		{map[string]string{"smaller_than": strconv.Itoa(len(first) + 1)}, "1"},
		{map[string]string{"subject_contains": "no such subject"}, ""},
	} {
		items := run(tc.params)
		if n := numbers(items); n != tc.want {
			t.Errorf("%v: messages %q, want %q", tc.params, n, tc.want)
		}
		if len(items) > 0 && items[0].vars["MessageCount"] != strconv.Itoa(len(items)) {
			t.Errorf("%v: MessageCount %s for %d items", tc.params, items[0].vars["MessageCount"], len(items))
		}
	}
}

// pop3SeenState decodes the loop's state: the main value's UIDLs and those of the
// journal parts of the same generation.
func pop3SeenState(t *testing.T, st *memState) (base, journal []string) {
	t.Helper()
	var main pop3SeenValue
	raw, ok, _ := st.LoadScoped(pop3SeenKey)
	if !ok || json.Unmarshal([]byte(raw), &main) != nil {
		t.Fatalf("state %q = %q", pop3SeenKey, raw)
	}
	for k := 1; ; k++ {
		raw, ok, _ := st.LoadScoped(pop3SeenPartKey(k))
		var part pop3SeenValue
		if !ok || json.Unmarshal([]byte(raw), &part) != nil || part.Gen != main.Gen {
			return main.UIDLs, journal
		}
		journal = append(journal, part.UIDLs...)
	}
}

// pop3SeenPending decodes the UIDLs the loop's state records as pending deletion.
func pop3SeenPending(t *testing.T, st *memState) []string {
	t.Helper()
	var main pop3SeenValue
	raw, ok, _ := st.LoadScoped(pop3SeenKey)
	if !ok || json.Unmarshal([]byte(raw), &main) != nil {
		t.Fatalf("state %q = %q", pop3SeenKey, raw)
	}
	pending := main.Dele
	for k := 1; ; k++ {
		raw, ok, _ := st.LoadScoped(pop3SeenPartKey(k))
		var part pop3SeenValue
		if !ok || json.Unmarshal([]byte(raw), &part) != nil || part.Gen != main.Gen {
			slices.Sort(pending)
			return pending
		}
		pending = append(pending, part.Dele...)
	}
}

func TestPOP3LoopOnlyNew(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "INBOX", 5, 1200)
	state := &memState{m: map[string]string{}}
	onlyNew := map[string]string{"only_new": "true"}

	// Run 1: the body fails for the third message; it is not recorded.
	te, _ := pop3Run(t, dc, state)
	run1 := pop3LoopUIDLs(t, te, onlyNew, func(i int) bool { return i == 2 })
	if len(run1) != 5 {
		t.Fatalf("run 1: %d messages", len(run1))
	}
	te.mustRun(NewPOP3Close(), nil)
	if base, journal := pop3SeenState(t, state); len(base) != 0 || strings.Join(journal, ",") != strings.Join(slices.Delete(slices.Clone(run1), 2, 3), ",") {
		t.Fatalf("after run 1 the state holds %q + %q", base, journal)
	}

	// Run 2: two new messages arrived; the failed one is tried again, nothing is repeated.
	dc.SeedN(t, user, "INBOX", 2, 1200)
	te, _ = pop3Run(t, dc, state)
	run2 := pop3LoopUIDLs(t, te, onlyNew, nil)
	if len(run2) != 3 || run2[0] != run1[2] || slices.Contains(run1, run2[1]) || slices.Contains(run1, run2[2]) {
		t.Fatalf("run 2 handled %q; run 1 handled %q and failed %q", run2, run1, run1[2])
	}

	// Run 3: nothing new; without only_new everything comes again.
	if run3 := pop3LoopUIDLs(t, te, onlyNew, nil); len(run3) != 0 {
		t.Fatalf("run 3 handled %q", run3)
	}
	if all := pop3LoopUIDLs(t, te, nil, nil); len(all) != 7 {
		t.Fatalf("without only_new: %d messages", len(all))
	}
	// Delete two messages for good, then check the record is pruned to what is left.
	te.mustRun(NewPOP3Delete(), map[string]string{"number": "1"})
	te.mustRun(NewPOP3Delete(), map[string]string{"number": "2"})
	te.mustRun(NewPOP3Close(), nil)
	if te.Var("DeletedCount") != "2" {
		t.Fatalf("DeletedCount = %s", te.Var("DeletedCount"))
	}
	te, _ = pop3Run(t, dc, state)
	if run4 := pop3LoopUIDLs(t, te, onlyNew, nil); len(run4) != 0 {
		t.Fatalf("run 4 handled %q", run4)
	}
	base, journal := pop3SeenState(t, state)
	want := slices.Concat(run1[2:], run2[1:])
	slices.Sort(want)
	if strings.Join(base, ",") != strings.Join(want, ",") || len(journal) != 0 {
		t.Fatalf("after pruning the state holds %q + %q, want %q", base, journal, want)
	}

	// Without a state store, only_new refuses to run.
	env, err := te.env(NewPOP3MailLoop(), onlyNew)
	if err != nil {
		t.Fatal(err)
	}
	env.State = nil
	_, err = NewPOP3MailLoop().Loop(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "saved state") {
		t.Fatalf("only_new without state: %v", err)
	}
}

func TestPOP3LoopDeferredDelete(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	msgs := dc.SeedN(t, user, "INBOX", 4, 2500)
	te, s := pop3Run(t, dc, nil)
	dir := t.TempDir()
	_, err := te.loop(context.Background(), NewPOP3MailLoop(), nil, false, func(i int) error {
		te.mustRun(NewPOP3Download(), map[string]string{"folder": dir, "file_name": te.Var("MessageNumber") + ".eml"})
		if i == 3 {
			// Giving the loop's message by number defers the same way.
			te.mustRun(NewPOP3Delete(), map[string]string{"number": te.Var("MessageNumber")})
		} else {
			te.mustRun(NewPOP3Delete(), nil)
		}
		if s.Deleted(i + 1) {
			return errors.New("DELE was sent before the loop's steps finished")
		}
		if i == 1 {
			return errors.New("a later step failed") // message 2 must stay
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.DeletedCount() != 3 || s.Deleted(2) {
		t.Fatalf("marked %d, message 2 marked %v", s.DeletedCount(), s.Deleted(2))
	}
	if !strings.Contains(te.Logs.String(), "NOT deleted: a step of the loop failed") {
		t.Error("the dropped deletion is not logged")
	}
	// Nothing is deleted before QUIT.
	if n := len(dc.Messages(t, user, "INBOX")); n != 4 {
		t.Fatalf("%d messages on the server before QUIT", n)
	}
	te.mustRun(NewPOP3Close(), nil)
	if te.Var("DeletedCount") != "3" {
		t.Fatalf("DeletedCount = %s", te.Var("DeletedCount"))
	}
	left := dc.Messages(t, user, "INBOX")
	if len(left) != 1 || !bytes.Equal(left[0].Body, msgs[1]) {
		t.Fatalf("%d messages left, want only message 2", len(left))
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.eml")); len(files) != 4 {
		t.Fatalf("%d files downloaded", len(files))
	}

	// Outside a loop a number is deleted at once (at QUIT, by the end of the run).
	te, s = pop3Run(t, dc, nil)
	te.mustRun(NewPOP3Delete(), map[string]string{"number": "1"})
	if !s.Deleted(1) {
		t.Fatal("DELE outside a loop was not sent at once")
	}
	if err := te.run(context.Background(), NewPOP3Delete(), nil); err == nil || !strings.Contains(err.Error(), "POP3 Mail Loop") {
		t.Fatalf("delete without number outside a loop: %v", err)
	}
	te.Sessions.CloseAll(te.log)
	if n := len(dc.Messages(t, user, "INBOX")); n != 0 {
		t.Fatalf("%d messages left after the end of the run", n)
	}
}

func TestPOP3LoopConnectionCut(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "INBOX", 3, 1500)
	state := &memState{m: map[string]string{}}
	te, s := pop3Run(t, dc, state)
	_, err := te.loop(context.Background(), NewPOP3MailLoop(), map[string]string{"only_new": "true"}, true, func(int) error {
		return te.run(context.Background(), NewPOP3Delete(), nil)
	})
	if err != nil || s.DeletedCount() != 3 {
		t.Fatalf("loop: %v; %d marked", err, s.DeletedCount())
	}
	s.Client.conn.Conn.Close() // the network drops the connection before QUIT
	err = te.run(context.Background(), NewPOP3Close(), nil)
	if err == nil || !strings.Contains(err.Error(), "the deletion of 3 message(s) was NOT committed") {
		t.Fatalf("close after the cut = %v", err)
	}
	if n := len(dc.Messages(t, user, "INBOX")); n != 3 {
		t.Fatalf("%d messages on the server, want all 3 (nothing deleted without QUIT)", n)
	}
	// The next run does not handle them again: they were recorded as done.
	te, _ = pop3Run(t, dc, state)
	if again := pop3LoopUIDLs(t, te, map[string]string{"only_new": "true"}, nil); len(again) != 0 {
		t.Fatalf("the next run handled %q again", again)
	}
}

// TestPOP3LoopCancel cancels the run in the body of the second message: the loop stops at
// once, the first message (whose steps succeeded) is deleted at the end of the run and
// recorded, the second is neither deleted nor recorded.
func TestPOP3LoopCancel(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	msgs := dc.SeedN(t, user, "INBOX", 3, 1500)
	state := &memState{m: map[string]string{}}
	te, _ := pop3Run(t, dc, state)
	ctx, cancel := context.WithCancel(context.Background())
	var uidls []string
	n, err := te.loop(ctx, NewPOP3MailLoop(), map[string]string{"only_new": "true"}, false, func(i int) error {
		uidls = append(uidls, te.Var("MessageUIDL"))
		if err := te.run(ctx, NewPOP3Delete(), nil); err != nil {
			return err
		}
		if i == 1 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 2 {
		t.Fatalf("loop = %d items, %v; want 2 items, context.Canceled", n, err)
	}
	if !strings.Contains(te.Logs.String(), "NOT deleted: the run was cancelled") {
		t.Errorf("the dropped deletion is not logged:\n%s", te.Logs.String())
	}
	te.Sessions.CloseAll(te.log)
	left := dc.Messages(t, user, "INBOX")
	if len(left) != 2 || !bytes.Equal(left[0].Body, msgs[1]) {
		t.Fatalf("%d messages left, want messages 2 and 3", len(left))
	}
	// The QUIT that deleted it folded the journal into the main value.
	if base, journal := pop3SeenState(t, state); strings.Join(slices.Concat(base, journal), ",") != uidls[0] {
		t.Fatalf("recorded %q + %q, want only %q", base, journal, uidls[0])
	}
	if pending := pop3SeenPending(t, state); len(pending) != 0 {
		t.Fatalf("deletions %q still pending after the QUIT that committed them", pending)
	}
}

// TestPOP3TopHeaders reads headers with and without PIPELINING and with a message number
// the server refuses in the middle; both ways give the same answers, in order, and the
// connection stays in step.
func TestPOP3TopHeaders(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	msgs := dc.SeedN(t, testmail.DefaultUser().Name, "INBOX", 5, 1500)
	_, s := pop3Run(t, dc, nil)
	c := s.Client
	if !c.HasCapability("PIPELINING") {
		t.Fatal("Dovecot does not announce PIPELINING")
	}
	read := func(limit int64) []string {
		var out []string
		err := c.TopHeaders([]int{5, 1, 99, 3}, limit, func(i int, h io.Reader, err error) error {
			if err != nil {
				out = append(out, "error: "+err.Error())
				return nil
			}
			b, rerr := io.ReadAll(h)
			out = append(out, string(b))
			return rerr
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	pipelined := read(1 << 20)
	c.caps = map[string]string{} // as if the server had no PIPELINING
	single := read(1 << 20)
	if strings.Join(pipelined, "|") != strings.Join(single, "|") || len(single) != 4 {
		t.Fatalf("pipelined %q\nsingle %q", pipelined, single)
	}
	for i, n := range []int{5, 1, 99, 3} {
		if n == 99 {
			if !strings.HasPrefix(single[i], "error: pop3 TOP 99 0 refused") {
				t.Errorf("TOP 99: %q", single[i])
			}
			continue
		}
		head, _, _ := bytes.Cut(msgs[n-1], []byte("\r\n\r\n"))
		if single[i] != string(head)+"\r\n\r\n" {
			t.Errorf("TOP %d = %q, want the header of message %d", n, single[i], n)
		}
	}
	if short := read(10); short[0] != pipelined[0][:10] {
		t.Errorf("limited header %q", short[0])
	}
	// A callback error stops a pipelined batch; the answers still due are read away.
	c.caps = nil
	stop := errors.New("stop")
	if err := c.TopHeaders([]int{1, 2, 3, 4}, 1<<20, func(int, io.Reader, error) error { return stop }); err != stop {
		t.Fatalf("TopHeaders = %v, want the callback's error", err)
	}
	if n, _, err := c.Stat(); err != nil || n != 5 {
		t.Fatalf("STAT after an abandoned batch = %d, %v", n, err)
	}
}
