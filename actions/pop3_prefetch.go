package actions

import (
	"context"
	"errors"
	"io"
	"sync"
)

// Body prefetch of the POP3 Mail Loop.
//
// Once a body step of the loop has read a message (CurrentMessage.Open: Download, Parse
// Email, Forward) and the server announces PIPELINING (RFC 2449), the loop sends the RETR
// commands of the next pop3PrefetchBatch messages in one write, and a goroutine streams
// the answers in order into a spool file on disk while the body steps run; the loop's
// message is then served from there, and its header variables are read from the spooled
// message instead of a TOP. When the body steps of the first message of such a window
// have run, the RETRs of the following window are sent too.
//
// POP3 answers come strictly in order, and POP3Client makes every other command (DELE at
// Commit, a RETR or TOP of another step, QUIT) wait until the pipelined answers have been
// read, so the session never gets out of step. A message is served from the spool only
// when its answer arrived whole (up to the terminating line); a message the server refused
// (-ERR) is fetched again when it is opened, with RETR's own error; when the connection
// breaks, Next returns the error at the first message that did not arrive, so none is
// skipped. Messages larger than pop3PrefetchMaxMessage (by LIST) are never fetched ahead.
// When the body steps read none of a window's messages, prefetching stops.

const (
	pop3PrefetchBatch      = 100       // RETRs sent together
	pop3PrefetchMaxMessage = 256 << 10 // larger messages are not fetched ahead
	pop3PrefetchMaxWindow  = 32 << 20  // bytes fetched ahead per window at most
)

// pop3Job is the prefetch of the messages items[start:end] (those in want).
type pop3Job struct {
	start, end int
	spool      *prefetchSpool
	stop       func() // ends the cancel watch
	done       chan struct{}

	mu      sync.Mutex
	cond    *sync.Cond
	entries []pop3JobEntry // per item of [start, end)
	opened  int            // bodies read from the spool
}

type pop3JobEntry struct {
	asked  bool // a RETR was sent for it
	ready  bool // its answer has been read
	stored bool // its body is in the spool at span
	span   prefetchSpan
	err    error // the connection broke before or while it arrived
}

// pop3Prefetch is the loop's prefetch state.
type pop3Prefetch struct {
	mu   sync.Mutex
	want bool       // a body was read from the server: fetch the next ones ahead
	jobs []*pop3Job // in item order; the first covers the current message when it is used
}

// maybePrefetch starts prefetch windows as needed before the loop yields items[pos].
func (it *pop3Iter) maybePrefetch(ctx context.Context) {
	it.pf.mu.Lock()
	want := it.pf.want
	it.pf.mu.Unlock()
	if !want {
		return
	}
	// Windows the loop has left are no longer needed.
	for len(it.pf.jobs) > 0 && it.pf.jobs[0].end <= it.pos {
		it.releaseJob(it.pf.jobs[0])
		it.pf.jobs = it.pf.jobs[1:]
	}
	var last *pop3Job
	if n := len(it.pf.jobs); n > 0 {
		last = it.pf.jobs[n-1]
	}
	switch {
	case last == nil:
		it.startJob(ctx, it.pos)
	case last.start < it.pos && last.end < len(it.items) && len(it.pf.jobs) == 1:
		it.startJob(ctx, last.end) // the next window, while this one's steps run
	}
}

// startJob sends the RETRs of the window that begins at items[from]. When it cannot, the
// messages are fetched when they are opened.
func (it *pop3Iter) startJob(ctx context.Context, from int) {
	if !it.s.Client.HasCapability("PIPELINING") {
		return
	}
	end := min(from+pop3PrefetchBatch, len(it.items))
	j := &pop3Job{start: from, end: end, done: make(chan struct{}), entries: make([]pop3JobEntry, end-from)}
	j.cond = sync.NewCond(&j.mu)
	var nums []int
	var idx []int
	total := int64(0)
	for i := from; i < end; i++ {
		item := it.items[i]
		if item.Size < 0 || item.Size > pop3PrefetchMaxMessage || total+item.Size > pop3PrefetchMaxWindow {
			continue
		}
		total += item.Size
		nums = append(nums, item.Number)
		idx = append(idx, i-from)
		j.entries[i-from].asked = true
	}
	if len(nums) < 2 {
		return
	}
	spool, err := newPrefetchSpool(it.env)
	if err != nil {
		it.log.Warn("pop3 mail loop: cannot fetch messages ahead; fetching each from the server when it is read", "error", err.Error())
		return
	}
	j.spool = spool
	j.stop = it.s.Watch(ctx)
	remaining := len(nums)
	err = it.s.Client.StartRetrPipeline(nums, func(i int, data io.Reader, rerr error) {
		e := pop3JobEntry{asked: true, ready: true}
		switch {
		case rerr != nil:
			var perr *POP3Error
			if !errors.As(rerr, &perr) {
				e.err = rerr
			}
		default:
			sp, stored, err := spool.write(data, -1)
			if err != nil {
				e.err = err // the connection broke in the middle of the message
			} else if stored && spool.flush() == nil {
				e.span, e.stored = sp, true
			}
		}
		j.mu.Lock()
		j.entries[idx[i]] = e
		j.cond.Broadcast()
		j.mu.Unlock()
		if remaining--; remaining == 0 {
			spool.finish() // returns its buffers; what was stored stays readable
			j.stop()
			close(j.done)
		}
	})
	if err != nil {
		// The connection is gone: what arrived before is still served; Next reports the
		// error at the first message that did not arrive.
		j.stop()
		spool.close()
		it.log.Debug("pop3 mail loop: cannot fetch messages ahead", "error", err.Error())
		return
	}
	it.pf.jobs = append(it.pf.jobs, j)
	it.log.Debug("pop3 mail loop: fetching messages ahead", "messages", len(nums), "bytes", total)
}

// entry waits for the prefetch of items[pos] and returns it; ok is false when no window
// fetches that item ahead.
func (it *pop3Iter) entry(pos int) (e pop3JobEntry, j *pop3Job, ok bool) {
	for _, j := range it.pf.jobs {
		if pos < j.start || pos >= j.end {
			continue
		}
		j.mu.Lock()
		if !j.entries[pos-j.start].asked {
			j.mu.Unlock()
			continue
		}
		for !j.entries[pos-j.start].ready {
			j.cond.Wait()
		}
		e := j.entries[pos-j.start]
		j.mu.Unlock()
		return e, j, true
	}
	return pop3JobEntry{}, nil, false
}

// releaseJob waits for a window's answers to be read and removes its spool; it stops
// prefetching when none of the window's bodies was read.
func (it *pop3Iter) releaseJob(j *pop3Job) {
	<-j.done
	j.spool.close()
	j.mu.Lock()
	unused := j.opened == 0
	j.mu.Unlock()
	if unused {
		it.pf.mu.Lock()
		it.pf.want = false
		it.pf.mu.Unlock()
		it.log.Debug("pop3 mail loop: the steps read none of the messages fetched ahead; fetching bodies only on demand again")
	}
}

// releaseAll ends every window (Close).
func (it *pop3Iter) releaseAll() {
	for _, j := range it.pf.jobs {
		<-j.done
		j.spool.close()
	}
	it.pf.jobs = nil
}

// open streams message items[pos] for a body step: from the spool when it was fetched
// ahead, else from the server (which makes the loop fetch the next messages ahead).
func (it *pop3Iter) open(ctx context.Context, pos, n int) (io.ReadCloser, error) {
	for _, j := range it.pf.jobs {
		if pos < j.start || pos >= j.end {
			continue
		}
		j.mu.Lock()
		e := j.entries[pos-j.start]
		if e.ready && e.stored {
			j.opened++
			j.mu.Unlock()
			return j.spool.reader(e.span), nil
		}
		j.mu.Unlock()
	}
	it.pf.mu.Lock()
	it.pf.want = true
	it.pf.mu.Unlock()
	return it.s.Retr(ctx, n)
}
