package actions

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/knadh/go-pop3"
)

// Security is how the connection to a mail server is protected.
type Security string

// The security modes.
const (
	SecurityTLS      Security = "tls"      // TLS from the first byte (POP3S 995, IMAPS 993, SMTPS 465)
	SecuritySTARTTLS Security = "starttls" // plaintext greeting, then STLS/STARTTLS; never falls back to plaintext
	SecurityNone     Security = "none"     // no TLS at all
)

// DefaultPOP3Timeout is the POP3Dial.Timeout used when it is zero.
const DefaultPOP3Timeout = 30 * time.Second

// ErrNoSTLS is returned, wrapped, by DialPOP3 in SecuritySTARTTLS mode when the server does
// not list STLS in its CAPA answer. The connection is then closed, never used in plaintext.
var ErrNoSTLS = errors.New("server does not offer STLS")

// POP3Dial says how DialPOP3 connects.
type POP3Dial struct {
	Host     string
	Port     int
	Security Security // "" means SecurityTLS
	// TLSConfig is the client TLS configuration; nil means the system roots and ServerName
	// Host. A config without ServerName gets Host (it is cloned, not modified).
	TLSConfig *tls.Config
	// Timeout bounds the whole opening (TCP connect, TLS handshake, greeting, CAPA, STLS)
	// and, afterwards, every single read and write on the connection, because go-pop3's
	// Conn has no way to set deadlines. Zero means DefaultPOP3Timeout.
	Timeout time.Duration
}

// DialPOP3 connects to a POP3 server and reads its greeting, with go-pop3 (v1.0.2) doing
// the POP3 commands afterwards. go-pop3 itself only knows implicit TLS with the default
// roots or InsecureSkipVerify, and neither STLS nor SASL, so DialPOP3 gives it a Dialer that
// returns an already secured connection:
//
//   - SecurityTLS: TLS from the first byte, verified with d.TLSConfig.
//   - SecuritySTARTTLS: the greeting is read in plaintext, CAPA must list STLS (else the
//     error wraps ErrNoSTLS and nothing else is sent), STLS, TLS handshake. The dialer then
//     returns the TLS connection with the plaintext greeting line replayed in front of it,
//     because go-pop3's NewConn insists on reading a greeting first and a POP3 server sends
//     none after STLS. Bytes the server sent after its STLS answer but before the handshake
//     are refused (a plaintext injection attempt).
//   - SecurityNone: plaintext.
//
// Cancelling ctx while the connection opens closes it. The returned Conn has no Close
// method (a go-pop3 limitation); end it with Quit, which closes the socket even on error.
func DialPOP3(ctx context.Context, d POP3Dial) (*pop3.Conn, error) {
	addr := net.JoinHostPort(d.Host, strconv.Itoa(d.Port))
	c, err := dialPOP3(ctx, d, addr)
	if err != nil {
		return nil, fmt.Errorf("pop3 open %s: %w", addr, err)
	}
	return c, nil
}

func dialPOP3(ctx context.Context, d POP3Dial, addr string) (*pop3.Conn, error) {
	if d.Host == "" {
		return nil, errors.New("no host")
	}
	if d.Port <= 0 || d.Port > 65535 {
		return nil, fmt.Errorf("invalid port %d", d.Port)
	}
	security := d.Security
	if security == "" {
		security = SecurityTLS
	}
	switch security {
	case SecurityTLS, SecuritySTARTTLS, SecurityNone:
	default:
		return nil, fmt.Errorf("unknown security mode %q (want %q, %q or %q)", security, SecurityTLS, SecuritySTARTTLS, SecurityNone)
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultPOP3Timeout
	}
	var cfg *tls.Config
	if d.TLSConfig == nil {
		cfg = &tls.Config{ServerName: d.Host, MinVersion: tls.VersionTLS12}
	} else {
		cfg = d.TLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = d.Host
		}
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	dialer := &pop3Dialer{ctx: ctx, addr: addr, security: security, tls: cfg, idle: timeout, deadline: deadline}
	defer dialer.stopWatch()

	// go-pop3 formats its own "host:port" (wrong for IPv6 literals) and passes it to Dial;
	// the dialer ignores it and uses addr. TLSEnabled stays false: the dialer did TLS.
	conn, err := pop3.New(pop3.Opt{Host: d.Host, Port: d.Port, Dialer: dialer}).NewConn()
	if err == nil && !dialer.stopWatch() {
		// ctx ended just as the greeting arrived; the watcher has closed the socket.
		err = errors.New("connection closed")
	}
	if err != nil {
		// go-pop3's NewConn does not close the socket when reading the greeting fails.
		if dialer.conn != nil {
			dialer.conn.Close()
		}
		cerr := ctx.Err()
		if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline) {
			// The socket deadline and ctx's timer expire together; either may fire first.
			cerr = context.DeadlineExceeded
		}
		if cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		return nil, err
	}
	dialer.conn.opened()
	return conn, nil
}

// pop3Dialer is the go-pop3 Dialer of DialPOP3: it connects, secures the connection as
// asked and watches ctx until DialPOP3 calls stopWatch.
type pop3Dialer struct {
	ctx      context.Context
	addr     string
	security Security
	tls      *tls.Config
	idle     time.Duration
	deadline time.Time

	conn *pop3NetConn // the connection handed to go-pop3, to close it on failure
	stop func() bool  // stops the ctx watcher
}

// stopWatch stops closing the connection on ctx's end. It reports false when the watcher
// has already closed it.
func (p *pop3Dialer) stopWatch() bool {
	if p.stop == nil {
		return true
	}
	stop := p.stop
	p.stop = nil
	return stop()
}

// Dial implements pop3.Dialer.
func (p *pop3Dialer) Dial(network, _ string) (net.Conn, error) {
	var nd net.Dialer
	raw, err := nd.DialContext(p.ctx, network, p.addr)
	if err != nil {
		return nil, err
	}
	p.stop = context.AfterFunc(p.ctx, func() { raw.Close() })
	if err := raw.SetDeadline(p.deadline); err != nil {
		raw.Close()
		return nil, err
	}
	var c net.Conn = raw
	switch p.security {
	case SecurityTLS:
		tc := tls.Client(raw, p.tls)
		if err := tc.HandshakeContext(p.ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		c = tc
	case SecuritySTARTTLS:
		c, err = pop3StartTLS(p.ctx, raw, p.tls)
		if err != nil {
			raw.Close()
			return nil, err
		}
	}
	p.conn = &pop3NetConn{Conn: c, idle: p.idle, openDeadline: p.deadline}
	return p.conn, nil
}

// pop3MaxLine bounds the lines read before go-pop3 takes over.
const pop3MaxLine = 4096

// pop3StartTLS reads the greeting, checks CAPA for STLS, sends STLS and does the TLS
// handshake. It returns the TLS connection with the greeting line replayed in front of it.
func pop3StartTLS(ctx context.Context, raw net.Conn, cfg *tls.Config) (net.Conn, error) {
	br := bufio.NewReaderSize(raw, pop3MaxLine)
	greeting, err := pop3ReadLine(br)
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if !pop3IsOK(greeting) {
		return nil, fmt.Errorf("unexpected greeting %q", clip(greeting))
	}

	if _, err := io.WriteString(raw, "CAPA\r\n"); err != nil {
		return nil, fmt.Errorf("CAPA: %w", err)
	}
	line, err := pop3ReadLine(br)
	if err != nil {
		return nil, fmt.Errorf("CAPA: %w", err)
	}
	if !pop3IsOK(line) {
		return nil, fmt.Errorf("%w: CAPA answered %q; not continuing without TLS", ErrNoSTLS, clip(line))
	}
	var caps []string
	stls := false
	for {
		line, err := pop3ReadLine(br)
		if err != nil {
			return nil, fmt.Errorf("CAPA: %w", err)
		}
		if line == "." {
			break
		}
		if len(caps) > 200 {
			return nil, errors.New("CAPA: answer too long")
		}
		name, _, _ := strings.Cut(line, " ")
		caps = append(caps, name)
		if strings.EqualFold(name, "STLS") {
			stls = true
		}
	}
	if !stls {
		return nil, fmt.Errorf("%w (CAPA lists %s); not continuing without TLS", ErrNoSTLS, strings.Join(caps, " "))
	}

	if _, err := io.WriteString(raw, "STLS\r\n"); err != nil {
		return nil, fmt.Errorf("STLS: %w", err)
	}
	line, err = pop3ReadLine(br)
	if err != nil {
		return nil, fmt.Errorf("STLS: %w", err)
	}
	if !pop3IsOK(line) {
		return nil, fmt.Errorf("STLS refused: %q", clip(line))
	}
	if br.Buffered() > 0 {
		return nil, errors.New("STLS: server sent data before the TLS handshake")
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake after STLS: %w", err)
	}
	return &pop3ReplayConn{Conn: tc, r: io.MultiReader(strings.NewReader(greeting+"\r\n"), tc)}, nil
}

// pop3ReplayConn is a TLS connection whose first bytes read are the replayed plaintext
// greeting, for go-pop3's NewConn.
type pop3ReplayConn struct {
	net.Conn
	r io.Reader
}

func (c *pop3ReplayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// pop3NetConn is the connection go-pop3 uses. It sets a deadline before each read and
// write: the opening deadline while DialPOP3 runs, then idle from the moment of each call.
type pop3NetConn struct {
	net.Conn
	idle         time.Duration
	openDeadline time.Time // zero once opened
}

// opened ends the opening phase: from now on each read or write gets idle.
func (c *pop3NetConn) opened() { c.openDeadline = time.Time{} }

func (c *pop3NetConn) deadline() time.Time {
	if !c.openDeadline.IsZero() {
		return c.openDeadline
	}
	return time.Now().Add(c.idle)
}

func (c *pop3NetConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(c.deadline()); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *pop3NetConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(c.deadline()); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// pop3ReadLine reads one line of at most pop3MaxLine bytes, without its CRLF.
func pop3ReadLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("line longer than %d bytes", pop3MaxLine)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func pop3IsOK(line string) bool { return line == "+OK" || strings.HasPrefix(line, "+OK ") }

// clip shortens a server line for an error message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// POP3AuthError is a POP3 server's -ERR answer to AUTH.
type POP3AuthError struct {
	Mechanism string
	Text      string // the server's text after "-ERR "
}

// Error implements error.
func (e *POP3AuthError) Error() string {
	return fmt.Sprintf("pop3 AUTH %s refused: %s", e.Mechanism, e.Text)
}

// pop3MaxCommand is the longest POP3 command line, CRLF included (RFC 2449 section 4).
const pop3MaxCommand = 255

// pop3MaxAuthRounds bounds the challenges of one AUTH exchange.
const pop3MaxAuthRounds = 8

// POP3Authenticate logs in with SASL AUTH (RFC 5034). The initial response goes on the
// AUTH line ("=" when empty) unless the line would exceed 255 octets, in which case it is
// sent after the server's empty "+ " continuation, as RFC 5034 section 4 requires (OAuth
// access tokens are often that long). Each "+ <base64>" challenge is passed to mech.Next and
// its answer sent back base64-encoded, an empty answer as an empty line; when mech.Next
// fails the exchange is cancelled with "*". A -ERR answer gives a *POP3AuthError with the
// server's text; use OAuthLoginError for a user-facing message.
//
// go-pop3 offers only line reads that reject anything but +OK/-ERR, so continuation lines
// are recovered from the text of its "unknown response" error (pop3.go, parseResp); the
// error messages of go-pop3 v1.0.2 are relied on for that.
func POP3Authenticate(c *pop3.Conn, mech sasl.Client) error {
	name, ir, err := mech.Start()
	if err != nil {
		return fmt.Errorf("pop3 AUTH: %w", err)
	}
	cmd := "AUTH " + name
	var pending []byte // initial response still to send after an empty continuation
	if ir != nil {
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		if len(cmd)+1+len(enc)+2 <= pop3MaxCommand {
			cmd += " " + enc
		} else {
			pending = ir
		}
	}
	if err := c.Send(cmd); err != nil {
		return fmt.Errorf("pop3 AUTH %s: %w", name, err)
	}
	for round := 0; ; round++ {
		kind, text, err := pop3AuthReply(c)
		if err != nil {
			return fmt.Errorf("pop3 AUTH %s: %w", name, err)
		}
		switch kind {
		case pop3ReplyOK:
			return nil
		case pop3ReplyErr:
			return &POP3AuthError{Mechanism: name, Text: text}
		}
		if round >= pop3MaxAuthRounds {
			return pop3CancelAuth(c, name, errors.New("too many challenges"))
		}
		var resp []byte
		if pending != nil {
			if text != "" {
				return pop3CancelAuth(c, name, errors.New("server sent a challenge instead of asking for the initial response"))
			}
			resp, pending = pending, nil
		} else {
			challenge, err := base64.StdEncoding.DecodeString(text)
			if err != nil {
				return pop3CancelAuth(c, name, fmt.Errorf("malformed challenge: %w", err))
			}
			resp, err = mech.Next(challenge)
			if err != nil {
				return pop3CancelAuth(c, name, err)
			}
		}
		if err := c.Send(base64.StdEncoding.EncodeToString(resp)); err != nil {
			return fmt.Errorf("pop3 AUTH %s: %w", name, err)
		}
	}
}

// pop3CancelAuth cancels an AUTH exchange with "*" and reads the server's answer, so that
// the connection stays in step.
func pop3CancelAuth(c *pop3.Conn, name string, cause error) error {
	if err := c.Send("*"); err != nil {
		return fmt.Errorf("pop3 AUTH %s: %w (cancelling: %v)", name, cause, err)
	}
	kind, text, err := pop3AuthReply(c)
	switch {
	case err != nil:
		return fmt.Errorf("pop3 AUTH %s: %w (cancelling: %v)", name, cause, err)
	case kind == pop3ReplyErr:
		return fmt.Errorf("pop3 AUTH %s cancelled: %w (server: %s)", name, cause, text)
	default:
		return fmt.Errorf("pop3 AUTH %s cancelled: %w (unexpected server answer to \"*\")", name, cause)
	}
}

type pop3ReplyKind int

const (
	pop3ReplyOK pop3ReplyKind = iota
	pop3ReplyErr
	pop3ReplyCont
)

// go-pop3 v1.0.2's parseResp error for a line that is neither +OK nor -ERR.
const (
	pop3UnknownPrefix = "unknown response: "
	pop3UnknownSuffix = ". Neither -ERR, nor +OK"
)

// pop3AuthReply reads one reply during AUTH: +OK, -ERR (text is the server's text) or a
// "+" continuation (text is the base64 challenge). err is a transport or protocol error.
func pop3AuthReply(c *pop3.Conn) (pop3ReplyKind, string, error) {
	line, err := c.ReadOne()
	if err == nil {
		// "+OK ..." (go-pop3 also returns an empty line this way; it cannot be told apart).
		return pop3ReplyOK, string(line), nil
	}
	if pop3TransportError(err) {
		return 0, "", err
	}
	msg := err.Error()
	if strings.HasPrefix(msg, pop3UnknownPrefix) && strings.HasSuffix(msg, pop3UnknownSuffix) {
		l := msg[len(pop3UnknownPrefix) : len(msg)-len(pop3UnknownSuffix)]
		if l == "+" || strings.HasPrefix(l, "+ ") {
			return pop3ReplyCont, strings.TrimSpace(l[1:]), nil
		}
		return 0, "", fmt.Errorf("unexpected response %q", clip(l))
	}
	// Anything else from ReadOne is the text of a -ERR line.
	return pop3ReplyErr, msg, nil
}

// pop3TransportError reports whether err comes from the connection rather than from a
// server line.
func pop3TransportError(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &ne)
}
