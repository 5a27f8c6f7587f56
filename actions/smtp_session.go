package actions

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpFinalReplyWait is how long the server may take to answer the end of the message
// data (RFC 5321 section 4.5.3.2.6 recommends 10 minutes): giving up earlier would leave
// the user unsure whether the mail went out.
const smtpFinalReplyWait = 10 * time.Minute

// SMTPSession is an open, logged-in SMTP connection. SMTP Send Email keeps it in the run's
// Sessions under a key derived from the server, the account and the login method, so that
// sending inside a loop uses one connection; the run's Sessions.CloseAll ends it with QUIT.
type SMTPSession struct {
	Client *smtp.Client
	Server string // host:port, for messages

	conn *smtpConn

	mu     sync.Mutex
	closed bool
	broken bool // the connection failed or was closed under the client: no QUIT
}

// Protocol implements Session.
func (s *SMTPSession) Protocol() string { return "smtp" }

// Close sends QUIT and closes the connection. Closing twice is harmless.
func (s *SMTPSession) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	broken := s.broken
	s.mu.Unlock()
	if broken {
		s.conn.Close()
		return nil
	}
	if err := s.Client.Quit(); err != nil {
		s.Client.Close()
		return fmt.Errorf("smtp quit from %s: %w", s.Server, err)
	}
	return nil
}

// abandon marks the connection unusable and closes it without QUIT.
func (s *SMTPSession) abandon() {
	s.mu.Lock()
	s.broken = true
	s.mu.Unlock()
	_ = s.Close()
}

// note marks the connection broken when err is not a server reply that leaves it usable,
// and returns err.
func (s *SMTPSession) note(err error) error {
	if err != nil && !isSMTPReply(err) {
		s.mu.Lock()
		s.broken = true
		s.mu.Unlock()
	}
	return err
}

// isBroken reports whether the connection can no longer be used.
func (s *SMTPSession) isBroken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken || s.closed
}

// watch closes the connection if ctx ends before stop is called: go-smtp has no context
// support, so a cancelled step then returns promptly. stop reports whether ctx ended.
func (s *SMTPSession) watch(ctx context.Context) (stop func() (cancelled bool)) {
	after := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.broken = true
		s.mu.Unlock()
		s.conn.Close()
	})
	return func() bool { return !after() }
}

// smtpConn is the TCP connection under the SMTP client. It bounds every deadline go-smtp
// sets (5 and 12 minutes by default) to limit and gives each write its own deadline, so
// that a silent server cannot stall a command or the message data longer than the step's
// timeout.
type smtpConn struct {
	net.Conn
	limit atomic.Int64 // time.Duration
}

func (c *smtpConn) current() time.Duration { return time.Duration(c.limit.Load()) }

func (c *smtpConn) SetDeadline(t time.Time) error {
	if !t.IsZero() {
		if max := time.Now().Add(c.current()); t.After(max) {
			t = max
		}
	}
	return c.Conn.SetDeadline(t)
}

func (c *smtpConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.current()))
	return c.Conn.Write(b)
}

// smtpSessionKey is the Sessions key of the connection cfg describes.
func smtpSessionKey(cfg ConnConfig) string {
	who := cfg.User
	if cfg.Auth == AuthOAuth {
		who = cfg.ParamSet + "/" + cfg.User
	}
	return "smtp:" + cfg.Addr() + ":" + who + ":" + cfg.Auth + ":" + string(cfg.Security)
}

// errSMTPNoSTARTTLS is the library's text when a server does not offer STARTTLS
// (go-smtp v0.25.1 client.go initStartTLS).
const errSMTPNoSTARTTLS = "smtp: server doesn't support STARTTLS"

// smtpLocalName is the name the client gives in EHLO: the address literal of its side
// of the connection (RFC 5321 section 4.1.4), as a host without a known FQDN should.
func smtpLocalName(c net.Conn) string {
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		if a.IP.To4() != nil {
			return "[" + a.IP.String() + "]"
		}
		return "[IPv6:" + a.IP.String() + "]"
	}
	return "localhost"
}

// smtpOpen connects to the server, secures the connection as cfg says (never falling back
// to plaintext), says EHLO and logs in. Cancelling ctx closes the connection.
func smtpOpen(ctx context.Context, cfg ConnConfig, tokens TokenProvider) (*SMTPSession, error) {
	addr := cfg.Addr()
	tlsCfg, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtp connect to %s: %w (check the host and port)", addr, err)
	}
	conn := &smtpConn{Conn: raw}
	conn.limit.Store(int64(cfg.Timeout))
	s := &SMTPSession{Server: addr, conn: conn}
	// Until the client is ready, the dial context bounds everything.
	stopSetup := context.AfterFunc(dctx, func() { raw.Close() })
	c, err := smtpHandshake(dctx, conn, cfg, tlsCfg)
	// The dial context may have ended and closed the connection under the client, or a
	// read may have hit the connection's own deadline: either way the server was silent.
	expired := !stopSetup()
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case expired || errors.Is(err, os.ErrDeadlineExceeded):
		if c != nil {
			c.Close()
		}
		err = fmt.Errorf("no answer within %s (%w)%s", cfg.Timeout, context.DeadlineExceeded, securityHint(cfg.Security, os.ErrDeadlineExceeded))
	}
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("smtp %s to %s: %w", cfg.Security, addr, err)
	}
	s.Client = c

	stop := s.watch(ctx)
	err = smtpLogin(ctx, c, cfg, tokens)
	if stop() {
		err = fmt.Errorf("smtp login to %s: %w", addr, ctx.Err())
	}
	if err != nil {
		s.abandon()
		return nil, err
	}
	return s, nil
}

// smtpHandshake reads the greeting, does TLS or STARTTLS and EHLO.
func smtpHandshake(ctx context.Context, conn *smtpConn, cfg ConnConfig, tlsCfg *tls.Config) (*smtp.Client, error) {
	local := smtpLocalName(conn)
	var c *smtp.Client
	switch cfg.Security {
	case SecurityTLS:
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls handshake: %w%s", err, smtpHint(cfg.Security, err))
		}
		c = smtp.NewClient(tc)
	case SecuritySTARTTLS:
		// go-smtp's plaintext EHLO before STARTTLS says "localhost"; the one after the
		// handshake (below) gives the real local name.
		var err error
		c, err = smtp.NewClientStartTLS(conn, tlsCfg)
		if err != nil {
			if err.Error() == errSMTPNoSTARTTLS {
				return nil, errors.New("the server does not offer STARTTLS, so the connection cannot be encrypted and nothing was sent: use security tls (port 465) if the server supports it, or ask the provider for the right port")
			}
			return nil, fmt.Errorf("starttls: %w%s", err, smtpHint(cfg.Security, err))
		}
	default:
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = cfg.Timeout
	c.SubmissionTimeout = max(cfg.Timeout, smtpFinalReplyWait)
	if err := c.Hello(local); err != nil {
		c.Close()
		if cfg.Security == SecuritySTARTTLS {
			return nil, fmt.Errorf("after STARTTLS (TLS handshake and EHLO): %w", err)
		}
		return nil, fmt.Errorf("greeting and EHLO: %w%s", err, smtpHint(cfg.Security, err))
	}
	return c, nil
}

// smtpHint is securityHint for errors other than timeouts (smtpOpen explains those).
func smtpHint(sec Security, err error) string {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ""
	}
	return securityHint(sec, err)
}

// smtpLogin authenticates with cfg's method (nothing for auth none).
func smtpLogin(ctx context.Context, c *smtp.Client, cfg ConnConfig, tokens TokenProvider) error {
	if cfg.Auth == AuthNone {
		return nil
	}
	addr := cfg.Addr()
	ok, mechs := c.Extension("AUTH")
	if !ok {
		hint := ""
		if cfg.Security == SecurityNone {
			hint = " (servers often offer it only over TLS: use security tls or starttls)"
		}
		return fmt.Errorf("smtp login to %s: the server offers no login (AUTH)%s; if it is a relay that needs none, set authentication to none", addr, hint)
	}
	if !c.SupportsAuth(cfg.Mech) {
		return fmt.Errorf("smtp login to %s: the server does not offer the SASL mechanism %s (it offers %s): choose one of those under \"SASL mechanism\"", addr, cfg.Mech, mechs)
	}
	return cfg.Login(ctx, tokens, c.Auth)
}

// smtpAcquire returns the run's kept connection for cfg, or opens and keeps a new one.
// A kept connection is not checked first (no NOOP or RSET: one round trip less per
// message, and go-smtp's Client.Reset would also forget the EHLO and cost another); a
// connection found dead at MAIL FROM is replaced by transmit, before anything was sent.
func smtpAcquire(ctx context.Context, env *Env, cfg ConnConfig) (s *SMTPSession, reused bool, err error) {
	key := smtpSessionKey(cfg)
	if old, ok := env.Sessions.Get(key); ok {
		if ss, ok := old.(*SMTPSession); ok && !ss.isBroken() {
			return ss, true, nil
		}
		env.Sessions.Remove(key)
	}
	ss, err := smtpOpen(ctx, cfg, env.Tokens)
	if err != nil {
		return nil, false, err
	}
	env.Sessions.Put(key, ss, env.Logger())
	return ss, false, nil
}
