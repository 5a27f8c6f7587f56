package actions

import (
	"context"
	"fmt"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/charset"
)

// IMAPMailLoop is "IMAP Mail Loop": it runs its body once per matching message of the
// selected folder, without downloading or marking anything on its own.
type IMAPMailLoop struct{}

// NewIMAPMailLoop returns the IMAP Mail Loop action.
func NewIMAPMailLoop() Looper { return IMAPMailLoop{} }

// imapLoopOutputs are the variables set per message.
var imapLoopOutputs = []Output{
	{Name: "MessageUID", Help: "The message's UID in the folder."},
	{Name: "MessageID", Help: "The Message-ID header, with angle brackets, e.g. <abc@example.com>."},
	{Name: "MessageFrom", Help: `Senders as "Name <address>", comma-separated.`},
	{Name: "MessageTo", Help: `Recipients as "Name <address>", comma-separated.`},
	{Name: "MessageCc", Help: `Copy recipients as "Name <address>", comma-separated.`},
	{Name: "MessageSubject", Help: "The subject, decoded."},
	{Name: "MessageDate", Help: "The Date header (or, without one, when the server received it) in RFC 3339 form, e.g. 2024-03-31T09:15:00+02:00."},
	{Name: "MessageSize", Help: "Size in bytes (RFC822.SIZE)."},
	{Name: "MessageFlags", Help: `Flags, space-separated, e.g. "\Seen \Flagged".`},
	{Name: "MessageHasAttachments", Help: "true when a part is an attachment or has a file name."},
	{Name: "MessageIndex", Help: "Position of the message in this run, from 1."},
	{Name: "MessageCount", Help: "Number of messages this run handles."},
}

// Schema implements Action.
func (IMAPMailLoop) Schema() Schema {
	return Schema{
		ID: "imap.loop", Title: "IMAP Mail Loop", Group: "IMAP", IsLoop: true, Sessions: "imap",
		Help: "Runs the steps inside it once per message of the selected folder that matches the filters (all filters must hold). " +
			"It reads the message's summary, never marking it read; Download, Parse Email, Move and flag steps inside use the current message " +
			"(once they read messages, the loop fetches the next ones ahead into a temporary file). A message counts as done only when every step inside succeeded.",
		Params: []Param{
			ConnectionParam("imap"),
			{Name: "unseen_only", Label: "Unread only", Kind: KindBool, Default: "false", Help: "Only messages without the \\Seen flag."},
			{Name: "flagged_only", Label: "Flagged only", Kind: KindBool, Default: "false", Help: "Only messages with the \\Flagged flag."},
			{Name: "since", Label: "Received since", Kind: KindText, Help: "Only messages the server received on or after this date (YYYY-MM-DD)."},
			{Name: "before", Label: "Received before", Kind: KindText, Help: "Only messages the server received before this date (YYYY-MM-DD)."},
			{Name: "older_than_days", Label: "Older than (days)", Kind: KindNumber, Help: "Only messages the server received more than this many days before today (0 = no limit); combines with \"Received before\" (the earlier date wins)."},
			{Name: "from_contains", Label: "From contains", Kind: KindText, Help: "Only messages whose From header contains this text (the server decides case and encoding)."},
			{Name: "to_contains", Label: "To contains", Kind: KindText, Help: "Only messages whose To header contains this text."},
			{Name: "subject_contains", Label: "Subject contains", Kind: KindText, Help: "Only messages whose subject contains this text."},
			{Name: "larger_than", Label: "Larger than (bytes)", Kind: KindNumber, Help: "Only messages larger than this many bytes."},
			{Name: "smaller_than", Label: "Smaller than (bytes)", Kind: KindNumber, Help: "Only messages smaller than this many bytes."},
			{Name: "search", Label: "Search expression", Kind: KindMultiline,
				Help: `An IMAP SEARCH expression ANDed with the filters above, e.g. OR FROM "anna" FROM "ben" NOT SUBJECT "newsletter".`},
			{Name: "order", Label: "Order", Kind: KindEnum, Default: "oldest", Choices: []string{"oldest", "newest"}, Help: "oldest: oldest message first (by UID); newest: newest first."},
			{Name: "max_messages", Label: "At most", Kind: KindNumber, Default: "0", Help: "Handle at most this many messages per run (taken in the chosen order); 0 means no limit."},
			{Name: "only_new", Label: "Only new since last run", Kind: KindBool, Default: "false",
				Help: "Skip messages earlier runs of this step handled successfully; a message whose steps failed is tried again."},
			{Name: "on_uidvalidity_change", Label: "If the folder's UIDVALIDITY changes", Kind: KindEnum, Default: imapLoopUIDVFail,
				Choices: []string{imapLoopUIDVFail, imapLoopUIDVReprocess, imapLoopUIDVFromNow},
				Help:    "With only new: what to do when the server renumbered the folder (it was recreated or restored). fail: stop with an error; reprocess: handle every message again; from_now: skip the messages there now."},
			{Name: "mark_seen", Label: "Mark as read when done", Kind: KindBool, Default: "false", Help: "Set \\Seen on a message once every step inside the loop succeeded for it."},
			{Name: "batch_size", Label: "Batch size", Kind: KindNumber, Default: "100", Advanced: true, Help: "How many message summaries (and, once steps read messages, messages) to fetch per request."},
		},
		Outputs: imapLoopOutputs,
	}
}

// Run implements Action; the engine calls Loop instead.
func (IMAPMailLoop) Run(ctx context.Context, env *Env) error {
	return fmt.Errorf("IMAP Mail Loop runs as a loop: the task engine calls Loop, not Run")
}

// Loop implements Looper: it searches the folder and prepares the run's message list.
func (IMAPMailLoop) Loop(ctx context.Context, env *Env) (Iterator, error) {
	s, err := IMAPFor(env)
	if err != nil {
		return nil, err
	}
	mailbox, readOnly, uidValidity, err := s.Selected()
	if err != nil {
		return nil, err
	}
	// Progress is kept per account, server and folder: two loops of one task over different
	// folders or mailboxes never share a checkpoint.
	env = env.scopeState("imap:" + s.Account + "@" + s.Server + "/" + mailbox + ":")
	criteria, err := imapLoopCriteria(env.Params)
	if err != nil {
		return nil, fmt.Errorf("IMAP Mail Loop: %w", err)
	}
	batch := int(env.Params.Int("batch_size"))
	if batch <= 0 {
		return nil, fmt.Errorf("IMAP Mail Loop: %q must be at least 1", "Batch size")
	}
	limit := env.Params.Int("max_messages")
	if limit < 0 {
		return nil, fmt.Errorf("IMAP Mail Loop: %q is negative: give 0 for no limit", "At most")
	}
	onlyNew := env.Params.Bool("only_new")
	if onlyNew && env.State == nil {
		return nil, fmt.Errorf("IMAP Mail Loop: \"Only new since last run\" needs the task's saved state, which this run does not have: switch the option off, or run the task as a saved task")
	}
	log := env.Logger()
	defer s.Watch(ctx)()

	it := &imapLoopIter{env: env, s: s, mailbox: mailbox, readOnly: readOnly, batchSize: batch, markSeen: env.Params.Bool("mark_seen"),
		conn: env.Params.String("connection")}
	if it.conn == "" {
		it.conn = DefaultIMAPConnection
	}
	if onlyNew && uidValidity == 0 {
		st, err := s.Client.Status(mailbox, &imap.StatusOptions{UIDValidity: true}).Wait()
		if err != nil {
			return nil, imapMsgsErr(ctx, s, fmt.Sprintf("status of %q", mailbox), err)
		}
		uidValidity = st.UIDValidity
	}
	var cp imapLoopCheckpoint
	if onlyNew {
		loaded, found, err := imapLoopLoadCheckpoint(env.State)
		if err != nil {
			return nil, fmt.Errorf("IMAP Mail Loop: %w", err)
		}
		uidNext := func() (imap.UID, error) {
			st, err := s.Client.Status(mailbox, &imap.StatusOptions{UIDNext: true}).Wait()
			if err != nil {
				return 0, imapMsgsErr(ctx, s, fmt.Sprintf("status of %q", mailbox), err)
			}
			return st.UIDNext, nil
		}
		var save bool
		cp, save, err = imapLoopResolveCheckpoint(loaded, found, mailbox, uidValidity, env.Params.String("on_uidvalidity_change"), uidNext, log)
		if err != nil {
			return nil, err
		}
		if save {
			if err := cp.save(env.State); err != nil {
				return nil, fmt.Errorf("IMAP Mail Loop: %w", err)
			}
		}
		it.cp = &cp
	}

	// NOOP makes the server take in mail that arrived since its last sync (Dovecot adds new
	// messages to a session's view only at such points), so the search sees all of it.
	if err := s.Client.Noop().Wait(); err != nil {
		return nil, imapMsgsErr(ctx, s, fmt.Sprintf("sync %q", mailbox), err)
	}
	var opts *imap.SearchOptions
	if s.Caps().Has(imap.CapESearch) {
		opts = &imap.SearchOptions{ReturnAll: true} // ranges instead of one number per message
	}
	data, err := s.Client.UIDSearch(criteria, opts).Wait()
	if err != nil {
		return nil, imapMsgsErr(ctx, s, fmt.Sprintf("search %q", mailbox), err)
	}
	var all []imap.UID
	if set, ok := data.All.(imap.UIDSet); ok {
		if all, ok = set.Nums(); !ok {
			return nil, fmt.Errorf("imap search %q on %s: the server answered with an open-ended UID range", mailbox, s.Server)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	matched := len(all)

	uids := all
	if it.cp != nil {
		if it.cp.advance(all) {
			if err := it.cp.save(env.State); err != nil {
				return nil, fmt.Errorf("IMAP Mail Loop: %w", err)
			}
		}
		it.all = all
		uids = make([]imap.UID, 0, len(all))
		for _, u := range all {
			if !it.cp.done(u) {
				uids = append(uids, u)
			}
		}
	}
	if env.Params.String("order") == "newest" {
		slices.Reverse(uids) // uids is all only when all is not kept
	}
	if limit > 0 && int64(len(uids)) > limit {
		uids = uids[:limit]
	}
	it.uids = uids
	log.Info("imap loop: messages to handle", "folder", mailbox, "matching", matched, "to_handle", len(uids),
		"order", env.Params.String("order"), "only_new", onlyNew, "max", limit, "read_only", readOnly)
	return it, nil
}

// imapLoopIter is one run of an IMAP Mail Loop. Memory: the UID lists plus one batch of
// summaries.
type imapLoopIter struct {
	env       *Env
	s         *IMAPSession
	conn      string // connection name
	mailbox   string
	readOnly  bool
	markSeen  bool
	batchSize int

	uids  []imap.UID          // this run's messages, in order
	all   []imap.UID          // every match, ascending (only_new: to advance the checkpoint)
	cp    *imapLoopCheckpoint // nil unless only_new
	pos   int                 // index in uids of the next message
	start int                 // uids[start:end] is the current window (batch)
	end   int                 // uids[:end] have been fetched in batches
	batch map[imap.UID]*imapclient.FetchMessageBuffer
	pf    imapPrefetch // bodies of the current window fetched ahead
	ahead *imapAhead   // the next window, being fetched in the background
	large *imap.UIDSet // messages too large to fetch ahead (asked once)

	cur      *CurrentMessage
	curUID   imap.UID
	warnedRO bool
}

// Next implements Iterator.
func (it *imapLoopIter) Next(ctx context.Context) (bool, error) {
	it.curUID = 0
	for it.pos < len(it.uids) {
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("IMAP Mail Loop: cancelled: %w", err)
		}
		if err := it.checkSelected(); err != nil {
			return false, err
		}
		if it.pos >= it.end {
			if err := it.nextWindow(ctx); err != nil {
				return false, err
			}
		}
		if err := it.maybePrefetch(ctx); err != nil {
			return false, err
		}
		uid := it.uids[it.pos]
		m := it.batch[uid]
		if m != nil && m.Envelope == nil {
			// Another command's response took the look-ahead's place: ask again.
			var err error
			if m, err = it.fetchOne(ctx, uid); err != nil {
				return false, err
			}
		}
		if m == nil {
			it.pos++
			it.env.Logger().Warn("imap loop: message is gone (another client moved or deleted it); skipping it", "folder", it.mailbox, "uid", uid)
			continue
		}
		it.startAhead(ctx)
		it.pos++
		delete(it.batch, uid)
		it.yield(m)
		return true, nil
	}
	it.clearCurrent()
	it.windowDone()
	return false, nil
}

// checkSelected fails when a step inside the loop left another folder selected: the
// loop's UIDs would then name other messages.
func (it *imapLoopIter) checkSelected() error {
	if cur, _, _, err := it.s.Selected(); err != nil {
		return err
	} else if cur != it.mailbox {
		return fmt.Errorf("IMAP Mail Loop: connection %q now has folder %q selected instead of %q: a step inside the loop selected another folder; use a second connection for that", it.conn, cur, it.mailbox)
	}
	return nil
}

// fetchBatch fetches the summaries of the next batch of UIDs.
func (it *imapLoopIter) fetchBatch(ctx context.Context) error {
	if err := it.checkSelected(); err != nil {
		return err
	}
	it.start, it.end = it.pos, min(it.pos+it.batchSize, len(it.uids))
	var set imap.UIDSet
	set.AddNum(it.uids[it.pos:it.end]...)
	defer it.s.Watch(ctx)()
	msgs, err := it.s.Client.Fetch(set, imapLoopSummaryOptions()).Collect()
	if err != nil {
		return imapMsgsErr(ctx, it.s, fmt.Sprintf("fetch message summaries from %q", it.mailbox), err)
	}
	it.batch = make(map[imap.UID]*imapclient.FetchMessageBuffer, len(msgs))
	for _, m := range msgs {
		if m.Envelope == nil {
			m.Envelope = &imap.Envelope{}
		}
		it.batch[m.UID] = m
	}
	return nil
}

// yield sets the message's variables and makes it the current message.
func (it *imapLoopIter) yield(m *imapclient.FetchMessageBuffer) {
	env := it.env
	e := m.Envelope
	if e == nil {
		e = &imap.Envelope{}
	}
	id := ""
	if e.MessageID != "" {
		id = "<" + e.MessageID + ">"
	}
	date := e.Date
	if date.IsZero() {
		date = m.InternalDate
	}
	dateText := ""
	if !date.IsZero() {
		dateText = date.Format(time.RFC3339)
	}
	n := len(it.uids)
	env.SetVar("MessageUID", strconv.FormatUint(uint64(m.UID), 10))
	env.SetVar("MessageID", id)
	env.SetVar("MessageFrom", imapLoopAddrs(e.From))
	env.SetVar("MessageTo", imapLoopAddrs(e.To))
	env.SetVar("MessageCc", imapLoopAddrs(e.Cc))
	env.SetVar("MessageSubject", imapLoopDecode(e.Subject))
	env.SetVar("MessageDate", dateText)
	env.SetVar("MessageSize", strconv.FormatInt(m.RFC822Size, 10))
	env.SetVar("MessageFlags", imapMsgsFlagText(m.Flags))
	env.SetVar("MessageHasAttachments", strconv.FormatBool(imapLoopHasAttachments(m.BodyStructure)))
	env.SetVar("MessageIndex", strconv.Itoa(it.pos))
	env.SetVar("MessageCount", strconv.Itoa(n))

	uid := m.UID
	it.cur = &CurrentMessage{Protocol: "imap", Session: it.conn, UID: uint32(uid), Size: m.RFC822Size,
		Open: func(ctx context.Context) (io.ReadCloser, error) { return it.open(ctx, uid) }}
	it.curUID = uid
	env.Sessions.SetCurrent(it.cur)
	env.ReportProgress(int64(it.pos), int64(n), fmt.Sprintf("message %d of %d", it.pos, n))
	env.Logger().Debug("imap loop: message", "index", it.pos, "of", n, "uid", uid, "size", m.RFC822Size)
}

// Commit implements Iterator: a message whose body succeeded is recorded as done and,
// with mark_seen, marked \Seen; a failed one is left untouched for the next run.
func (it *imapLoopIter) Commit(ctx context.Context, ok bool) error {
	uid := it.curUID
	it.curUID = 0
	if uid == 0 {
		return nil
	}
	log := it.env.Logger()
	if !ok {
		log.Warn("imap loop: the steps failed for this message; it is not marked and is left for the next run", "folder", it.mailbox, "uid", uid)
		return nil
	}
	if it.cp != nil {
		it.cp.markDone(uid)
		it.cp.advance(it.all)
		if err := it.cp.save(it.env.State); err != nil {
			return fmt.Errorf("IMAP Mail Loop: message UID %d was handled, but %w", uid, err)
		}
	}
	if !it.markSeen || it.env.SkipDryRun("mark the message as read", "uid", uid) {
		return nil
	}
	if it.readOnly {
		if !it.warnedRO {
			it.warnedRO = true
			log.Warn("imap loop: mark_seen is on but the folder was selected read-only, so nothing is marked; set \"Read-only\" to false on the Select step", "folder", it.mailbox)
		}
		return nil
	}
	defer it.s.Watch(ctx)()
	err := it.s.Client.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
	if err != nil {
		return imapMsgsErr(ctx, it.s, fmt.Sprintf("mark UID %d in %q as read", uid, it.mailbox), err)
	}
	return nil
}

// Close implements Iterator; the session stays open.
func (it *imapLoopIter) Close() error {
	it.clearCurrent()
	if a := it.waitAhead(); a != nil {
		a.spool.close()
	}
	it.pf.release()
	it.batch = nil
	return nil
}

func (it *imapLoopIter) clearCurrent() {
	if it.cur != nil && it.env.Sessions.Current() == it.cur {
		it.env.Sessions.SetCurrent(nil)
	}
	it.cur = nil
}

// imapLoopAddrs formats addresses as `Name <addr>`, comma-separated; names holding
// characters that would make the list ambiguous are quoted.
func imapLoopAddrs(addrs []imap.Address) string {
	var b strings.Builder
	for _, a := range addrs {
		addr := a.Addr()
		if addr == "" { // group start or end marker
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		name := strings.TrimSpace(imapLoopDecode(a.Name))
		switch {
		case name == "" || name == addr:
			b.WriteString(addr)
			continue
		case strings.ContainsAny(name, `,;<>"@:\()[]`):
			name = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
		}
		b.WriteString(name + " <" + addr + ">")
	}
	return b.String()
}

// imapLoopWords decodes RFC 2047 words in any charset go-message knows.
var imapLoopWords = &mime.WordDecoder{CharsetReader: charset.Reader}

// imapLoopDecode decodes RFC 2047 words the client left encoded (charsets beyond UTF-8
// and Latin-1).
func imapLoopDecode(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := imapLoopWords.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// imapLoopHasAttachments reports whether any part is an attachment or carries a file name.
func imapLoopHasAttachments(bs imap.BodyStructure) bool {
	if bs == nil {
		return false
	}
	found := false
	bs.Walk(func(path []int, part imap.BodyStructure) bool {
		if found {
			return false
		}
		if d := part.Disposition(); d != nil && strings.EqualFold(d.Value, "attachment") {
			found = true
		}
		if sp, ok := part.(*imap.BodyStructureSinglePart); ok && sp.Filename() != "" {
			found = true
		}
		return !found
	})
	return found
}
