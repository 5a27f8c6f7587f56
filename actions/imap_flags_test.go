package actions

import (
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailwright/mailwright/internal/testmail"
)

// imapMsgsMaildirFlags returns the Maildir flags of each message of folder, by position.
func imapMsgsMaildirFlags(t *testing.T, dc *testmail.Dovecot, folder string) []string {
	t.Helper()
	var out []string
	for _, m := range dc.Messages(t, testmail.DefaultUser().Name, folder) {
		out = append(out, m.Flags)
	}
	return out
}

func TestIMAPMsgsFlags(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	dc.SeedN(t, testmail.DefaultUser().Name, "Flags", 3, 300)
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "Flags")

	te.mustRun(NewIMAPSetFlags(), map[string]string{"uid": "2", "flags": `\flagged, $Important  Invoice`})
	if got := te.Var("MessageFlags"); !strings.Contains(got, `\Flagged`) || !strings.Contains(got, "$Important") || !strings.Contains(got, "Invoice") {
		t.Fatalf("after add: MessageFlags %q", got)
	}
	te.mustRun(NewIMAPGetFlags(), map[string]string{"uid": "2"})
	want := map[string]string{"MessageSeen": "false", "MessageFlagged": "true", "MessageAnswered": "false", "MessageDeleted": "false", "MessageDraft": "false"}
	for k, v := range want {
		if te.Var(k) != v {
			t.Errorf("%s = %q, want %q", k, te.Var(k), v)
		}
	}
	if f := imapMsgsMaildirFlags(t, dc, "Flags"); !strings.Contains(f[1], "F") || strings.Contains(f[0]+f[2], "F") {
		t.Errorf("Maildir flags %q: want only UID 2 flagged", f)
	}
	te.mustRun(NewIMAPSetFlags(), map[string]string{"uid": "2", "mode": "remove", "flags": `\Flagged $Important`})
	if got := te.Var("MessageFlags"); got != "Invoice" {
		t.Fatalf("after remove: %q", got)
	}
	te.mustRun(NewIMAPSetFlags(), map[string]string{"uid": "2", "mode": "replace", "flags": `\Seen \Answered`})
	te.mustRun(NewIMAPGetFlags(), map[string]string{"uid": "2"})
	if te.Var("MessageFlags") != `\Seen \Answered` && te.Var("MessageFlags") != `\Answered \Seen` || te.Var("MessageSeen") != "true" || te.Var("MessageAnswered") != "true" {
		t.Fatalf("after replace: %q seen %s answered %s", te.Var("MessageFlags"), te.Var("MessageSeen"), te.Var("MessageAnswered"))
	}
	if f := imapMsgsMaildirFlags(t, dc, "Flags"); f[1] != "RS" || f[0] != "" || f[2] != "" {
		t.Errorf("Maildir flags %q: want RS on UID 2 only", f)
	}

	// Inside a loop, the current message is the default.
	imapMsgsMustLoop(t, te, map[string]string{"search": "UID 3"}, func(uint32) error {
		return te.run(context.Background(), NewIMAPSetFlags(), map[string]string{"flags": `\Draft`})
	})
	te.mustRun(NewIMAPGetFlags(), map[string]string{"uid": "3"})
	if te.Var("MessageDraft") != "true" {
		t.Errorf("set flags on the loop's message: %q", te.Var("MessageFlags"))
	}

	for _, tc := range []struct{ raw, want string }{
		{`\Foo`, "not a system flag"},
		{`\Recent`, "server only"},
		{"bad(word", "keyword"},
		{"", "at least one flag"},
	} {
		err := te.run(context.Background(), NewIMAPSetFlags(), map[string]string{"uid": "1", "flags": tc.raw})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("flags %q: %v", tc.raw, err)
		}
	}
	for a, raw := range map[Action]map[string]string{NewIMAPGetFlags(): {"uid": "42"}, NewIMAPSetFlags(): {"uid": "42", "flags": `\Seen`}} {
		err := te.run(context.Background(), a, raw)
		if err == nil || !strings.Contains(err.Error(), "no message with UID 42") {
			t.Errorf("%s on a missing UID: %v", a.Schema().ID, err)
		}
	}

	// A folder selected read-only refuses changes and says which option to change.
	ro := newTestEnv(t)
	imapMsgsSessionAt(t, ro, dc.Addr(dc.IMAPSPort), dc.TLSConfig(), "Flags", true)
	for a, raw := range map[Action]map[string]string{NewIMAPSetFlags(): {"uid": "1", "flags": `\Seen`}, NewIMAPDeleteMarked(): nil,
		NewIMAPMove(): {"uid": "1", "target_folder": "Archive", "create_folder": "true"}} {
		err := ro.run(context.Background(), a, raw)
		if err == nil || !strings.Contains(err.Error(), "read_only") || !strings.Contains(err.Error(), "IMAP Select Mail Folder") {
			t.Errorf("%s on a read-only folder: %v", a.Schema().ID, err)
		}
	}
	ro.mustRun(NewIMAPGetFlags(), map[string]string{"uid": "1"})
	// mark_seen on a read-only folder warns once and marks nothing.
	imapMsgsMustLoop(t, ro, map[string]string{"mark_seen": "true"}, nil)
	if n := strings.Count(ro.Logs.String(), "selected read-only, so nothing is marked"); n != 1 {
		t.Errorf("read-only mark_seen warned %d times", n)
	}
	if f := imapMsgsMaildirFlags(t, dc, "Flags"); f[0] != "" {
		t.Errorf("UID 1 got flags %q through a read-only folder", f[0])
	}
}

func TestIMAPMsgsDeleteMarked(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	seeded := dc.SeedN(t, user, "Del", 6, 300)
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "Del")
	other := imapMsgsOther(t, dc, "Del")
	// Another program marks 1, 2 and 3; this task marks 5 through a step.
	if err := other.Store(imap.UIDSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	te.mustRun(NewIMAPSetFlags(), map[string]string{"uid": "5", "flags": `\Deleted`})

	te.mustRun(NewIMAPDeleteMarked(), map[string]string{"uids": "2, 4:5"})
	if te.Var("DeletedCount") != "2" {
		t.Fatalf("DeletedCount = %q, want 2 (UID 4 is not marked)", te.Var("DeletedCount"))
	}
	left := dc.Messages(t, user, "Del")
	if len(left) != 4 || string(left[0].Body) != string(seeded[0]) || string(left[1].Body) != string(seeded[2]) || string(left[2].Body) != string(seeded[3]) || string(left[3].Body) != string(seeded[5]) {
		t.Fatalf("after deleting UIDs 2 and 5: %d messages left", len(left))
	}
	te.mustRun(NewIMAPDeleteMarked(), nil)
	if te.Var("DeletedCount") != "2" || len(dc.Messages(t, user, "Del")) != 2 {
		t.Fatalf("delete all marked: DeletedCount %q, %d left", te.Var("DeletedCount"), len(dc.Messages(t, user, "Del")))
	}
	te.mustRun(NewIMAPDeleteMarked(), nil)
	if te.Var("DeletedCount") != "0" {
		t.Fatalf("nothing marked: DeletedCount %q", te.Var("DeletedCount"))
	}
	if err := te.run(context.Background(), NewIMAPDeleteMarked(), map[string]string{"uids": "x"}); err == nil || !strings.Contains(err.Error(), "UIDs") {
		t.Fatalf("bad uids: %v", err)
	}
}
