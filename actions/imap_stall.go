package actions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// The stall guard of IMAP sessions. go-imap (v2.0.0-beta.8) reads without a deadline
// between responses, so a server that stops answering after the login (the connection
// stays open, nothing more comes) would make an IMAP step wait for ever, and under
// `serve` every later run of the task would be refused as still running. POP3 and SMTP
// bound each read by the connection's "Timeout"; IMAP does the same here, but only while
// a step is waiting for the server:
//
//   - The guard counts while at least one IMAPSession.Watch is active (an IMAP step runs
//     its commands). go-imap's reader goroutine sits in Read all the time, also between
//     steps and while a mail-watch IDLE waits (that client has no Watch): none of that
//     counts.
//   - It measures how long a Read has been blocked waiting for the server, from the later
//     of the Read's start and the start of the watching, not the time since the last byte:
//     while our side is slow (a body step writes a file while a FETCH literal streams), no
//     Read is in progress and the server is not at fault.
//   - When a Read has been blocked for the timeout, the socket is closed (as a cancelled
//     run closes it), the session is unusable and every failed command of the step reports
//     imapStallError: temporary for the retry policy, wrapping os.ErrDeadlineExceeded.
//
// One timer per connection checks when the oldest blocked Read would reach the timeout;
// nested and concurrent Watch calls (the mail loop's look-ahead goroutines) share it.

// imapStallError is why a session's connection was closed: the server sent nothing for
// the connection's timeout while a step waited for it.
type imapStallError struct {
	timeout time.Duration
	advice  string // what the user can do, e.g. `open it again, or raise "Timeout" on IMAP Open`
}

// Error implements error.
func (e *imapStallError) Error() string {
	return fmt.Sprintf("the server sent nothing for %s (the connection's \"Timeout\"); the connection was closed: %s", e.timeout, e.advice)
}

// Unwrap makes the error a timeout (os.ErrDeadlineExceeded is a net.Error): Temporary
// reports it as worth retrying.
func (e *imapStallError) Unwrap() error { return os.ErrDeadlineExceeded }

// imapStallDefaultAdvice ends the stall error of a session opened by IMAP Open.
const imapStallDefaultAdvice = `open it again, or raise "Timeout" on IMAP Open`

// imapStall is the guard's state, part of an imapConn.
type imapStall struct {
	timeout time.Duration // 0: no guard

	mu        sync.Mutex
	advice    string
	watchers  int       // active stallWatch calls
	since     time.Time // when watchers last went from 0 to 1
	reading   int       // Reads in progress (go-imap has one at a time)
	readStart time.Time // when the oldest of them began
	timer     *time.Timer
	err       *imapStallError // sticky, once the guard closed the connection
}

// stallWatch makes c's guard count blocked Reads until stop is called (see imapStall).
// Safe on a nil *imapConn (a session without a guard); stop may be called more than once.
func (c *imapConn) stallWatch() (stop func()) {
	if c == nil || c.stall.timeout <= 0 {
		return func() {}
	}
	g := &c.stall
	g.mu.Lock()
	g.watchers++
	if g.watchers == 1 && g.err == nil {
		g.since = time.Now()
		// Whether or not a Read is in progress, none can reach the timeout sooner.
		if g.timer == nil {
			g.timer = time.AfterFunc(g.timeout, c.stallCheck)
		} else {
			g.timer.Reset(g.timeout)
		}
	}
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.watchers--
			if g.watchers == 0 && g.timer != nil {
				g.timer.Stop()
			}
			g.mu.Unlock()
		})
	}
}

// stallCheck is the guard's timer: it closes the connection when a Read has been blocked
// for the timeout while watched, else it sets the timer for when that could next happen.
func (c *imapConn) stallCheck() {
	g := &c.stall
	g.mu.Lock()
	if g.watchers == 0 || g.err != nil {
		g.mu.Unlock()
		return
	}
	now := time.Now()
	due := now.Add(g.timeout) // a Read starting from now on
	if g.reading > 0 {
		from := g.readStart
		if g.since.After(from) {
			from = g.since
		}
		due = from.Add(g.timeout)
	}
	if wait := due.Sub(now); wait > 0 {
		g.timer.Reset(wait)
		g.mu.Unlock()
		return
	}
	advice := g.advice
	if advice == "" {
		advice = imapStallDefaultAdvice
	}
	g.err = &imapStallError{timeout: g.timeout, advice: advice}
	g.mu.Unlock()
	// The TCP socket itself, not the TLS layer above it: closing TLS first sends a
	// close_notify, which could wait for a server that no longer reads.
	if c.tcp != nil {
		c.tcp.Close()
	} else {
		c.Conn.Close()
	}
}

// stallReadBegin records the start of a Read; it returns the stall error when the guard
// already closed the connection.
func (c *imapConn) stallReadBegin() error {
	g := &c.stall
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return g.err
	}
	if g.reading == 0 {
		g.readStart = time.Now()
	}
	g.reading++
	return nil
}

// stallReadEnd records the end of a Read; it returns the stall error when the guard
// closed the connection (the Read's own error is then only its consequence).
func (c *imapConn) stallReadEnd() error {
	g := &c.stall
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reading--
	if g.err != nil {
		return g.err
	}
	return nil
}

// stalled returns the stall error once the guard closed the connection, else nil. Safe
// on a nil *imapConn.
func (c *imapConn) stalled() error {
	if c == nil {
		return nil
	}
	c.stall.mu.Lock()
	defer c.stall.mu.Unlock()
	if c.stall.err != nil {
		return c.stall.err
	}
	return nil
}

// setStallAdvice sets the end of the stall error (what the user can do about it).
func (c *imapConn) setStallAdvice(advice string) {
	c.stall.mu.Lock()
	c.stall.advice = advice
	c.stall.mu.Unlock()
}

// imapOpenSession is OpenIMAP for a session a run keeps: its Watch also fails a server
// that falls silent for c.Timeout (see imapStall). advice ends that error: what the user
// can do.
func imapOpenSession(ctx context.Context, name string, c ConnConfig, tokens TokenProvider, advice string) (*IMAPSession, error) {
	client, conn, err := imapOpenConn(ctx, c, tokens, true)
	if err != nil {
		return nil, err
	}
	conn.setStallAdvice(advice)
	s := NewIMAPSession(name, c.Addr(), client)
	s.conn = conn
	return s, nil
}

// stallErr returns the stall error once the session's guard closed the connection, else
// nil (also for sessions without a guard).
func (s *IMAPSession) stallErr() error { return s.conn.stalled() }

// imapCtxErr explains a failed command of s: the stall error when the guard closed the
// connection because the server fell silent, ctx's error when ctx has ended (Watch closed
// the connection), else err.
func imapCtxErr(ctx context.Context, s *IMAPSession, err error) error {
	if serr := s.stallErr(); serr != nil {
		return serr
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (the connection was closed; open it again to continue)", cerr)
	}
	return err
}
