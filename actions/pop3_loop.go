package actions

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
)

// POP3MailLoop is the "POP3 Mail Loop" action: it runs the loop's body once per message
// of the POP3 mailbox, optionally only for messages not handled by an earlier run.
type POP3MailLoop struct{}

// NewPOP3MailLoop returns the POP3 Mail Loop action.
func NewPOP3MailLoop() Looper { return POP3MailLoop{} }

// Order values of the loop.
const (
	pop3OrderOldest = "oldest"
	pop3OrderNewest = "newest"
)

// Schema implements Action.
func (POP3MailLoop) Schema() Schema {
	return Schema{
		ID:    "pop3.loop",
		Title: "POP3 Mail Loop",
		Group: "POP3",
		Help: "Runs the steps inside the loop once per message in the POP3 mailbox. Inside, POP3 Download Email and POP3 Delete Email work on the loop's message. " +
			"With \"Only new messages\", messages whose steps all succeeded in an earlier run are skipped (recognised by their UIDL); a message whose steps failed is tried again next run. " +
			"Messages whose deletion was lost because an earlier connection ended without QUIT are deleted when the loop next starts.",
		Params: []Param{
			ConnectionParam("pop3"),
			{Name: "only_new", Label: "Only new messages", Kind: KindBool, Default: "false",
				Help: "Skip messages this step already handled successfully in earlier runs (kept in the task's state by UIDL)."},
			{Name: "order", Label: "Order", Kind: KindEnum, Default: pop3OrderOldest, Choices: []string{pop3OrderOldest, pop3OrderNewest},
				Help: "oldest: from the oldest message to the newest; newest: the other way round."},
			{Name: "max_messages", Label: "Maximum messages", Kind: KindNumber, Default: "0",
				Help: "Stop after this many messages; 0 means no limit."},
			{Name: "from_contains", Label: "From contains", Kind: KindText,
				Help: "Only messages whose From (name or address) contains this text, ignoring case."},
			{Name: "subject_contains", Label: "Subject contains", Kind: KindText,
				Help: "Only messages whose subject contains this text, ignoring case."},
			{Name: "larger_than", Label: "Larger than (bytes)", Kind: KindNumber, Advanced: true,
				Help: "Only messages larger than this many bytes, as the server reports their size."},
			{Name: "smaller_than", Label: "Smaller than (bytes)", Kind: KindNumber, Advanced: true,
				Help: "Only messages smaller than this many bytes."},
		},
		Outputs: []Output{
			{Name: "MessageNumber", Help: "Number of the message in this connection (1 = oldest)."},
			{Name: "MessageUIDL", Help: "The server's unique id of the message (UIDL); stays the same across connections."},
			{Name: "MessageID", Help: "Message-ID header, without angle brackets."},
			{Name: "MessageFrom", Help: "From header, decoded: \"Name <address>\"."},
			{Name: "MessageTo", Help: "To header, decoded; several addresses are separated by \", \"."},
			{Name: "MessageCc", Help: "Cc header, decoded."},
			{Name: "MessageSubject", Help: "Subject, decoded."},
			{Name: "MessageDate", Help: "Date header in RFC 3339 form (2024-01-31T09:30:00+01:00); empty when missing."},
			{Name: "MessageSize", Help: "Size in bytes as the server reports it."},
			{Name: "MessageIndex", Help: "Position of the message in this loop, from 1."},
			{Name: "MessageCount", Help: "Number of messages this loop goes through."},
		},
		IsLoop:   true,
		Sessions: "pop3",
	}
}

// Run implements Action; the engine calls Loop instead.
func (POP3MailLoop) Run(ctx context.Context, env *Env) error {
	return errors.New("POP3 Mail Loop runs as a loop: the task engine calls Loop")
}

// Loop implements Looper: it lists the mailbox (LIST, UIDL), drops handled messages and
// those outside the size filters and, when From or Subject filters are set, reads the
// headers of the rest (TOP, pipelined) to keep the matching ones.
func (POP3MailLoop) Loop(ctx context.Context, env *Env) (Iterator, error) {
	s, err := POP3For(env)
	if err != nil {
		return nil, err
	}
	env = env.scopeState("pop3:" + s.Account + "@" + s.Server + ":")
	p := env.Params
	onlyNew := p.Bool("only_new")
	if onlyNew && env.State == nil {
		return nil, errors.New("\"Only new messages\" needs the task's saved state, which this run does not keep: run the task from a saved task file, or turn the option off")
	}
	it := &pop3Iter{env: env, s: s, log: env.Logger().With("connection", s.Name), br: bufio.NewReaderSize(nil, 4096)}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"from_contains", &it.fromWant}, {"subject_contains", &it.subjectWant}} {
		*f.dst = strings.ToLower(strings.TrimSpace(p.String(f.name)))
	}
	defer s.Watch(ctx)()
	if err := it.plan(onlyNew, p.String("order") == pop3OrderNewest, p.Int("larger_than"), p.Int("smaller_than"), int(p.Int("max_messages"))); err != nil {
		return nil, pop3CtxErr(ctx, err)
	}
	return it, nil
}

// pop3Item is a message the loop will yield.
type pop3Item struct {
	Number int
	UIDL   string
	Size   int64
}

// pop3Iter is the POP3 Mail Loop's Iterator.
type pop3Iter struct {
	env  *Env
	s    *POP3Session
	log  *slog.Logger
	br   *bufio.Reader
	seen *pop3Seen // nil without only_new

	fromWant, subjectWant string // lower case; "" = no filter

	items     []pop3Item
	pos       int        // next item to yield
	metas     []pop3Meta // headers of items[metaStart:]
	metaStart int
	pf        pop3Prefetch    // bodies fetched ahead
	cur       *pop3Item       // yielded, not yet committed
	curMsg    *CurrentMessage // what the loop set as the run's current message
	done      int             // committed with ok
	failed    int
}

// plan builds the list of messages to go through.
func (it *pop3Iter) plan(onlyNew, newest bool, larger, smaller int64, max int) error {
	c, s := it.s.Client, it.s
	list, err := c.List()
	if err != nil {
		return fmt.Errorf("pop3 LIST on %s: %w", s.Server, err)
	}
	uidls, err := c.UIDLs()
	var perr *POP3Error
	if errors.As(err, &perr) && !onlyNew {
		it.log.Info("the server does not give unique ids (UIDL); MessageUIDL stays empty", "server_said", perr.Text)
		uidls, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("pop3 UIDL on %s (\"Only new messages\" needs it): %w", s.Server, err)
	}
	if onlyNew {
		onServer := make(map[string]bool, len(uidls))
		for _, u := range uidls {
			onServer[u.UIDL] = true
		}
		if it.seen, err = loadPOP3Seen(it.env.State); err != nil {
			return err
		}
		if err := it.seen.begin(onServer); err != nil {
			return err
		}
		if err := it.redoLostDeletes(uidls); err != nil {
			return err
		}
	}
	skipped := 0
	it.items = make([]pop3Item, 0, len(list))
	u := 0 // LIST and UIDL are both in number order: join them without a map
	for _, e := range list {
		for u < len(uidls) && uidls[u].Number < e.Number {
			u++
		}
		item := pop3Item{Number: e.Number, Size: e.Size}
		if u < len(uidls) && uidls[u].Number == e.Number {
			item.UIDL = uidls[u].UIDL
		}
		switch {
		case s.Deleted(item.Number):
		case it.seen != nil && (item.UIDL == "" || it.seen.Has(item.UIDL)):
			skipped++
		case larger > 0 && item.Size <= larger, smaller > 0 && item.Size >= smaller:
		default:
			it.items = append(it.items, item)
		}
	}
	if newest {
		slices.Reverse(it.items)
	}
	if it.fromWant != "" || it.subjectWant != "" {
		if err := it.filterHeaders(max); err != nil {
			return err
		}
	}
	if max > 0 && len(it.items) > max {
		it.items = it.items[:max]
	}
	it.log.Info(fmt.Sprintf("pop3 mail loop over %d message(s)", len(it.items)), "on_server", len(list), "already_handled", skipped)
	return nil
}

// filterHeaders keeps the items whose From and Subject match, reading headers in batches,
// and stops once max (when > 0) match.
func (it *pop3Iter) filterHeaders(max int) error {
	kept := it.items[:0]
	all := it.items
	for start := 0; start < len(all) && (max <= 0 || len(kept) < max); start += pop3HeaderBatch {
		batch := all[start:min(start+pop3HeaderBatch, len(all))]
		nums := make([]int, len(batch))
		for i, item := range batch {
			nums[i] = item.Number
		}
		err := it.s.Client.TopHeaders(nums, pop3HeaderLimit, func(i int, h io.Reader, err error) error {
			if err != nil {
				it.log.Warn("pop3 TOP failed; message skipped by the From/Subject filter", "number", nums[i], "error", err.Error())
				return nil
			}
			if m := pop3ParseHeader(h, it.br); it.matches(m) && (max <= 0 || len(kept) < max) {
				kept = append(kept, batch[i])
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("pop3 TOP on %s: %w", it.s.Server, err)
		}
	}
	it.items = kept
	return nil
}

func (it *pop3Iter) matches(m pop3Meta) bool {
	return strings.Contains(strings.ToLower(m.From), it.fromWant) &&
		strings.Contains(strings.ToLower(m.Subject), it.subjectWant)
}

// Next implements Iterator.
func (it *pop3Iter) Next(ctx context.Context) (bool, error) {
	if it.cur != nil {
		it.drop("the loop moved on without committing it")
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if it.pos >= len(it.items) {
		it.clearCurrent()
		return false, nil
	}
	defer it.s.Watch(ctx)()
	it.maybePrefetch(ctx)
	m, err := it.meta()
	if err != nil {
		return false, pop3CtxErr(ctx, err)
	}
	item := it.items[it.pos]
	pos := it.pos
	it.pos++
	it.cur = &item
	for _, v := range [][2]string{
		{"MessageNumber", strconv.Itoa(item.Number)}, {"MessageUIDL", item.UIDL}, {"MessageID", m.MessageID},
		{"MessageFrom", m.From}, {"MessageTo", m.To}, {"MessageCc", m.Cc}, {"MessageSubject", m.Subject},
		{"MessageDate", m.Date}, {"MessageSize", strconv.FormatInt(item.Size, 10)},
		{"MessageIndex", strconv.Itoa(it.pos)}, {"MessageCount", strconv.Itoa(len(it.items))},
	} {
		it.env.SetVar(v[0], v[1])
	}
	s, n := it.s, item.Number
	it.curMsg = &CurrentMessage{Protocol: "pop3", Session: s.Name, Number: n, UIDL: item.UIDL, Size: item.Size,
		Open: func(ctx context.Context) (io.ReadCloser, error) { return it.open(ctx, pos, n) }}
	it.env.Sessions.SetCurrent(it.curMsg)
	s.setLoopItem(n)
	it.env.ReportProgress(int64(it.pos), int64(len(it.items)), "message "+strconv.Itoa(it.pos)+" of "+strconv.Itoa(len(it.items)))
	it.log.Debug("pop3 mail loop message", "index", it.pos, "number", n, "uidl", item.UIDL, "size", item.Size, "subject", m.Subject)
	return true, nil
}

// meta returns the header variables of items[pos]: read from its body when it was
// fetched ahead, else from TOP in batches.
func (it *pop3Iter) meta() (pop3Meta, error) {
	pos := it.pos
	e, j, ok := it.entry(pos)
	if ok && e.err != nil {
		return pop3Meta{}, fmt.Errorf("pop3 RETR %d on %s: %w", it.items[pos].Number, it.s.Server, e.err)
	}
	if ok && e.stored {
		return pop3ParseHeader(io.LimitReader(j.spool.reader(e.span), pop3HeaderLimit), it.br), nil
	}
	if pos < it.metaStart || pos >= it.metaStart+len(it.metas) {
		if err := it.fetchHeaders(); err != nil {
			return pop3Meta{}, err
		}
	}
	return it.metas[pos-it.metaStart], nil
}

// fetchHeaders reads the headers of the next batch of items.
func (it *pop3Iter) fetchHeaders() error {
	batch := it.items[it.pos:min(it.pos+pop3HeaderBatch, len(it.items))]
	nums := make([]int, len(batch))
	for i, item := range batch {
		nums[i] = item.Number
	}
	it.metaStart = it.pos
	it.metas = slices.Grow(it.metas[:0], len(batch))[:len(batch)]
	err := it.s.Client.TopHeaders(nums, pop3HeaderLimit, func(i int, h io.Reader, err error) error {
		if err != nil {
			it.log.Warn("pop3 TOP failed; the message's header variables stay empty", "number", nums[i], "error", err.Error())
			it.metas[i] = pop3Meta{}
			return nil
		}
		it.metas[i] = pop3ParseHeader(h, it.br)
		return nil
	})
	if err != nil {
		return fmt.Errorf("pop3 TOP on %s: %w", it.s.Server, err)
	}
	return nil
}

// Commit implements Iterator. With ok, the message is recorded as handled (only_new) and
// then the deletion the body asked for is sent (DELE); without, it is dropped and the
// message is left for the next run. With only_new, the record says in the same write that
// the message's deletion is pending, so that a session ending without QUIT, which loses
// the DELE, leaves the next run a note to send it again (pop3_lostdele.go).
func (it *pop3Iter) Commit(ctx context.Context, ok bool) error {
	if it.cur == nil {
		return nil
	}
	if !ok {
		it.drop("a step of the loop failed")
		return nil
	}
	if err := ctx.Err(); err != nil {
		it.drop("the run was cancelled")
		return err
	}
	item := *it.cur
	it.cur = nil
	it.s.setLoopItem(0)
	defer it.s.Watch(ctx)()
	dels := it.s.takeDeferred() // at most the loop's message: DeferDelete takes no other
	if it.seen != nil {
		if err := it.seen.Add(item.UIDL, len(dels) > 0); err != nil {
			if len(dels) > 0 {
				it.log.Warn("pop3 message NOT deleted: it could not be recorded as handled", "number", item.Number, "uidl", item.UIDL)
			}
			return err
		}
	}
	for _, n := range dels {
		if err := it.s.Delete(n); err != nil {
			if it.seen != nil {
				return pop3CtxErr(ctx, fmt.Errorf("%w (the message is recorded as handled; its deletion is sent again when the loop next runs)", err))
			}
			return pop3CtxErr(ctx, fmt.Errorf("%w (the message stays on the server)", err))
		}
		if it.seen != nil {
			it.s.noteRecorded(it.env.State, it.log, item.UIDL)
		}
		it.log.Info("pop3 message marked for deletion after its steps succeeded (deleted at QUIT)", "number", n, "uidl", item.UIDL)
	}
	it.done++
	return nil
}

// drop forgets the current item without recording it, dropping its deferred deletions.
func (it *pop3Iter) drop(why string) {
	item := it.cur
	it.cur = nil
	it.failed++
	it.s.setLoopItem(0)
	if dropped := it.s.takeDeferred(); len(dropped) > 0 {
		it.log.Warn("pop3 message NOT deleted: "+why, "number", item.Number, "uidl", item.UIDL)
	} else {
		it.log.Info("pop3 message not recorded as handled: "+why, "number", item.Number, "uidl", item.UIDL)
	}
}

func (it *pop3Iter) clearCurrent() {
	if it.curMsg != nil && it.env.Sessions.Current() == it.curMsg {
		it.env.Sessions.SetCurrent(nil)
	}
	it.curMsg = nil
}

// Close implements Iterator; the session stays open.
func (it *pop3Iter) Close() error {
	if it.cur != nil {
		it.drop("the loop ended before its steps finished")
	}
	it.clearCurrent()
	it.releaseAll()
	it.log.Info(fmt.Sprintf("pop3 mail loop finished: %d message(s) succeeded, %d failed", it.done, it.failed))
	return nil
}
