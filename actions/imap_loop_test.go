package actions

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailwright/mailwright/internal/testmail"
)

// imapMsgsLogin dials addr with implicit TLS and logs in as the default user.
func imapMsgsLogin(t testing.TB, addr string, cfg *tls.Config) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatalf("imap dial %s: %v", addr, err)
	}
	u := testmail.DefaultUser()
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		c.Close()
		t.Fatalf("imap login: %v", err)
	}
	return c
}

// imapMsgsSessionAt opens a session on addr, selects folder and puts it into te under
// DefaultIMAPConnection, the way IMAP Open + Select would.
func imapMsgsSessionAt(t testing.TB, te *testEnv, addr string, cfg *tls.Config, folder string, readOnly bool) *IMAPSession {
	t.Helper()
	c := imapMsgsLogin(t, addr, cfg)
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		c.Close()
		t.Fatalf("imap select %q: %v", folder, err)
	}
	s := NewIMAPSession(DefaultIMAPConnection, addr, c)
	s.SetSelected(folder, readOnly, sel.UIDValidity)
	te.Sessions.Put(DefaultIMAPConnection, s, nil)
	return s
}

// imapMsgsSession opens a read-write session on the harness Dovecot's folder.
func imapMsgsSession(t testing.TB, te *testEnv, dc *testmail.Dovecot, folder string) *IMAPSession {
	t.Helper()
	return imapMsgsSessionAt(t, te, dc.Addr(dc.IMAPSPort), dc.TLSConfig(), folder, false)
}

// imapMsgsOther is a second client on folder: "another mail program".
func imapMsgsOther(t testing.TB, dc *testmail.Dovecot, folder string) *imapclient.Client {
	t.Helper()
	c := imapMsgsLogin(t, dc.Addr(dc.IMAPSPort), dc.TLSConfig())
	t.Cleanup(func() { c.Close() })
	if folder != "" {
		if _, err := c.Select(folder, nil).Wait(); err != nil {
			t.Fatalf("other client: select %q: %v", folder, err)
		}
	}
	return c
}

// imapMsgsLoop runs the loop with raw params and returns the UIDs it yielded, in order.
// body (optional) decides each message's outcome.
func imapMsgsLoop(t testing.TB, te *testEnv, raw map[string]string, body func(uid uint32) error) ([]uint32, error) {
	t.Helper()
	var got []uint32
	_, err := te.loop(context.Background(), NewIMAPMailLoop(), raw, false, func(int) error {
		n, err := strconv.ParseUint(te.Var("MessageUID"), 10, 32)
		if err != nil {
			return err
		}
		got = append(got, uint32(n))
		if body != nil {
			return body(uint32(n))
		}
		return nil
	})
	return got, err
}

func imapMsgsMustLoop(t testing.TB, te *testEnv, raw map[string]string, body func(uid uint32) error) []uint32 {
	t.Helper()
	got, err := imapMsgsLoop(t, te, raw, body)
	if err != nil {
		t.Fatalf("loop %v: %v", raw, err)
	}
	return got
}

func imapMsgsUIDs(from, to uint32) []uint32 {
	var l []uint32
	for u := from; u <= to; u++ {
		l = append(l, u)
	}
	return l
}

// imapMsgsFilterMail is the filter fixture: sender, subject, received date, flags and size.
var imapMsgsFilterMail = []struct {
	from, to, subject, date string
	flags                   []imap.Flag
	pad                     int
}{
	{"Anna <anna@example.test>", "team@example.test", "Invoice 1", "2024-01-10", []imap.Flag{imap.FlagSeen}, 0},
	{"Ben <ben@example.test>", "team@example.test", "Newsletter", "2024-02-10", []imap.Flag{imap.FlagFlagged}, 0},
	{"Carl <carl@example.test>", "dora@example.test", "Invoice 2", "2024-03-10", nil, 6000},
	{"Anna <anna@example.test>", "team@example.test", "Hello", "2024-04-10", []imap.Flag{imap.FlagSeen, imap.FlagFlagged}, 0},
	{"Eve <eve@example.test>", "dora@example.test", "Weekly newsletter", "2024-05-10", nil, 0},
}

func TestIMAPMsgsLoopFilters(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	other := imapMsgsOther(t, dc, "")
	if err := other.Create("Filters", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, m := range imapMsgsFilterMail {
		msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.test>\r\n\r\nbody\r\n%s\r\n", m.from, m.to, m.subject,
			strings.ReplaceAll(m.subject, " ", "."), strings.Repeat("x", m.pad))
		day, _ := time.Parse("2006-01-02", m.date)
		cmd := other.Append("Filters", int64(len(msg)), &imap.AppendOptions{Flags: m.flags, Time: day.Add(12 * time.Hour)})
		cmd.Write([]byte(msg))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "Filters")

	for _, tc := range []struct {
		name string
		raw  map[string]string
		want []uint32
	}{
		{"all", nil, []uint32{1, 2, 3, 4, 5}},
		{"unseen", map[string]string{"unseen_only": "true"}, []uint32{2, 3, 5}},
		{"flagged", map[string]string{"flagged_only": "true"}, []uint32{2, 4}},
		{"since", map[string]string{"since": "2024-02-10"}, []uint32{2, 3, 4, 5}},
		{"before", map[string]string{"before": "2024-03-10"}, []uint32{1, 2}},
		{"since+before", map[string]string{"since": "2024-02-01", "before": "2024-04-30"}, []uint32{2, 3, 4}},
		// A cut-off about 2024-02-25 (± a day for time zones), whatever today is.
		{"older_than_days", map[string]string{"older_than_days": strconv.Itoa(int(time.Since(time.Date(2024, 2, 25, 0, 0, 0, 0, time.UTC)).Hours() / 24))}, []uint32{1, 2}},
		{"from", map[string]string{"from_contains": "anna"}, []uint32{1, 4}},
		{"to", map[string]string{"to_contains": "dora"}, []uint32{3, 5}},
		{"subject", map[string]string{"subject_contains": "newsletter"}, []uint32{2, 5}},
		{"larger", map[string]string{"larger_than": "3000"}, []uint32{3}},
		{"smaller", map[string]string{"smaller_than": "3000"}, []uint32{1, 2, 4, 5}},
		{"search OR", map[string]string{"search": `OR FROM "anna" FROM ben`}, []uint32{1, 2, 4}},
		{"search NOT", map[string]string{"search": "NOT SUBJECT invoice"}, []uint32{2, 4, 5}},
		{"search nested, multiline", map[string]string{"search": "OR (FROM anna SEEN)\n   (UNSEEN NOT FLAGGED)"}, []uint32{1, 3, 4, 5}},
		{"search ANDed with filters", map[string]string{"search": "OR FROM anna FROM carl", "unseen_only": "true"}, []uint32{3}},
		{"search keeps smaller_than", map[string]string{"search": "LARGER 10", "smaller_than": "3000", "to_contains": "dora"}, []uint32{5}},
		{"search dates and UID", map[string]string{"search": "SINCE 1-Feb-2024 UID 1:4"}, []uint32{2, 3, 4}},
		{"search ON", map[string]string{"search": "ON 10-Mar-2024"}, []uint32{3}},
		{"newest", map[string]string{"order": "newest"}, []uint32{5, 4, 3, 2, 1}},
		{"cap", map[string]string{"max_messages": "2"}, []uint32{1, 2}},
		{"newest with cap", map[string]string{"order": "newest", "max_messages": "2"}, []uint32{5, 4}},
		{"filter, newest, cap", map[string]string{"unseen_only": "true", "order": "newest", "max_messages": "2"}, []uint32{5, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var counts []string
			got := imapMsgsMustLoop(t, te, tc.raw, func(uint32) error {
				counts = append(counts, te.Var("MessageIndex")+"/"+te.Var("MessageCount"))
				return nil
			})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got UIDs %v, want %v", got, tc.want)
			}
			for i, c := range counts {
				if want := fmt.Sprintf("%d/%d", i+1, len(tc.want)); c != want {
					t.Fatalf("MessageIndex/MessageCount = %s, want %s", c, want)
				}
			}
		})
	}

	// The variables of one message.
	imapMsgsMustLoop(t, te, map[string]string{"search": "UID 3"}, func(uint32) error {
		for name, want := range map[string]string{"MessageFrom": "Carl <carl@example.test>", "MessageTo": "dora@example.test",
			"MessageSubject": "Invoice 2", "MessageID": "<Invoice.2@example.test>", "MessageFlags": "", "MessageHasAttachments": "false"} {
			if got := te.Var(name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		if n, _ := strconv.Atoi(te.Var("MessageSize")); n < 6000 {
			t.Errorf("MessageSize = %s", te.Var("MessageSize"))
		}
		if cur := te.Sessions.Current(); cur == nil || cur.UID != 3 || cur.Protocol != "imap" || cur.Session != DefaultIMAPConnection {
			t.Errorf("current message = %+v", cur)
		}
		return nil
	})
	if te.Sessions.Current() != nil {
		t.Error("the current message outlives the loop")
	}

	// Parameter mistakes are explained before anything is sent.
	for search, want := range map[string]string{
		"FROM":                 "FROM (character 1) needs a string",
		"BOGUS x":              `unknown search key "BOGUS"`,
		"(FROM a":              `"(" is never closed`,
		"SINCE yesterday":      "is not a date",
		"SUBJECT \"open":       "no closing",
		"OR FROM a":            "OR (character 1) needs two search keys",
		"NEW":                  "UNSEEN",
		"KEYWORD (":            "needs a string after it, not \"(\"",
		"SUBJECT {3}\r\nabc":   "literals",
		"LARGER many":          "size in bytes",
		"FROM a ) FROM b":      `")" without "("`,
		"UID 0":                "numbers start at 1",
		"SENTBEFORE 2024-13-1": "is not a date",
	} {
		_, err := imapMsgsLoop(t, te, map[string]string{"search": search}, nil)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "search") {
			t.Errorf("search %q: error %v, want it to mention %q and the parameter", search, err, want)
		}
	}
	if _, err := imapMsgsLoop(t, te, map[string]string{"since": "2024-05-01", "before": "2024-04-01"}, nil); err == nil || !strings.Contains(err.Error(), "before") {
		t.Errorf("since after before: %v", err)
	}
}

func TestIMAPMsgsParseSearch(t *testing.T) {
	d := func(s string) time.Time { t, _ := time.Parse("2006-01-02", s); return t }
	for expr, want := range map[string]imap.SearchCriteria{
		"ALL":                       {},
		`from "a b" SUBJECT c`:      {Header: []imap.SearchCriteriaHeaderField{{Key: "FROM", Value: "a b"}, {Key: "SUBJECT", Value: "c"}}},
		"UNSEEN FLAGGED unanswered": {Flag: []imap.Flag{imap.FlagFlagged}, NotFlag: []imap.Flag{imap.FlagSeen, imap.FlagAnswered}},
		"NOT (SEEN DELETED)":        {Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}}}},
		"OR BODY x TEXT \"y\\\"z\"": {Or: [][2]imap.SearchCriteria{{{Body: []string{"x"}}, {Text: []string{`y"z`}}}}},
		"HEADER X-Spam yes":         {Header: []imap.SearchCriteriaHeaderField{{Key: "X-Spam", Value: "yes"}}},
		"SENTON 2024-03-01":         {SentSince: d("2024-03-01"), SentBefore: d("2024-03-02")},
		"SINCE 1-Jan-2024 SINCE 1-Feb-2024 BEFORE 1-Mar-2024": {Since: d("2024-02-01"), Before: d("2024-03-01")},
		"LARGER 5 SMALLER 10 KEYWORD $Work":                   {Larger: 5, Smaller: 10, Flag: []imap.Flag{"$Work"}},
		"UID 3:*,7 1:2":                                       {UID: []imap.UIDSet{{{Start: 3, Stop: 0}, {Start: 7, Stop: 7}}}, SeqNum: []imap.SeqSet{{{Start: 1, Stop: 2}}}},
	} {
		got, err := imapLoopParseSearch(expr)
		if err != nil {
			t.Errorf("%q: %v", expr, err)
			continue
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%q:\n got %+v\nwant %+v", expr, *got, want)
		}
	}
}

// imapMsgsCheckpoint reads the loop's saved progress.
func imapMsgsCheckpoint(t *testing.T, te *testEnv) imapLoopCheckpoint {
	t.Helper()
	raw, ok, _ := te.State.LoadScoped(imapLoopCheckpointKey)
	var cp imapLoopCheckpoint
	if !ok || json.Unmarshal([]byte(raw), &cp) != nil {
		t.Fatalf("no valid checkpoint: %q", raw)
	}
	return cp
}

func TestIMAPMsgsLoopOnlyNew(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "New", 5, 500)
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "New")
	only := map[string]string{"only_new": "true", "mark_seen": "true"}

	if got := imapMsgsMustLoop(t, te, only, nil); !slices.Equal(got, imapMsgsUIDs(1, 5)) {
		t.Fatalf("run 1: %v", got)
	}
	dc.SeedN(t, user, "New", 2, 500)
	if got := imapMsgsMustLoop(t, te, only, nil); !slices.Equal(got, []uint32{6, 7}) {
		t.Fatalf("run 2: %v, want exactly the 2 new ones", got)
	}
	if got := imapMsgsMustLoop(t, te, only, nil); len(got) != 0 {
		t.Fatalf("run 3: %v, want nothing", got)
	}

	// A failing body leaves its message for the next run, unmarked; nothing else repeats.
	dc.SeedN(t, user, "New", 3, 500)
	fail := func(uid uint32) error {
		if uid == 9 {
			return fmt.Errorf("body failed")
		}
		return nil
	}
	if got := imapMsgsMustLoop(t, te, only, fail); !slices.Equal(got, []uint32{8, 9, 10}) {
		t.Fatalf("run 4: %v", got)
	}
	if cp := imapMsgsCheckpoint(t, te); cp.LastUID != 8 || !slices.Equal(cp.Done, []uint32{10}) {
		t.Fatalf("checkpoint after a failure = %+v, want last_uid 8, done [10]", cp)
	}
	for i, m := range dc.Messages(t, user, "New") {
		if seen := strings.Contains(m.Flags, "S"); seen != (i+1 != 9) {
			t.Errorf("UID %d: Maildir flags %q; only the failed UID 9 must be unseen", i+1, m.Flags)
		}
	}
	if got := imapMsgsMustLoop(t, te, only, nil); !slices.Equal(got, []uint32{9}) {
		t.Fatalf("run 5: %v, want only the failed UID 9", got)
	}
	if cp := imapMsgsCheckpoint(t, te); cp.LastUID != 10 || len(cp.Done) != 0 {
		t.Fatalf("checkpoint = %+v, want last_uid 10 and nothing above", cp)
	}
	if !strings.Contains(te.Logs.String(), "left for the next run") {
		t.Error("the failed message was not logged")
	}

	// Newest first with a cap: each run takes the next newest, and the record stays exact.
	te2 := newTestEnv(t)
	imapMsgsSession(t, te2, dc, "New")
	capped := map[string]string{"only_new": "true", "order": "newest", "max_messages": "4"}
	for i, want := range [][]uint32{{10, 9, 8, 7}, {6, 5, 4, 3}, {2, 1}, nil} {
		got := imapMsgsMustLoop(t, te2, capped, func(uid uint32) error {
			if i == 0 && uid == 8 {
				return fmt.Errorf("body failed")
			}
			return nil
		})
		if i == 1 {
			want = []uint32{8, 6, 5, 4} // the failed 8 comes back first, as the newest not done
		}
		if i == 2 {
			want = []uint32{3, 2, 1}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("capped run %d: %v, want %v", i+1, got, want)
		}
	}
	if cp := imapMsgsCheckpoint(t, te2); cp.LastUID != 10 || len(cp.Done) != 0 {
		t.Fatalf("checkpoint after all done = %+v", cp)
	}
	dc.SeedN(t, user, "New", 1, 500)
	if got := imapMsgsMustLoop(t, te2, capped, nil); !slices.Equal(got, []uint32{11}) {
		t.Fatalf("after new mail: %v", got)
	}

	// Without state the option is refused.
	env, _ := te.env(NewIMAPMailLoop(), only)
	env.State = nil
	if _, err := NewIMAPMailLoop().Loop(context.Background(), env); err == nil || !strings.Contains(err.Error(), "Only new") {
		t.Fatalf("only_new without state: %v", err)
	}
}

func TestIMAPMsgsLoopUIDValidity(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	other := imapMsgsOther(t, dc, "")
	te := newTestEnv(t)
	recreate := func(n int) uint32 {
		t.Helper()
		if err := other.Delete("Box").Wait(); err != nil {
			t.Fatal(err)
		}
		if err := other.Create("Box", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		dc.SeedN(t, user, "Box", n, 300)
		return imapMsgsSession(t, te, dc, "Box").uidValidity
	}
	dc.SeedN(t, user, "Box", 3, 300)
	first := imapMsgsSession(t, te, dc, "Box").uidValidity
	only := map[string]string{"only_new": "true"}
	if got := imapMsgsMustLoop(t, te, only, nil); len(got) != 3 {
		t.Fatalf("run 1: %v", got)
	}
	if v := recreate(2); v == first {
		t.Fatalf("recreating the folder kept UIDVALIDITY %d", v)
	}
	_, err := imapMsgsLoop(t, te, only, nil)
	if err == nil || !strings.Contains(err.Error(), "on_uidvalidity_change") || !strings.Contains(err.Error(), "reprocess") {
		t.Fatalf("fail policy: %v", err)
	}
	only["on_uidvalidity_change"] = "reprocess"
	if got := imapMsgsMustLoop(t, te, only, nil); !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("reprocess: %v", got)
	}
	if got := imapMsgsMustLoop(t, te, only, nil); len(got) != 0 {
		t.Fatalf("after reprocess: %v", got)
	}
	recreate(3)
	only["on_uidvalidity_change"] = "from_now"
	if got := imapMsgsMustLoop(t, te, only, nil); len(got) != 0 {
		t.Fatalf("from_now yielded the old messages %v", got)
	}
	dc.SeedN(t, user, "Box", 1, 300)
	if got := imapMsgsMustLoop(t, te, only, nil); !slices.Equal(got, []uint32{4}) {
		t.Fatalf("from_now, then new mail: %v", got)
	}
	for _, want := range []string{"reprocess", "from_now", "new UIDVALIDITY"} {
		if !strings.Contains(te.Logs.String(), want) {
			t.Errorf("the decision %q was not logged", want)
		}
	}
}

func TestIMAPMsgsSchemas(t *testing.T) {
	r := NewRegistry()
	as := []Action{NewIMAPMailLoop(), NewIMAPDownload(), NewIMAPGetFlags(), NewIMAPSetFlags(), NewIMAPDeleteMarked(), NewIMAPMove()}
	if err := r.Register(as...); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"imap.loop": "IMAP Mail Loop", "imap.download": "IMAP Download Message", "imap.get_flags": "IMAP Get Message Flags",
		"imap.set_flags": "IMAP Set Message Flags", "imap.delete_marked": "IMAP Delete Marked Messages", "imap.move": "IMAP Move Message"}
	for _, a := range as {
		s := a.Schema()
		if want[s.ID] != s.Title || s.Group != "IMAP" || s.Help == "" {
			t.Errorf("%s: title %q, group %q", s.ID, s.Title, s.Group)
		}
		for _, p := range s.Params {
			if p.Help == "" {
				t.Errorf("%s: parameter %s has no help", s.ID, p.Name)
			}
		}
		for _, o := range s.Outputs {
			if o.Help == "" {
				t.Errorf("%s: output %s has no help", s.ID, o.Name)
			}
		}
	}
}
