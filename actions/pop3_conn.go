package actions

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
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
	// and, afterwards, every single read and write on the connection. Zero means
	// DefaultPOP3Timeout.
	Timeout time.Duration
}

// pop3BufferSize is the size of a POP3Client's read buffer. It also bounds the length of
// a status line; message lines may be of any length.
const pop3BufferSize = 64 << 10

// DialPOP3 connects to a POP3 server and reads its greeting:
//
//   - SecurityTLS: TLS from the first byte, verified with d.TLSConfig.
//   - SecuritySTARTTLS: the greeting is read in plaintext, CAPA must list STLS (else the
//     error wraps ErrNoSTLS and nothing else is sent), STLS, TLS handshake. Bytes the server
//     sent after its STLS answer but before the handshake are refused (a plaintext
//     injection attempt). Capabilities learnt before TLS are forgotten (RFC 2595).
//   - SecurityNone: plaintext.
//
// Cancelling ctx while the connection opens closes it; afterwards ctx no longer matters
// (see POP3Session.Watch). The client is not logged in: use POP3Authenticate or
// POP3Client.UserPass.
func DialPOP3(ctx context.Context, d POP3Dial) (*POP3Client, error) {
	addr := net.JoinHostPort(d.Host, strconv.Itoa(d.Port))
	c, err := dialPOP3(ctx, d, addr)
	if err != nil {
		return nil, fmt.Errorf("pop3 open %s: %w", addr, err)
	}
	return c, nil
}

func dialPOP3(ctx context.Context, d POP3Dial, addr string) (*POP3Client, error) {
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
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, pop3DialErr(ctx, deadline, err)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	c, err := pop3Open(ctx, raw, security, cfg, deadline)
	if !stop() && err == nil {
		// ctx ended just as the greeting arrived; the watcher has closed the socket.
		err = errors.New("connection closed")
	}
	if err != nil {
		raw.Close()
		return nil, pop3DialErr(ctx, deadline, err)
	}
	c.addr = addr
	c.conn.idle = timeout
	c.conn.openDeadline = time.Time{}
	return c, nil
}

// pop3DialErr explains an opening failure caused by ctx's end.
func pop3DialErr(ctx context.Context, deadline time.Time, err error) error {
	cerr := ctx.Err()
	if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline) {
		// The socket deadline and ctx's timer expire together; either may fire first.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// pop3Open secures raw as asked and reads the greeting, all before deadline.
func pop3Open(ctx context.Context, raw net.Conn, security Security, cfg *tls.Config, deadline time.Time) (*POP3Client, error) {
	var c net.Conn = raw
	switch security {
	case SecurityTLS:
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		c = tc
	case SecuritySTARTTLS:
		nc := &pop3NetConn{Conn: raw, openDeadline: deadline}
		tc, err := pop3StartTLS(ctx, nc, bufio.NewReaderSize(nc, pop3BufferSize), cfg)
		if err != nil {
			return nil, err
		}
		nc = &pop3NetConn{Conn: tc, openDeadline: deadline}
		return &POP3Client{conn: nc, br: bufio.NewReaderSize(nc, pop3BufferSize)}, nil
	}
	nc := &pop3NetConn{Conn: c, openDeadline: deadline}
	cl := &POP3Client{conn: nc, br: bufio.NewReaderSize(nc, pop3BufferSize)}
	greeting, err := cl.readLine()
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if !pop3IsOK(greeting) {
		return nil, fmt.Errorf("unexpected greeting %q", clip(greeting))
	}
	return cl, nil
}

// pop3StartTLS reads the greeting, checks CAPA for STLS, sends STLS and does the TLS
// handshake over raw, returning the TLS connection.
func pop3StartTLS(ctx context.Context, raw *pop3NetConn, br *bufio.Reader, cfg *tls.Config) (*tls.Conn, error) {
	plain := &POP3Client{conn: raw, br: br}
	greeting, err := plain.readLine()
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if !pop3IsOK(greeting) {
		return nil, fmt.Errorf("unexpected greeting %q", clip(greeting))
	}
	line, err := plain.command("CAPA")
	if err != nil {
		return nil, fmt.Errorf("CAPA: %w", err)
	}
	if !pop3IsOK(line) {
		return nil, fmt.Errorf("%w: CAPA answered %q; not continuing without TLS", ErrNoSTLS, clip(line))
	}
	caps, err := plain.readCapa()
	if err != nil {
		return nil, fmt.Errorf("CAPA: %w", err)
	}
	if _, ok := caps["STLS"]; !ok {
		names := make([]string, 0, len(caps))
		for n := range caps {
			names = append(names, n)
		}
		return nil, fmt.Errorf("%w (CAPA lists %s); not continuing without TLS", ErrNoSTLS, strings.Join(pop3Sorted(names), " "))
	}
	line, err = plain.command("STLS")
	if err != nil {
		return nil, fmt.Errorf("STLS: %w", err)
	}
	if !pop3IsOK(line) {
		return nil, fmt.Errorf("STLS refused: %q", clip(line))
	}
	if br.Buffered() > 0 {
		return nil, errors.New("STLS: server sent data before the TLS handshake")
	}
	tc := tls.Client(raw.Conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake after STLS: %w", err)
	}
	return tc, nil
}

// pop3NetConn sets a deadline before each read and write: the opening deadline while
// DialPOP3 runs, then idle from the moment of each call.
type pop3NetConn struct {
	net.Conn
	idle         time.Duration
	openDeadline time.Time // zero once opened
}

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

func pop3IsOK(line string) bool { return line == "+OK" || strings.HasPrefix(line, "+OK ") }

func pop3IsErr(line string) bool { return line == "-ERR" || strings.HasPrefix(line, "-ERR ") }

// pop3Text returns a status line's text after "+OK " or "-ERR ".
func pop3Text(line string) string {
	_, text, _ := strings.Cut(line, " ")
	return text
}

// clip shortens a server line for an error message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// pop3TransportError reports whether err comes from the connection rather than from a
// server line.
func pop3TransportError(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &ne)
}
