package actions

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

const pop3LostDeleLog = "deleting 2 messages whose deletion was lost when the previous session ended without QUIT"

// pop3Cut drops a session's connection as the network would, before QUIT.
func pop3Cut(t *testing.T, te *testEnv, s *POP3Session) {
	t.Helper()
	s.Client.conn.Conn.Close()
	if err := te.run(context.Background(), NewPOP3Close(), nil); err == nil || !strings.Contains(err.Error(), "NOT committed") {
		t.Fatalf("close after the cut = %v", err)
	}
}

// pop3DeleteLoop runs an only-new loop whose body deletes the loop's message, failing for
// the messages fail says, and returns the UIDLs it went through.
func pop3DeleteLoop(t *testing.T, te *testEnv, fail func(uidl string) bool) []string {
	t.Helper()
	var got []string
	_, err := te.loop(context.Background(), NewPOP3MailLoop(), map[string]string{"only_new": "true"}, false, func(int) error {
		u := te.Var("MessageUIDL")
		got = append(got, u)
		if err := te.run(context.Background(), NewPOP3Delete(), nil); err != nil {
			return err
		}
		if fail != nil && fail(u) {
			return errors.New("a later step failed")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("loop: %v", err)
	}
	return got
}

// TestPOP3LoopLostDeletes: an only-new loop that deletes its messages loses the DELEs of
// a cut session. The record of pending deletions holds exactly the messages whose steps
// succeeded (not the one whose body failed). A dry run logs what it would redo and
// deletes nothing. A message deleted meanwhile by someone else is dropped from the record.
// A run that redoes the DELEs but is cut again before QUIT keeps the record. The next
// whole run deletes them (one log line), handles only the message that failed, and clears
// the record after its QUIT; the mailbox ends empty.
func TestPOP3LoopLostDeletes(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "INBOX", 4, 3000)
	state := &memState{m: map[string]string{}}

	// Run 1: the body fails for message 2; the connection is cut before QUIT.
	te, s := pop3Run(t, dc, state)
	var uidls []string
	for i := 1; i <= 4; i++ {
		u, err := s.Client.UIDLOne(i)
		if err != nil {
			t.Fatal(err)
		}
		uidls = append(uidls, u)
	}
	if got := pop3DeleteLoop(t, te, func(u string) bool { return u == uidls[1] }); len(got) != 4 {
		t.Fatalf("run 1 handled %q", got)
	}
	want := slices.Sorted(slices.Values([]string{uidls[0], uidls[2], uidls[3]}))
	if p := pop3SeenPending(t, state); !slices.Equal(p, want) {
		t.Fatalf("pending deletions %q, want %q (not the message whose body failed)", p, want)
	}
	pop3Cut(t, te, s)
	if n := len(dc.Messages(t, user, "INBOX")); n != 4 {
		t.Fatalf("%d messages after the cut, want 4", n)
	}

	// Someone else deletes message 4 meanwhile.
	other, _ := pop3Run(t, dc, nil)
	other.mustRun(NewPOP3Delete(), map[string]string{"number": "4"})
	other.mustRun(NewPOP3Close(), nil)

	// A dry run says what it would redo and deletes nothing; the real record is untouched.
	te, _ = pop3Run(t, dc, state)
	env, err := te.env(NewPOP3MailLoop(), map[string]string{"only_new": "true"})
	if err != nil {
		t.Fatal(err)
	}
	env.DryRun = true
	env.State = &memState{m: maps.Clone(state.m)} // like the engine's dry-run state: writes stay apart
	it, err := NewPOP3MailLoop().Loop(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	it.Close()
	if !strings.Contains(te.Logs.String(), "dry run: would "+strings.Replace(pop3LostDeleLog, "deleting", "delete", 1)) {
		t.Fatalf("the dry run does not log what it would redo:\n%s", te.Logs)
	}
	te.mustRun(NewPOP3Close(), nil)
	if n := len(dc.Messages(t, user, "INBOX")); n != 3 || te.Var("DeletedCount") != "0" {
		t.Fatalf("after the dry run: %d messages, DeletedCount %s", n, te.Var("DeletedCount"))
	}
	if p := pop3SeenPending(t, state); !slices.Equal(p, want) {
		t.Fatalf("the dry run changed the record: %q", p)
	}

	// Run 2 redoes the DELEs (message 4, gone, is dropped), its body fails for message 2
	// again, and it is cut before QUIT: the record keeps the deletions.
	te, s = pop3Run(t, dc, state)
	if got := pop3DeleteLoop(t, te, func(string) bool { return true }); !slices.Equal(got, uidls[1:2]) {
		t.Fatalf("run 2 handled %q, want only the message that failed: %q", got, uidls[1])
	}
	if !strings.Contains(te.Logs.String(), pop3LostDeleLog) || s.DeletedCount() != 2 {
		t.Fatalf("run 2 marked %d messages; log:\n%s", s.DeletedCount(), te.Logs)
	}
	want = slices.Sorted(slices.Values([]string{uidls[0], uidls[2]}))
	if p := pop3SeenPending(t, state); !slices.Equal(p, want) {
		t.Fatalf("pending deletions %q, want %q (message 4 no longer on the server)", p, want)
	}
	pop3Cut(t, te, s)

	// Run 3 redoes them, handles message 2, and its QUIT commits everything.
	te, _ = pop3Run(t, dc, state)
	if got := pop3DeleteLoop(t, te, nil); !slices.Equal(got, uidls[1:2]) {
		t.Fatalf("run 3 handled %q, want only %q", got, uidls[1])
	}
	if !strings.Contains(te.Logs.String(), pop3LostDeleLog) {
		t.Fatalf("run 3 does not log the deletions it redoes:\n%s", te.Logs)
	}
	te.mustRun(NewPOP3Close(), nil)
	if left := dc.Messages(t, user, "INBOX"); len(left) != 0 || te.Var("DeletedCount") != "3" {
		t.Fatalf("%d messages left, DeletedCount %s", len(left), te.Var("DeletedCount"))
	}
	if p := pop3SeenPending(t, state); len(p) != 0 {
		t.Fatalf("deletions %q still pending after the QUIT that committed them", p)
	}
}

// TestPOP3LoopLostDeletesWithoutOnlyNew: without only_new nothing is recorded; after a cut
// the next run handles every message again (at least once) and deletes them then. A
// message whose body failed is not deleted by either run.
func TestPOP3LoopLostDeletesWithoutOnlyNew(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	msgs := dc.SeedN(t, user, "INBOX", 3, 2000)
	state := &memState{m: map[string]string{}}
	te, s := pop3Run(t, dc, state)
	body := func(fail string) func(int) error {
		return func(int) error {
			if err := te.run(context.Background(), NewPOP3Delete(), nil); err != nil {
				return err
			}
			if te.Var("MessageNumber") == fail {
				return errors.New("a later step failed")
			}
			return nil
		}
	}
	if n, err := te.loop(context.Background(), NewPOP3MailLoop(), nil, false, body("2")); err != nil || n != 3 {
		t.Fatalf("run 1: %d items, %v", n, err)
	}
	if len(state.m) != 0 {
		t.Fatalf("a loop without only_new wrote state: %v", state.m)
	}
	pop3Cut(t, te, s)
	te, _ = pop3Run(t, dc, state)
	if n, err := te.loop(context.Background(), NewPOP3MailLoop(), nil, false, body("2")); err != nil || n != 3 {
		t.Fatalf("run 2: %d items, %v (want all 3 again)", n, err)
	}
	if strings.Contains(te.Logs.String(), "whose deletion was lost") {
		t.Fatalf("a loop without only_new redid deletions:\n%s", te.Logs)
	}
	te.mustRun(NewPOP3Close(), nil)
	left := dc.Messages(t, user, "INBOX")
	if len(left) != 1 || !bytes.Equal(left[0].Body, msgs[1]) {
		t.Fatalf("%d messages left, want only message 2 (its body failed)", len(left))
	}
}

// TestPOP3LoopLostDeletesOnlyAsked: only the messages whose body asked for their deletion
// are recorded as pending deletion: after a cut, the next run deletes message 1 (whose body
// deleted it) and leaves messages 2 and 3 (whose bodies succeeded without deleting them)
// on the server, skipped as handled.
func TestPOP3LoopLostDeletesOnlyAsked(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	msgs := dc.SeedN(t, user, "INBOX", 3, 2000)
	state := &memState{m: map[string]string{}}
	te, s := pop3Run(t, dc, state)
	body := func(int) error {
		if te.Var("MessageNumber") != "1" {
			return nil
		}
		return te.run(context.Background(), NewPOP3Delete(), nil)
	}
	if n, err := te.loop(context.Background(), NewPOP3MailLoop(), map[string]string{"only_new": "true"}, false, body); err != nil || n != 3 {
		t.Fatalf("run 1: %d items, %v", n, err)
	}
	if p := pop3SeenPending(t, state); len(p) != 1 {
		t.Fatalf("pending deletions %q, want only message 1's", p)
	}
	pop3Cut(t, te, s)
	te, _ = pop3Run(t, dc, state)
	if got := pop3DeleteLoop(t, te, nil); len(got) != 0 {
		t.Fatalf("run 2 handled %q again", got)
	}
	if !strings.Contains(te.Logs.String(), "deleting 1 messages whose deletion was lost") {
		t.Fatalf("run 2 does not redo message 1's deletion:\n%s", te.Logs)
	}
	te.mustRun(NewPOP3Close(), nil)
	left := dc.Messages(t, user, "INBOX")
	if len(left) != 2 || !bytes.Equal(left[0].Body, msgs[1]) || !bytes.Equal(left[1].Body, msgs[2]) {
		t.Fatalf("%d messages left, want messages 2 and 3", len(left))
	}
}
