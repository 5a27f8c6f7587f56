package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
)

// POP3Session is an open, logged-in POP3 connection kept by a run (POP3 Open's result).
//
// POP3 deletes in two stages: DELE marks a message, and the server removes the marked
// messages only when the session ends with QUIT (RFC 1939 section 6). If the connection
// breaks first, nothing is deleted. Close (POP3 Close, or the end of the run) sends QUIT
// and reports when marked messages could not be deleted.
type POP3Session struct {
	Client *POP3Client
	Name   string // connection name in the run
	Server string // host:port, for messages
	// Account is the user logged in as (set by POP3 Open); loops key their records by it.
	Account string

	mu       sync.Mutex
	closed   bool
	deleted  map[int]bool // messages marked with DELE in this session
	loopItem int          // the message a POP3 Mail Loop is on (0: none)
	deferred map[int]bool // deletions waiting for the loop item to succeed
	recorded pop3Recorded // deletions a loop recorded as pending in its state
}

// pop3Recorded is the UIDLs a POP3 Mail Loop with "only new" sent DELE for in this
// session and recorded as pending deletion in its state (pop3_seen.go); a successful QUIT
// removes them from that record.
type pop3Recorded struct {
	st    StateStore
	log   *slog.Logger
	uidls []string
}

// NewPOP3Session wraps a logged-in client.
func NewPOP3Session(name, server string, c *POP3Client) *POP3Session {
	return &POP3Session{Client: c, Name: name, Server: server, deleted: map[int]bool{}, deferred: map[int]bool{}}
}

// Protocol implements Session.
func (s *POP3Session) Protocol() string { return "pop3" }

// Close ends the session with QUIT, which commits the deletions. Closing twice is
// harmless. See Quit.
func (s *POP3Session) Close() error {
	_, err := s.Quit()
	return err
}

// Quit ends the session with QUIT and returns how many messages the server deleted. When
// the connection is already broken, or QUIT fails, the error says that the deletions were
// not committed (the messages stay on the server).
func (s *POP3Session) Quit() (deleted int, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, nil
	}
	s.closed = true
	marked := len(s.deleted)
	pending := len(s.deferred)
	s.deferred = map[int]bool{}
	recorded := s.recorded
	s.recorded = pop3Recorded{}
	s.mu.Unlock()
	err = s.Client.Quit()
	if err == nil {
		recorded.committed()
		return marked, nil
	}
	what := "no message was marked for deletion"
	if marked > 0 {
		what = fmt.Sprintf("the deletion of %d message(s) was NOT committed: they stay on the server", marked)
	}
	var perr *POP3Error
	if errors.As(err, &perr) {
		what = fmt.Sprintf("the server may not have deleted the %d message(s) marked for deletion", marked)
	}
	if pending > 0 {
		what += fmt.Sprintf(" (%d deferred deletion(s) of an unfinished loop item were dropped)", pending)
	}
	return 0, fmt.Errorf("pop3 quit from %s: %w; %s", s.Server, err, what)
}

// Watch closes the connection if ctx is cancelled before stop is called, so that a
// cancelled run returns promptly instead of waiting for the server. Use as
// `defer s.Watch(ctx)()`. After a cancel the session is unusable and deletes nothing.
func (s *POP3Session) Watch(ctx context.Context) (stop func()) {
	unwatch := context.AfterFunc(ctx, func() { s.Client.Close() })
	return func() { unwatch() }
}

// Retr streams message n like POP3Client.Retr; cancelling ctx before the reader is
// closed closes the connection.
func (s *POP3Session) Retr(ctx context.Context, n int) (io.ReadCloser, error) {
	unwatch := context.AfterFunc(ctx, func() { s.Client.Close() })
	r, err := s.Client.Retr(n)
	if err != nil {
		unwatch()
		return nil, pop3CtxErr(ctx, fmt.Errorf("pop3 RETR %d on %s: %w", n, s.Server, err))
	}
	return &pop3CtxReader{r: r, ctx: ctx, unwatch: unwatch}, nil
}

// pop3CtxReader is a message reader that stops watching ctx once closed.
type pop3CtxReader struct {
	r       io.ReadCloser
	ctx     context.Context
	unwatch func() bool
}

func (r *pop3CtxReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = pop3CtxErr(r.ctx, err)
	}
	return n, err
}

func (r *pop3CtxReader) Close() error {
	err := r.r.Close()
	r.unwatch()
	return pop3CtxErr(r.ctx, err)
}

// Delete marks message n for deletion now (DELE). The server deletes it at QUIT.
func (s *POP3Session) Delete(n int) error {
	if err := s.Client.Dele(n); err != nil {
		return fmt.Errorf("pop3 DELE %d on %s: %w", n, s.Server, err)
	}
	s.mu.Lock()
	s.deleted[n] = true
	s.mu.Unlock()
	return nil
}

// deleteBatch marks the messages nums for deletion now (DELE, pipelined when the server
// allows it). fn gets each message's outcome: nil or the server's *POP3Error. A
// connection error stops the batch and is returned.
func (s *POP3Session) deleteBatch(nums []int, fn func(i int, err error)) error {
	err := s.Client.DeleBatch(nums, func(i int, err error) {
		if err == nil {
			s.mu.Lock()
			s.deleted[nums[i]] = true
			s.mu.Unlock()
		}
		fn(i, err)
	})
	if err != nil {
		return fmt.Errorf("pop3 DELE on %s: %w", s.Server, err)
	}
	return nil
}

// noteRecorded remembers that DELE was sent in this session for uidl, which a loop
// recorded as pending deletion in st: a successful QUIT removes it from the record.
func (s *POP3Session) noteRecorded(st StateStore, log *slog.Logger, uidl string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recorded.st == nil {
		s.recorded.st, s.recorded.log = st, log
	}
	s.recorded.uidls = append(s.recorded.uidls, uidl)
}

// committed clears the deletions QUIT committed from the loop's record. When that fails
// the record keeps them, which does no harm: the next run drops the UIDLs no longer on
// the server.
func (r pop3Recorded) committed() {
	if r.st == nil || len(r.uidls) == 0 {
		return
	}
	if err := pop3SeenDeleted(r.st, r.uidls); err != nil {
		r.log.Warn("pop3: the deletions were committed, but the loop's record of pending deletions could not be updated; the next run drops them (the messages are no longer on the server)", "error", err.Error())
		return
	}
	r.log.Debug("pop3: deletions committed by QUIT removed from the loop's record of pending deletions", "messages", len(r.uidls))
}

// Deleted reports whether message n was marked for deletion in this session.
func (s *POP3Session) Deleted(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[n]
}

// DeletedCount returns how many messages are marked for deletion in this session.
func (s *POP3Session) DeletedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.deleted)
}

// setLoopItem records the message the loop is on (0: none).
func (s *POP3Session) setLoopItem(n int) {
	s.mu.Lock()
	s.loopItem = n
	s.mu.Unlock()
}

// DeferDelete marks message n for deletion once the loop item it belongs to succeeds,
// when n is the message a POP3 Mail Loop on this session is on; it reports false
// otherwise (the caller then deletes at once).
func (s *POP3Session) DeferDelete(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loopItem == 0 || s.loopItem != n {
		return false
	}
	s.deferred[n] = true
	return true
}

// takeDeferred removes and returns the deferred deletions, in order.
func (s *POP3Session) takeDeferred() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.deferred))
	for n := range s.deferred {
		out = append(out, n)
	}
	s.deferred = map[int]bool{}
	sort.Ints(out)
	return out
}

// POP3For returns the open POP3 session named by the step's "connection" parameter (or
// DefaultPOP3Connection).
func POP3For(env *Env) (*POP3Session, error) {
	name := env.Params.String("connection")
	if name == "" {
		name = DefaultPOP3Connection
	}
	return Lookup[*POP3Session](env.Sessions, name, "pop3")
}

// pop3Target is the message a Download or Delete step works on.
type pop3Target struct {
	Number int
	UIDL   string // "" when not known
	Size   int64  // -1 when not known
	Loop   bool   // the loop's current message
}

// pop3TargetOf returns the message of the step's "number" parameter or, when it is empty,
// the current message of a POP3 Mail Loop on the same connection.
func pop3TargetOf(env *Env, s *POP3Session) (pop3Target, error) {
	if v := env.Params.String("number"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return pop3Target{}, fmt.Errorf("message number %q is not a message number (1, 2, …)", v)
		}
		return pop3Target{Number: n, Size: -1}, nil
	}
	cur := env.Sessions.Current()
	if cur == nil || cur.Protocol != "pop3" {
		return pop3Target{}, fmt.Errorf("no message number given and no POP3 Mail Loop is running: put this step inside a POP3 Mail Loop, or set \"Message number\"")
	}
	if cur.Session != s.Name {
		return pop3Target{}, fmt.Errorf("no message number given, and the POP3 Mail Loop runs on connection %q, not %q: set \"Connection name\" to %q or set \"Message number\"", cur.Session, s.Name, cur.Session)
	}
	return pop3Target{Number: cur.Number, UIDL: cur.UIDL, Size: cur.Size, Loop: true}, nil
}

// pop3CtxErr prefers ctx's error when ctx has ended (the watcher closed the connection).
func pop3CtxErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}
