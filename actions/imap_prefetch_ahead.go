package actions

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Look-ahead of the IMAP Mail Loop: while the body steps run for the messages of one window,
// the summaries (and, when steps read bodies, the bodies) of the next window arrive in the
// background, so that the loop rarely waits for the server.
//
// Why this is safe on the connection the body steps use:
//   - The FETCH commands are SENT in Next, on the engine's goroutine, between two messages:
//     they reach the server before any command of the following body steps, so they run in
//     the folder the loop reads even if a step later selects another one. Only their
//     responses are read by goroutines of their own (one per command, so that a server
//     interleaving two commands' responses cannot stall go-imap's reader).
//   - They name only UIDs of the next window; the body steps work on the current message,
//     which is never in an outstanding FETCH. Before the loop yields the first message of
//     the next window, it waits until those commands completed.
//   - Should a step nevertheless touch a UID of the next window (a Set Flags step with an
//     explicit UID), go-imap may hand that command's untagged FETCH to the look-ahead: the
//     loop notices the summary without an envelope and fetches it again, and a body that did
//     not arrive whole is fetched from the server when it is opened.
//   - The look-ahead starts only after the first body of a window ran, so a message another
//     mail program removes while the first message of a window is handled is not yielded.

// imapAhead is the look-ahead fetch of one window, uids[start:end].
type imapAhead struct {
	start, end int
	covered    int            // uids[start:covered] were considered for bodies
	bodies     bool           // bodies of the messages not larger than imapPrefetchMaxMessage were asked for
	spool      *prefetchSpool // where they go; nil without bodies
	done       chan struct{}  // closed when every command completed

	mu      sync.Mutex
	msgs    map[imap.UID]*imapclient.FetchMessageBuffer
	err     error // first failure; see imapAheadBroken
	readErr error // a body broke off: the connection is lost
}

// nextWindow moves to the next window of messages: the look-ahead's when it has it, else
// fetched now.
func (it *imapLoopIter) nextWindow(ctx context.Context) error {
	it.windowDone()
	if a := it.waitAhead(); a != nil {
		if a.start == it.pos {
			ok, err := it.adoptAhead(ctx, a)
			if err != nil || ok {
				return err
			}
		} else {
			a.spool.close()
		}
	}
	return it.fetchBatch(ctx)
}

// fetchOne fetches the summary of one message of the current window; nil when it is gone.
func (it *imapLoopIter) fetchOne(ctx context.Context, uid imap.UID) (*imapclient.FetchMessageBuffer, error) {
	defer it.s.Watch(ctx)()
	msgs, err := it.s.Client.Fetch(imap.UIDSetNum(uid), imapLoopSummaryOptions()).Collect()
	if err != nil {
		return nil, imapMsgsErr(ctx, it.s, fmt.Sprintf("fetch the summary of UID %d from %q", uid, it.mailbox), err)
	}
	m := imapMsgsFind(msgs, uid)
	if m != nil && m.Envelope == nil {
		m.Envelope = &imap.Envelope{}
	}
	return m, nil
}

// startAhead sends the FETCH commands of the window after the current one, when the loop
// is past the first message of its window and nothing is outstanding yet.
func (it *imapLoopIter) startAhead(ctx context.Context) {
	start, end := it.end, min(it.end+it.batchSize, len(it.uids))
	if it.ahead != nil || start >= end || it.pos <= it.start {
		return
	}
	if cur, _, _, err := it.s.Selected(); err != nil || cur != it.mailbox {
		return // Next reports it at the next window
	}
	it.pf.mu.Lock()
	bodies := it.pf.want
	it.pf.mu.Unlock()
	var big imap.UIDSet
	if bodies {
		var err error
		if big, err = it.largeUIDs(ctx); err != nil {
			it.env.Logger().Debug("imap loop: no look-ahead of bodies", "error", err.Error())
			bodies = false
		}
	}
	a := &imapAhead{start: start, end: end, done: make(chan struct{}), msgs: make(map[imap.UID]*imapclient.FetchMessageBuffer, end-start)}
	var small, rest imap.UIDSet
	count := 0
	a.covered = start
	for _, uid := range it.uids[start:end] {
		if bodies && count < imapPrefetchMaxBodies {
			a.covered++
			if !big.Contains(uid) {
				small.AddNum(uid)
				count++
				continue
			}
		}
		rest.AddNum(uid)
	}
	if len(small) > 0 {
		var err error
		if a.spool, err = newPrefetchSpool(it.env); err != nil {
			it.env.Logger().Warn("imap loop: cannot fetch messages ahead; fetching each from the server when it is read", "error", err.Error())
			rest.AddSet(small)
			small = nil
		}
	}
	a.bodies = a.spool != nil
	stop := it.s.Watch(ctx)
	var wg sync.WaitGroup
	if len(small) > 0 {
		opts := imapLoopSummaryOptions()
		opts.BodySection = []*imap.FetchItemBodySection{{Peek: true}}
		cmd := it.s.Client.Fetch(small, opts)
		wg.Add(1)
		go func() { defer wg.Done(); a.read(it, cmd, a.spool) }()
	}
	if len(rest) > 0 {
		cmd := it.s.Client.Fetch(rest, imapLoopSummaryOptions())
		wg.Add(1)
		go func() { defer wg.Done(); a.read(it, cmd, nil) }()
	}
	go func() {
		wg.Wait()
		stop()
		if a.spool != nil {
			if err := a.spool.finish(); err != nil {
				it.env.Logger().Warn("imap loop: cannot keep messages fetched ahead; fetching each from the server when it is read", "error", err.Error())
			}
		}
		close(a.done)
	}()
	it.ahead = a
}

// read collects one FETCH command's responses; bodies go into spool.
func (a *imapAhead) read(it *imapLoopIter, cmd *imapclient.FetchCommand, spool *prefetchSpool) {
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		buf := &imapclient.FetchMessageBuffer{SeqNum: msg.SeqNum}
		n, stored := int64(-1), false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch x := item.(type) {
			case imapclient.FetchItemDataUID:
				buf.UID = x.UID
			case imapclient.FetchItemDataFlags:
				buf.Flags = x.Flags
			case imapclient.FetchItemDataEnvelope:
				buf.Envelope = x.Envelope
			case imapclient.FetchItemDataInternalDate:
				buf.InternalDate = x.Time
			case imapclient.FetchItemDataRFC822Size:
				buf.RFC822Size = x.Size
			case imapclient.FetchItemDataBodyStructure:
				buf.BodyStructure = x.BodyStructure
			case imapclient.FetchItemDataBodySection:
				if spool == nil || x.Literal == nil || buf.UID == 0 || stored || x.Section == nil || x.Section.Partial != nil {
					continue // the next msg.Next discards it
				}
				n = x.Literal.Size()
				ok, err := spool.copyIn(uint64(buf.UID), x.Literal, n)
				if err != nil {
					// The literal broke off: the connection has lost its place in the
					// protocol. Close it and stop reading this command: draining a broken
					// literal would race with go-imap's reader.
					it.s.Client.Close()
					a.mu.Lock()
					if a.readErr == nil {
						a.readErr = err
					}
					a.mu.Unlock()
					return
				}
				stored = ok
			}
		}
		if stored && buf.RFC822Size != n {
			spool.drop(uint64(buf.UID))
		}
		if buf.UID == 0 {
			continue
		}
		a.mu.Lock()
		if _, dup := a.msgs[buf.UID]; !dup {
			a.msgs[buf.UID] = buf
		}
		a.mu.Unlock()
	}
	err := cmd.Close()
	a.mu.Lock()
	if err != nil && a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
}

// wait waits for the look-ahead and drops it from the loop.
func (it *imapLoopIter) waitAhead() *imapAhead {
	a := it.ahead
	if a == nil {
		return nil
	}
	<-a.done
	it.ahead = nil
	return a
}

// adoptAhead makes the look-ahead's window the current one. It reports false when the
// window must be fetched again the ordinary way (the server refused a command), and an
// error when the connection broke.
func (it *imapLoopIter) adoptAhead(ctx context.Context, a *imapAhead) (bool, error) {
	what := fmt.Sprintf("fetch the next messages from %q", it.mailbox)
	if a.readErr != nil {
		a.spool.close()
		return false, imapMsgsErr(ctx, it.s, what, fmt.Errorf("connection lost in the middle of a message: %w", a.readErr))
	}
	if a.err != nil {
		a.spool.close()
		var ierr *imap.Error
		if !errors.As(a.err, &ierr) || ctx.Err() != nil {
			return false, imapMsgsErr(ctx, it.s, what, a.err)
		}
		it.env.Logger().Debug("imap loop: the server refused the look-ahead; fetching the window again", "error", a.err.Error())
		return false, nil
	}
	it.start, it.end = a.start, a.end
	it.batch = a.msgs
	if a.bodies {
		it.pf.mu.Lock()
		it.pf.spool = a.spool
		it.pf.mu.Unlock()
		it.pf.covered = a.covered
		it.env.Logger().Debug("imap loop: messages fetched ahead", "folder", it.mailbox, "messages", a.spool.count())
	}
	return true, nil
}

// largeUIDs returns the folder's messages larger than imapPrefetchMaxMessage (asked once
// per loop): their bodies are not fetched ahead.
func (it *imapLoopIter) largeUIDs(ctx context.Context) (imap.UIDSet, error) {
	if it.large != nil {
		return *it.large, nil
	}
	defer it.s.Watch(ctx)()
	var opts *imap.SearchOptions
	if it.s.Caps().Has(imap.CapESearch) {
		opts = &imap.SearchOptions{ReturnAll: true}
	}
	data, err := it.s.Client.UIDSearch(&imap.SearchCriteria{Larger: imapPrefetchMaxMessage}, opts).Wait()
	if err != nil {
		return nil, imapMsgsErr(ctx, it.s, fmt.Sprintf("search %q for large messages", it.mailbox), err)
	}
	set, _ := data.All.(imap.UIDSet)
	it.large = &set
	return set, nil
}

// imapLoopSummaryOptions are the FETCH items of a message's summary (the loop's variables).
func imapLoopSummaryOptions() *imap.FetchOptions {
	return &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true, InternalDate: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}
}
