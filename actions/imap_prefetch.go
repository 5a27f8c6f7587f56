package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Body prefetch of the IMAP Mail Loop.
//
// Fetching each body with its own UID FETCH costs a round trip per message. Once a body
// step of the loop has read a message (CurrentMessage.Open: Download, Parse Email,
// Forward), the loop fetches the bodies of the rest of its window of messages (the
// batch_size summaries it holds) with ONE UID FETCH BODY.PEEK[] and streams them in order
// into a spool file on disk (prefetchSpool); Open then serves the loop's message from
// there. From then on the next window's summaries and bodies arrive in the background
// while the current window's steps run (imap_prefetch_ahead.go).
//
// Correctness on a connection that body steps use too:
//   - This file's FETCH is sent and read to its end inside Next, on the engine's
//     goroutine, before the body of the window's next message runs; the look-ahead's is
//     sent there too and never names the message the steps work on (see
//     imap_prefetch_ahead.go). So responses cannot be confused, and EXPUNGEs caused by the
//     body cannot shift anything the prefetch relies on (it works by UID).
//   - A body is served from the spool only when the literal arrived whole and its length
//     equals RFC822.SIZE; anything else (a message expunged meanwhile, a NIL body, a full
//     disk for the spool, a server that refuses the FETCH) falls back to streaming the
//     message from the server when it is opened, with the checks of IMAP Download.
//   - If the connection breaks during the prefetch, Next returns the error: the loop stops
//     there, no later message is skipped, and nothing was written outside the spool.
//   - Only messages of at most imapPrefetchMaxMessage bytes, and at most
//     imapPrefetchMaxBodies of them per request, are fetched ahead (so a spool file stays
//     within imapPrefetchMaxWindow bytes); larger ones stream from the server as before (a
//     round trip matters little next to their size).
//   - When the bodies of a whole window went unread (the body steps only look at the
//     summary), prefetching stops for the next windows, so no bandwidth is wasted.

const (
	imapPrefetchMaxMessage = 256 << 10 // larger messages are not fetched ahead
	imapPrefetchMaxBodies  = 128       // bodies fetched ahead per request at most
	imapPrefetchMaxWindow  = 32 << 20  // bytes fetched ahead per request at most
)

// imapPrefetch is the loop's body prefetch state.
type imapPrefetch struct {
	mu      sync.Mutex
	want    bool           // a body was opened: fetch the next ones ahead
	covered int            // uids[:covered] have been considered for prefetch
	spool   *prefetchSpool // the bodies of the current window, or nil
	opened  int            // bodies of the current window opened from the spool
}

// release drops the current window's spool and returns how many bodies it held and how
// many of them were read.
func (p *imapPrefetch) release() (fetched, opened int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spool != nil {
		fetched = p.spool.count()
		p.spool.close()
		p.spool = nil
	}
	opened = p.opened
	p.opened = 0
	return fetched, opened
}

// windowDone is called when the loop leaves a window: it drops the spool and stops
// prefetching when none of its bodies was read.
func (it *imapLoopIter) windowDone() {
	fetched, opened := it.pf.release()
	if fetched > 0 && opened == 0 {
		it.pf.mu.Lock()
		it.pf.want = false
		it.pf.mu.Unlock()
		it.env.Logger().Debug("imap loop: the steps read none of the messages fetched ahead; fetching bodies only on demand again", "folder", it.mailbox)
	}
}

// maybePrefetch fetches the bodies of uids[pos:end] ahead when a body step reads
// messages. It returns an error only when the connection broke.
func (it *imapLoopIter) maybePrefetch(ctx context.Context) error {
	it.pf.mu.Lock()
	want := it.pf.want && it.pos >= it.pf.covered
	it.pf.mu.Unlock()
	if !want {
		return nil
	}
	var set imap.UIDSet
	count, total := 0, int64(0)
	it.pf.covered = it.pos
	for _, uid := range it.uids[it.pos:it.end] {
		if count >= imapPrefetchMaxBodies || total >= imapPrefetchMaxWindow-imapPrefetchMaxMessage {
			break // the rest when the loop gets there
		}
		it.pf.covered++
		m := it.batch[uid]
		if m == nil || m.RFC822Size <= 0 || m.RFC822Size > imapPrefetchMaxMessage {
			continue
		}
		set.AddNum(uid)
		count++
		total += m.RFC822Size
	}
	if count < 2 { // one message costs one round trip either way
		return nil
	}
	spool, err := newPrefetchSpool(it.env)
	if err != nil {
		it.env.Logger().Warn("imap loop: cannot fetch messages ahead; fetching each from the server when it is read", "error", err.Error())
		return nil
	}
	if err := it.prefetchInto(ctx, spool, set); err != nil {
		spool.close()
		return err
	}
	it.pf.mu.Lock()
	old := it.pf.spool
	it.pf.spool = spool
	it.pf.mu.Unlock()
	old.close()
	it.env.Logger().Debug("imap loop: messages fetched ahead", "folder", it.mailbox, "messages", spool.count(), "of", count, "bytes", total)
	return nil
}

// prefetchInto runs one UID FETCH BODY.PEEK[] for set and spools every body that arrives
// whole. A refusal by the server is logged and leaves those messages to be fetched on
// demand; a broken connection is returned.
func (it *imapLoopIter) prefetchInto(ctx context.Context, spool *prefetchSpool, set imap.UIDSet) error {
	defer it.s.Watch(ctx)()
	what := fmt.Sprintf("fetch messages ahead from %q", it.mailbox)
	cmd := it.s.Client.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid imap.UID
		size, n, stored := int64(-1), int64(-1), false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch x := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = x.UID
			case imapclient.FetchItemDataRFC822Size:
				size = x.Size
			case imapclient.FetchItemDataBodySection:
				if x.Literal == nil || uid == 0 || stored || x.Section == nil || x.Section.Partial != nil {
					continue // discarded by the next msg.Next
				}
				n = x.Literal.Size()
				ok, err := spool.copyIn(uint64(uid), x.Literal, n)
				if err != nil {
					// The literal broke off: the connection has lost its place in the
					// protocol. Close it and read no more of this command: draining a
					// broken literal would race with go-imap's reader.
					it.s.Client.Close()
					return imapMsgsErr(ctx, it.s, what, fmt.Errorf("connection lost in the middle of a message: %w", err))
				}
				stored = ok
			}
		}
		if stored && (size < 0 || size != n || (it.batch[uid] != nil && it.batch[uid].RFC822Size != n)) {
			spool.drop(uint64(uid)) // not what the server announced: fetch it on demand
		}
	}
	if err := cmd.Close(); err != nil {
		var ierr *imap.Error
		if !errors.As(err, &ierr) || ctx.Err() != nil {
			return imapMsgsErr(ctx, it.s, what, err)
		}
		it.env.Logger().Warn("imap loop: the server refused to send some messages ahead; they are fetched one by one", "folder", it.mailbox, "error", err.Error())
	}
	if err := spool.finish(); err != nil {
		it.env.Logger().Warn("imap loop: cannot keep messages fetched ahead; fetching each from the server when it is read", "error", err.Error())
	}
	return nil
}

// open streams message uid for a body step: from the spool when it was fetched ahead,
// else from the server (which makes the loop fetch the next messages ahead).
func (it *imapLoopIter) open(ctx context.Context, uid imap.UID) (io.ReadCloser, error) {
	if cur, _, _, err := it.s.Selected(); err != nil {
		return nil, err
	} else if cur != it.mailbox {
		return nil, fmt.Errorf("imap: connection %q now has folder %q selected, not %q where UID %d is: do not select another folder inside the loop", it.s.Name, cur, it.mailbox, uid)
	}
	it.pf.mu.Lock()
	if it.pf.spool != nil {
		if r, ok := it.pf.spool.open(uint64(uid)); ok {
			it.pf.opened++
			it.pf.mu.Unlock()
			return r, nil
		}
	}
	it.pf.want = true
	it.pf.mu.Unlock()
	return imapMsgsOpenBody(ctx, it.s, it.mailbox, uid)
}
