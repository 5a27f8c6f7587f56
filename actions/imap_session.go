package actions

import (
	"context"
	"fmt"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// DefaultIMAPConnection is the connection name IMAP steps use when they name none.
const DefaultIMAPConnection = "imap"

// IMAPSession is an open, logged-in IMAP connection kept by a run (IMAP Open's result).
type IMAPSession struct {
	Client *imapclient.Client
	Name   string // connection name in the run
	Server string // host:port, for messages
	// Account is the user logged in as (set by IMAP Open); loops key their checkpoints by it.
	Account string

	// conn is the connection under Client when the session has a stall guard (sessions of
	// IMAP Open and Check for Email; see imapStall), else nil.
	conn *imapConn

	mu          sync.Mutex
	mailbox     string // selected mailbox, "" when none
	readOnly    bool
	uidValidity uint32
	closed      bool
}

// NewIMAPSession wraps a logged-in client.
func NewIMAPSession(name, server string, c *imapclient.Client) *IMAPSession {
	return &IMAPSession{Client: c, Name: name, Server: server}
}

// Protocol implements Session.
func (s *IMAPSession) Protocol() string { return "imap" }

// Close logs out and closes the connection. Closing twice is harmless. LOGOUT waits for a
// silent server no longer than the stall guard allows, and not at all once the guard
// closed the connection.
func (s *IMAPSession) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.stallErr() != nil {
		_ = s.Client.Close() // the failed step has said why
		return nil
	}
	stop := s.conn.stallWatch()
	err := s.Client.Logout().Wait()
	stop()
	if serr := s.stallErr(); serr != nil {
		err = serr
	}
	if cerr := s.Client.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("imap logout from %s: %w", s.Server, err)
	}
	return nil
}

// SetSelected records the mailbox the session has selected (IMAP Select Mail Folder).
func (s *IMAPSession) SetSelected(mailbox string, readOnly bool, uidValidity uint32) {
	s.mu.Lock()
	s.mailbox, s.readOnly, s.uidValidity = mailbox, readOnly, uidValidity
	s.mu.Unlock()
}

// Selected returns the selected mailbox, whether it was opened read-only (EXAMINE) and its
// UIDVALIDITY, or an error telling the user to add a Select step.
func (s *IMAPSession) Selected() (mailbox string, readOnly bool, uidValidity uint32, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mailbox == "" {
		return "", false, 0, fmt.Errorf("connection %q has no folder selected: add an \"IMAP Select Mail Folder\" step before this one", s.Name)
	}
	return s.mailbox, s.readOnly, s.uidValidity, nil
}

// Caps returns the server's capabilities (as last announced).
func (s *IMAPSession) Caps() imap.CapSet { return s.Client.Caps() }

// Watch closes the connection if ctx is cancelled before stop is called, because go-imap
// commands take no context: a cancelled run then returns promptly instead of waiting for
// the server. Use as `defer s.Watch(ctx)()`. After a cancel the session is unusable.
//
// Until stop, the session's stall guard also closes the connection when the server sends
// nothing for the connection's timeout while the client waits to read (see imapStall);
// the failed commands then report why through imapCtxErr and imapMsgsErr. Watch calls may
// nest and run concurrently.
func (s *IMAPSession) Watch(ctx context.Context) (stop func()) {
	unstall := s.conn.stallWatch()
	stopCh := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			_ = s.Client.Close()
		case <-stopCh:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stopCh); <-done; unstall() })
	}
}

// IMAPFor returns the open IMAP session named by the step's "connection" parameter (or
// DefaultIMAPConnection).
func IMAPFor(env *Env) (*IMAPSession, error) {
	name := env.Params.String("connection")
	if name == "" {
		name = DefaultIMAPConnection
	}
	return Lookup[*IMAPSession](env.Sessions, name, "imap")
}

// ConnectionParam is the "connection" parameter of steps that use an open session.
func ConnectionParam(protocol string) Param {
	def := map[string]string{"imap": DefaultIMAPConnection, "pop3": DefaultPOP3Connection}[protocol]
	return Param{Name: "connection", Label: "Connection name", Kind: KindConnection, Default: def,
		Help: "Name of the connection opened by an earlier Open step; lets one task use several mailboxes at once."}
}

// DefaultPOP3Connection is the connection name POP3 steps use when they name none.
const DefaultPOP3Connection = "pop3"
