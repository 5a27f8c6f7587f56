package actions

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
)

// Session is an open connection a run keeps by name (IMAP Open's and POP3 Open's
// result), used by later steps until a Close step or the end of the run.
type Session interface {
	// Protocol is "imap", "pop3" or "smtp".
	Protocol() string
	// Close ends the session politely (LOGOUT, QUIT) and releases the connection.
	Close() error
}

// CurrentMessage is the message a loop is on; Download, Parse Email, flags and move steps
// use it when no UID or file is given.
type CurrentMessage struct {
	Protocol string // "imap" or "pop3"
	Session  string // the session name the loop runs on
	UID      uint32 // IMAP UID
	Number   int    // POP3 message number in this session
	UIDL     string // POP3 unique id
	Size     int64  // size in bytes as the server reported it
	// Open streams the raw message (RFC 5322 bytes, exactly as the server holds them).
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// Sessions are the named sessions of one run and its current loop message. Safe for
// concurrent use.
type Sessions struct {
	mu      sync.Mutex
	byName  map[string]Session
	current *CurrentMessage
}

// NewSessions returns an empty set of sessions.
func NewSessions() *Sessions { return &Sessions{byName: map[string]Session{}} }

// Put stores s under name. A session already open under that name is closed first (and
// that is logged), so a second IMAP Open with the same name replaces the first.
func (ss *Sessions) Put(name string, s Session, log *slog.Logger) {
	ss.mu.Lock()
	old := ss.byName[name]
	ss.byName[name] = s
	ss.mu.Unlock()
	if old != nil {
		err := old.Close()
		if log != nil {
			log.Info("closed the previous connection of the same name", "connection", name, "error", errString(err))
		}
	}
}

// Get returns the session named name.
func (ss *Sessions) Get(name string) (Session, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byName[name]
	return s, ok
}

// Remove forgets the session named name and returns it (nil if none).
func (ss *Sessions) Remove(name string) Session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byName[name]
	delete(ss.byName, name)
	if ss.current != nil && ss.current.Session == name {
		ss.current = nil
	}
	return s
}

// CloseAll closes every session still open (at the end of a run), logging each.
func (ss *Sessions) CloseAll(log *slog.Logger) {
	ss.mu.Lock()
	names := make([]string, 0, len(ss.byName))
	for n := range ss.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	all := ss.byName
	ss.byName = map[string]Session{}
	ss.current = nil
	ss.mu.Unlock()
	for _, n := range names {
		err := all[n].Close()
		if log != nil {
			log.Info("closed connection left open at the end of the run", "connection", n, "protocol", all[n].Protocol(), "error", errString(err))
		}
	}
}

// SetCurrent makes m the current loop message (nil clears it).
func (ss *Sessions) SetCurrent(m *CurrentMessage) {
	ss.mu.Lock()
	ss.current = m
	ss.mu.Unlock()
}

// Current returns the current loop message, or nil outside a loop.
func (ss *Sessions) Current() *CurrentMessage {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.current
}

// Lookup returns the session named name as type T, with an error that tells the user what
// to add to the task when it is missing or of another protocol.
func Lookup[T Session](ss *Sessions, name, protocol string) (T, error) {
	var zero T
	if ss == nil {
		return zero, fmt.Errorf("no %s connection named %q: add a %s Open step before this one", strings.ToUpper(protocol), name, strings.ToUpper(protocol))
	}
	s, ok := ss.Get(name)
	if !ok {
		return zero, fmt.Errorf("no open %s connection named %q: add a %s Open step with that connection name before this step (or check the name)", strings.ToUpper(protocol), name, strings.ToUpper(protocol))
	}
	t, ok := s.(T)
	if !ok {
		return zero, fmt.Errorf("connection %q is %s, not %s", name, strings.ToUpper(s.Protocol()), strings.ToUpper(protocol))
	}
	return t, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
