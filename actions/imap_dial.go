package actions

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// ErrNoSTARTTLS is returned, wrapped, by DialIMAP and OpenIMAP in SecuritySTARTTLS mode when
// the server does not list STARTTLS among its capabilities. The connection is then closed
// without sending anything but, when the greeting lists no capabilities, CAPABILITY: never
// STARTTLS, never a login, never plaintext fallback.
var ErrNoSTARTTLS = errors.New("the server does not offer STARTTLS")

// imapMaxLine bounds the lines read before go-imap takes over (greeting, CAPABILITY,
// STARTTLS answer).
const imapMaxLine = 16 << 10

// imapKeepAlive is the TCP keep-alive of IMAP connections: a dead peer or a NAT that
// dropped the connection is noticed even while a loop's body runs for a long time.
var imapKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 15 * time.Second, Count: 4}

// DialIMAP connects to the IMAP server of c and waits for its greeting, without logging in:
//
//   - SecurityTLS: TLS from the first byte, verified with c.TLSConfig().
//   - SecuritySTARTTLS: the greeting is read in plaintext and the server must list
//     STARTTLS (from the greeting's CAPABILITY code, or a CAPABILITY command); otherwise the
//     error wraps ErrNoSTARTTLS and nothing else is sent. Then STARTTLS and the TLS
//     handshake; data the server sends between its STARTTLS answer and the handshake is
//     refused (a plaintext injection attempt), and so is PREAUTH before TLS.
//   - SecurityNone: plaintext.
//
// Connecting, TLS and the greeting together are bounded by c.Timeout (DefaultTimeout when
// zero) and by ctx; TCP keep-alive is on. Errors read "imap open host:port: <what>: <advice>"
// and name the parameter to fix. The caller closes the returned client; after DialIMAP
// returns, ctx no longer applies to it (see IMAPSession.Watch).
func DialIMAP(ctx context.Context, c ConnConfig) (*imapclient.Client, error) {
	d, err := imapDial(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return d.client, nil
}

// imapDialed is a connection whose opening (dial, TLS, greeting, login) is still bounded by
// the opening's context: a watcher closes the socket when ctx ends.
type imapDialed struct {
	c         ConnConfig
	client    *imapclient.Client
	conn      *imapConn
	tls       bool            // the connection go-imap talks over is TLS
	ctx       context.Context // the caller's ctx plus c.Timeout
	cancel    context.CancelFunc
	stopWatch func() bool
}

// finish ends the bounded opening. It fails, closing the client, when the watcher has
// already closed the connection.
func (d *imapDialed) finish() error {
	ok := d.stopWatch()
	defer d.cancel()
	if !ok {
		d.client.Close()
		return imapOpenError(d.c, d.ctx, "login", net.ErrClosed)
	}
	return nil
}

// abort closes the connection after a failed opening.
func (d *imapDialed) abort() {
	d.stopWatch()
	d.cancel()
	d.client.Close()
}

func imapDial(ctx context.Context, c ConnConfig) (*imapDialed, error) {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Security == "" {
		c.Security = SecurityTLS
	}
	addr := c.Addr()
	switch c.Security {
	case SecurityTLS, SecuritySTARTTLS, SecurityNone:
	default:
		return nil, fmt.Errorf("imap open %s: unknown security %q: set \"Security\" to tls, starttls or none", addr, c.Security)
	}
	if c.Host == "" || c.Port <= 0 || c.Port > 65535 {
		return nil, fmt.Errorf("imap open %s: set \"Host\" and \"Port\" (1-65535)", addr)
	}
	var cfg *tls.Config
	if c.Security != SecurityNone {
		var err error
		if cfg, err = c.TLSConfig(); err != nil {
			return nil, fmt.Errorf("imap open %s: %w", addr, err)
		}
	}

	dctx, cancel := context.WithTimeout(ctx, c.Timeout)
	dialer := &net.Dialer{KeepAliveConfig: imapKeepAlive}
	raw, err := dialer.DialContext(dctx, "tcp", addr)
	if err != nil {
		defer cancel()
		return nil, imapOpenError(c, dctx, "connect", err)
	}
	stop := context.AfterFunc(dctx, func() { raw.Close() })
	fail := func(stage string, err error) (*imapDialed, error) {
		stop()
		raw.Close()
		defer cancel()
		return nil, imapOpenError(c, dctx, stage, err)
	}
	// A socket deadline as well as the watcher: reads then fail with os.ErrDeadlineExceeded,
	// which tells a silent server apart from a closed connection. go-imap sets its own read
	// and write deadlines, so it is cleared before go-imap takes over.
	deadline, _ := dctx.Deadline()
	if err := raw.SetDeadline(deadline); err != nil {
		return fail("connect", err)
	}

	conn := &imapConn{Conn: raw, fixSASL: true, tcp: raw, stall: imapStall{timeout: c.Timeout}, guard: imapGuard{maxLine: c.imapMaxLine}}
	stage := "read greeting"
	switch c.Security {
	case SecurityTLS:
		tcfg := cfg.Clone()
		tcfg.NextProtos = []string{"imap"}
		tc := tls.Client(raw, tcfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			return fail("tls handshake", err)
		}
		conn.Conn = tc
	case SecuritySTARTTLS:
		tc, err := imapStartTLS(dctx, raw, cfg)
		if err != nil {
			return fail("starttls", err)
		}
		conn.Conn = tc
		// go-imap's client reads a greeting before anything else, and a server sends none
		// after STARTTLS: this one stands in for it. It carries no CAPABILITY code, so
		// go-imap asks for the capabilities again, now over TLS (RFC 9051 section 6.2.1).
		conn.r = io.MultiReader(strings.NewReader("* OK TLS established\r\n"), tc)
		stage = "after starttls"
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return fail(stage, err)
	}
	_, isTLS := conn.Conn.(*tls.Conn)
	client := imapclient.New(conn, c.IMAPOptions)
	if err := client.WaitGreeting(); err != nil {
		client.Close()
		return fail(stage, err)
	}
	return &imapDialed{c: c, client: client, conn: conn, tls: isTLS, ctx: dctx, cancel: cancel, stopWatch: stop}, nil
}

// imapStartTLS reads the plaintext greeting, checks that STARTTLS is offered, sends it and
// does the TLS handshake.
func imapStartTLS(ctx context.Context, raw net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	br := bufio.NewReaderSize(raw, imapMaxLine)
	greeting, err := imapReadLine(br)
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	word, rest := imapUntagged(greeting)
	switch word {
	case "OK":
	case "PREAUTH":
		return nil, errors.New("the server sent PREAUTH before TLS: refusing a session that cannot be protected with STARTTLS (RFC 9051 section 7.1.4)")
	case "BYE":
		return nil, fmt.Errorf("the server refused the connection: %s", imapClip(rest))
	default:
		return nil, fmt.Errorf("unexpected greeting %q", imapClip(greeting))
	}
	caps, ok := imapCapsCode(rest)
	if !ok {
		caps = map[string]bool{}
		lines, err := imapCommandRaw(raw, br, "mw0", "CAPABILITY")
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			if w, r := imapUntagged(l); w == "CAPABILITY" {
				for _, f := range strings.Fields(r) {
					caps[strings.ToUpper(f)] = true
				}
			}
		}
	}
	if !caps["STARTTLS"] {
		return nil, fmt.Errorf("%w; not continuing without TLS: use security tls on the server's TLS port (usually 993), or none only for a local test server", ErrNoSTARTTLS)
	}
	if _, err := imapCommandRaw(raw, br, "mw1", "STARTTLS"); err != nil {
		return nil, err
	}
	if br.Buffered() > 0 {
		return nil, errors.New("the server sent data after its STARTTLS answer, before the TLS handshake: refusing (possible plaintext injection)")
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// imapCommandRaw sends "tag cmd" and reads up to the tagged answer, which must be OK. It
// returns the untagged lines.
func imapCommandRaw(w io.Writer, br *bufio.Reader, tag, cmd string) ([]string, error) {
	if _, err := io.WriteString(w, tag+" "+cmd+"\r\n"); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	var lines []string
	for {
		l, err := imapReadLine(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		if status, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(strings.ToUpper(status), "OK") {
				return nil, fmt.Errorf("the server answered %s with %q", cmd, imapClip(status))
			}
			return lines, nil
		}
		if len(lines) > 100 {
			return nil, fmt.Errorf("%s: answer too long", cmd)
		}
		lines = append(lines, l)
	}
}

// imapReadLine reads one line of at most imapMaxLine bytes, without its CRLF.
func imapReadLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("line longer than %d bytes", imapMaxLine)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// imapUntagged splits "* WORD rest" into the upper-case WORD and rest; word is "" when line
// is not untagged.
func imapUntagged(line string) (word, rest string) {
	l, ok := strings.CutPrefix(line, "* ")
	if !ok {
		return "", ""
	}
	word, rest, _ = strings.Cut(l, " ")
	return strings.ToUpper(word), rest
}

// imapCapsCode reads a "[CAPABILITY ...]" response code at the start of resp-text.
func imapCapsCode(text string) (map[string]bool, bool) {
	code, ok := strings.CutPrefix(text, "[")
	if !ok {
		return nil, false
	}
	code, _, ok = strings.Cut(code, "]")
	fields := strings.Fields(code)
	if !ok || len(fields) == 0 || !strings.EqualFold(fields[0], "CAPABILITY") {
		return nil, false
	}
	caps := map[string]bool{}
	for _, f := range fields[1:] {
		caps[strings.ToUpper(f)] = true
	}
	return caps, true
}

// imapClip shortens a server line for an error message.
func imapClip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// imapOpenError explains a failed opening step: "imap open host:port: <stage>: <error>: <advice>".
func imapOpenError(c ConnConfig, ctx context.Context, stage string, err error) error {
	addr := c.Addr()
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.Canceled) {
			return fmt.Errorf("imap open %s: %s: cancelled: %w", addr, stage, cerr)
		}
		hint := securityHint(c.Security, os.ErrDeadlineExceeded)
		if hint == "" && c.Security == SecurityNone && stage == "read greeting" {
			hint = " (no plaintext greeting: if this port expects TLS from the first byte, use security tls)"
		}
		return fmt.Errorf("imap open %s: %s: no answer within %s%s: check \"Host\", \"Port\" and \"Security\", or raise \"Timeout\": %w", addr, stage, c.Timeout, hint, context.DeadlineExceeded)
	}
	var (
		hostErr x509.HostnameError
		unkErr  x509.UnknownAuthorityError
		cvErr   *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		imapErr *imap.Error
	)
	advice := ""
	switch {
	case errors.Is(err, ErrNoSTARTTLS):
		return fmt.Errorf("imap open %s: %w", addr, err)
	case errors.As(err, &hostErr):
		advice = fmt.Sprintf("the server's certificate is not valid for %q: set \"Host\" to a name the certificate lists", c.Host)
	case errors.As(err, &unkErr) || errors.As(err, &cvErr):
		if c.CAFile == "" {
			advice = "the server's certificate is not signed by an authority this computer trusts: set \"CA certificate file\" to the PEM file of the CA that signed it"
		} else {
			advice = fmt.Sprintf("the server's certificate is not signed by the CA in %s: check \"CA certificate file\"", c.CAFile)
		}
	case errors.As(err, &recErr):
		advice = strings.TrimSuffix(strings.TrimPrefix(securityHint(c.Security, err), " ("), ")")
	case errors.As(err, &imapErr) && imapErr.Type == imap.StatusResponseTypeBye:
		advice = "the server refused the connection"
	case stage == "connect":
		advice = "check \"Host\" and \"Port\" and that the server is running"
	default:
		if h := securityHint(c.Security, err); h != "" {
			advice = strings.TrimSuffix(strings.TrimPrefix(h, " ("), ")")
		}
	}
	if advice == "" {
		return fmt.Errorf("imap open %s: %s: %w", addr, stage, err)
	}
	return fmt.Errorf("imap open %s: %s: %w: %s", addr, stage, err, advice)
}
