package actions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// OpenIMAP connects with DialIMAP and logs in with c.Login, so that an OAuth token the
// server refuses gets exactly one more attempt after a forced refresh:
//
//   - OAuth: AUTHENTICATE XOAUTH2 or OAUTHBEARER (c.Mech).
//   - Password with PLAIN: AUTHENTICATE PLAIN when the server offers AUTH=PLAIN, else the
//     LOGIN command unless the server announces LOGINDISABLED. With LOGIN (the SASL
//     mechanism): AUTHENTICATE LOGIN when offered, else the LOGIN command likewise.
//
// It refuses to send a password or token over a connection without TLS unless
// c.AllowInsecureAuth is set, whatever ParseConn checked before. Connecting, TLS, the
// greeting and the login together are bounded by c.Timeout and by ctx; afterwards ctx no
// longer applies (see IMAPSession.Watch). Errors read "imap open host:port: ..." and never
// hold the password or token.
func OpenIMAP(ctx context.Context, c ConnConfig, tokens TokenProvider) (*imapclient.Client, error) {
	return imapOpen(ctx, c, tokens, true)
}

// imapOpen is OpenIMAP; fixSASL false leaves go-imap's SASL bug in place (tests only).
func imapOpen(ctx context.Context, c ConnConfig, tokens TokenProvider, fixSASL bool) (*imapclient.Client, error) {
	client, _, err := imapOpenConn(ctx, c, tokens, fixSASL)
	return client, err
}

// imapOpenConn is imapOpen; it also returns the connection go-imap talks over.
func imapOpenConn(ctx context.Context, c ConnConfig, tokens TokenProvider, fixSASL bool) (*imapclient.Client, *imapConn, error) {
	d, err := imapDial(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	c = d.c // with the defaults imapDial applied
	d.conn.mu.Lock()
	d.conn.fixSASL = fixSASL
	d.conn.mu.Unlock()
	addr := c.Addr()
	fail := func(err error) (*imapclient.Client, *imapConn, error) {
		d.abort()
		return nil, nil, err
	}
	if c.Auth != AuthNone && !d.tls && !c.AllowInsecureAuth {
		what := map[bool]string{true: "token", false: "password"}[c.Auth == AuthOAuth]
		return fail(fmt.Errorf("imap open %s: login: the connection is not encrypted, so the %s would cross the network in clear text: choose security tls or starttls, or set \"Allow login without TLS\" to true (local test servers only)", addr, what))
	}
	// A connection that ended before the login (the server hung up after its greeting, or
	// imapGuard refused its data) is no session, although no command failed.
	if c.Auth != AuthNone && d.client.State() == imap.ConnStateLogout {
		lost := d.conn.refused()
		if lost == nil {
			lost = errors.New("the server closed the connection before the login")
		}
		return fail(imapOpenError(c, d.ctx, "login", lost))
	}
	if c.Auth != AuthNone && d.client.State() == imap.ConnStateNotAuthenticated {
		caps := d.client.Caps()
		var last error // the last attempt's own error, before Login words it for the user
		err := c.Login(d.ctx, tokens, func(cl sasl.Client) error { last = d.login(caps, cl); return last })
		if err != nil {
			if d.ctx.Err() != nil {
				return fail(imapOpenError(c, d.ctx, "login", err))
			}
			if lost := d.lost(last); last != nil && lost != nil {
				return fail(imapOpenError(c, d.ctx, "login", lost)) // not a wrong password
			}
			return fail(fmt.Errorf("imap open %s: %w%s", addr, err, imapMechHint(c, caps)))
		}
	}
	if err := d.finish(); err != nil {
		return nil, nil, err
	}
	return d.client, d.conn, nil
}

// lost explains a login attempt that failed because the connection ended (imapGuard's
// refusal, or the server hanging up) rather than because the server said no; nil when it
// did not, or when no attempt was made (attempt is nil: getting the token failed).
func (d *imapDialed) lost(attempt error) error {
	if attempt == nil {
		return nil
	}
	if err := d.conn.refused(); err != nil {
		return err
	}
	if errors.Is(attempt, io.ErrUnexpectedEOF) || errors.Is(attempt, io.EOF) || errors.Is(attempt, net.ErrClosed) {
		return fmt.Errorf("the server closed the connection during the login: %w", attempt)
	}
	return nil
}

// imapMech is the SASL mechanism c logs in with.
func imapMech(c ConnConfig) string {
	switch {
	case c.Mech != "":
		return c.Mech
	case c.Auth == AuthOAuth:
		return MechXOAuth2
	default:
		return MechPlain
	}
}

// login is one login attempt with cl (see OpenIMAP for the choice of command).
func (d *imapDialed) login(caps imap.CapSet, cl sasl.Client) error {
	mech := imapMech(d.c)
	if d.c.Auth == AuthPassword && !caps.Has(imap.AuthCap(mech)) {
		if caps.Has(imap.CapLoginDisabled) {
			return fmt.Errorf("the server offers neither AUTH=%s nor the LOGIN command (it offers %s): choose another \"SASL mechanism\"", mech, imapAuthList(caps))
		}
		return d.client.Login(d.c.User, d.c.Password).Wait()
	}
	return d.client.Authenticate(imapSASLFix{Client: cl, conn: d.conn})
}

// imapMechHint adds advice to a failed OAuth login when the server did not announce the
// mechanism (it was tried anyway: some servers accept more than they list).
func imapMechHint(c ConnConfig, caps imap.CapSet) string {
	mech := imapMech(c)
	if c.Auth != AuthOAuth || caps == nil || caps.Has(imap.AuthCap(mech)) {
		return ""
	}
	return fmt.Sprintf(" (the server does not announce AUTH=%s; it offers %s: check \"SASL mechanism\" and the server's OAuth support)", mech, imapAuthList(caps))
}

// imapAuthList lists the AUTH= mechanisms of caps, sorted.
func imapAuthList(caps imap.CapSet) string {
	mechs := caps.AuthMechanisms()
	if len(mechs) == 0 {
		return "no SASL mechanism"
	}
	slices.Sort(mechs)
	return strings.Join(mechs, ", ")
}

// imapCapList returns caps as one space-separated, sorted line.
func imapCapList(caps imap.CapSet) string {
	l := make([]string, 0, len(caps))
	for c := range caps {
		l = append(l, string(c))
	}
	slices.Sort(l)
	return strings.Join(l, " ")
}

// IMAPOpen is the "IMAP Open" action: it connects and logs in, and keeps the connection in
// the run under a name for the other IMAP steps.
type IMAPOpen struct{}

// NewIMAPOpen returns the IMAP Open action.
func NewIMAPOpen() Action { return IMAPOpen{} }

// Schema implements Action.
func (IMAPOpen) Schema() Schema {
	return Schema{
		ID:    "imap.open",
		Title: "IMAP Open",
		Group: "IMAP",
		Help: "Connects to an IMAP server and signs in, with an OAuth parameter set (XOAUTH2 or OAUTHBEARER) or a password. " +
			"The connection stays open under its connection name for the following IMAP steps until an IMAP Close step or the end of the run; " +
			"opening a second connection with the same name closes the first. A token the server refuses is refreshed once and the login retried.",
		Params:   append([]Param{ConnectionParam("imap")}, ConnParams("imap", false)...),
		Outputs:  []Output{{Name: "IMAPCapabilities", Help: "The server's capabilities after login, space-separated (e.g. IMAP4rev1 IDLE MOVE ...)."}},
		Sessions: "imap",
	}
}

// Run implements Action.
func (IMAPOpen) Run(ctx context.Context, env *Env) error {
	c, err := ParseConn("imap", env.Params)
	if err != nil {
		return err
	}
	name := env.Params.String("connection")
	if name == "" {
		name = DefaultIMAPConnection
	}
	s, err := imapOpenSession(ctx, name, c, env.Tokens, imapStallDefaultAdvice)
	if err != nil {
		return err
	}
	s.Account = imapOpenUser(c, env.Tokens)
	stop := s.Watch(ctx)
	caps := s.Client.Caps() // go-imap asks again after login; bounded by ctx and the stall guard through Watch
	stop()
	err = s.stallErr()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		s.Close()
		return fmt.Errorf("imap open %s: %w", c.Addr(), err)
	}
	env.Sessions.Put(name, s, env.Logger())
	env.SetVar("IMAPCapabilities", imapCapList(caps))
	env.Logger().Info(fmt.Sprintf("connected to %s as %s (%s)", c.Addr(), imapOpenUser(c, env.Tokens), imapMech(c)), "connection", name)
	return nil
}

// imapOpenUser is the account c logs in as, for the log.
func imapOpenUser(c ConnConfig, tokens TokenProvider) string {
	if c.User != "" || c.Auth != AuthOAuth || tokens == nil {
		return c.User
	}
	acct, err := tokens.Account(c.ParamSet)
	if err != nil {
		return "(account of " + c.ParamSet + ")"
	}
	return acct
}

// imapConn is the connection go-imap's client talks over: above TLS, so it sees the IMAP
// protocol in clear. It replays a greeting after STARTTLS (r) and works around a go-imap
// bug in SASL responses (fixSASL).
//
// go-imap v2.0.0-beta.8 sends an empty SASL response as "=" (imapclient/authenticate.go,
// writeSASLResp, upstream issue emersion/go-imap#760), but "=" means an empty response only
// for an initial response (RFC 4959); inside an AUTHENTICATE exchange an empty response is
// an empty line (RFC 9051 section 6.2.2). XOAUTH2 answers the server's failure challenge
// with an empty response, so Dovecot ends the exchange with BAD instead of
// NO [AUTHENTICATIONFAILED]. imapSASLFix arms expectEmpty when our SASL client returned an
// empty response; the next write is then go-imap's "=\r\n" for exactly that response, and
// only that write is rewritten to "\r\n". Remove this once go-imap is fixed.
//
// Everything the server sends also passes imapGuard, which refuses the input go-imap
// cannot survive (see there).
type imapConn struct {
	net.Conn
	r io.Reader // when set, reads come from r (a replayed greeting, then Conn)

	mu          sync.Mutex
	fixSASL     bool // apply the workaround (tests turn it off to show the bug)
	expectEmpty bool // the next write is the encoding of an empty SASL response

	guard    imapGuard // used by Read only (go-imap's one reader goroutine)
	guardErr error     // sticky, under mu: why the server's data was refused

	tcp   net.Conn  // the TCP socket under TLS (the stall guard closes it); nil in tests
	stall imapStall // fails a silent server while a step waits (see imapStall)
}

// refused returns why imapGuard refused the server's data, or nil.
func (c *imapConn) refused() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.guardErr
}

// Read implements net.Conn.
func (c *imapConn) Read(b []byte) (int, error) {
	if err := c.refused(); err != nil {
		return 0, err
	}
	if err := c.stallReadBegin(); err != nil {
		return 0, err
	}
	var n int
	var err error
	if c.r != nil {
		n, err = c.r.Read(b)
	} else {
		n, err = c.Conn.Read(b)
	}
	if serr := c.stallReadEnd(); serr != nil && err != nil {
		err = serr // the guard closed the connection: say why
	}
	safe, gerr := c.guard.scan(b[:n])
	if gerr != nil {
		// Only the bytes before the offending one are handed on: go-imap must never see it.
		c.mu.Lock()
		c.guardErr = gerr
		c.mu.Unlock()
		c.Conn.Close()
		if safe > 0 {
			return safe, nil
		}
		return 0, gerr
	}
	return n, err
}

// imapGuardSize shows a line limit: "128 MiB", or "1000 bytes" below a MiB.
func imapGuardSize(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// imapMaxResponseLine bounds one line of server responses outside literals: go-imap keeps
// a whole line in memory, so a server that never ends a line would exhaust it. The
// longest legitimate lines are SEARCH results (10 million UIDs: about 80 MB).
const imapMaxResponseLine int64 = 128 << 20

// imapGuard follows the server's responses (lines, and literals it skips by their
// announced length) and refuses what go-imap v2.0.0-beta.8 cannot survive:
//
//   - a "(" inside a CAPABILITY list ("* CAPABILITY IMAP4rev1 (" or "[CAPABILITY a (]"):
//     its readCapabilities loops forever on it (imapwire.Decoder.SP returns true without
//     reading when the next byte is "("), at full CPU, and Client.Close then waits for
//     that loop forever, so no timeout or cancel could end the step;
//   - a line longer than imapMaxResponseLine, which go-imap would collect in memory.
type imapGuard struct {
	maxLine int64 // imapMaxResponseLine when 0
	literal int64 // bytes of a literal still to come
	lineLen int64
	head    [12]byte // the first bytes of the line
	tail    [32]byte // ring of the last bytes of the line
	tpos    int      // bytes written to tail so far (position mod 32)
	inCaps  bool     // inside a CAPABILITY list
}

// scan checks the next bytes from the server. On refusal it returns how many leading
// bytes of b are safe to pass on, and the error.
func (g *imapGuard) scan(b []byte) (int, error) {
	for i := 0; i < len(b); i++ {
		if g.literal > 0 {
			skip := min(g.literal, int64(len(b)-i))
			g.literal -= skip
			i += int(skip) - 1
			continue
		}
		c := b[i]
		if g.lineLen < int64(len(g.head)) {
			g.head[g.lineLen] = c
		}
		g.lineLen++
		g.tail[g.tpos%len(g.tail)] = c
		g.tpos++
		if limit := cmp.Or(g.maxLine, imapMaxResponseLine); g.lineLen > limit {
			return i, fmt.Errorf("the server sent a response line longer than %s: refusing it", imapGuardSize(limit))
		}
		switch {
		case c == '\n':
			g.endLine()
		case g.inCaps && c == ']':
			g.inCaps = false
		case g.inCaps && c == '(':
			return i, errors.New("the server sent a malformed CAPABILITY list (with \"(\"), which the IMAP library cannot read: refusing the connection")
		case !g.inCaps && (c == 'Y' || c == 'y'):
			g.inCaps = g.endsWithFold("[CAPABILITY") ||
				g.lineLen == 12 && strings.EqualFold(string(g.head[:]), "* CAPABILITY")
		}
	}
	return len(b), nil
}

// endsWithFold reports whether the line so far ends with the ASCII text s (at most 32
// bytes), ignoring case.
func (g *imapGuard) endsWithFold(s string) bool {
	if len(s) > g.tpos || len(s) > len(g.tail) {
		return false
	}
	for k := 0; k < len(s); k++ {
		c := g.tail[(g.tpos-len(s)+k)%len(g.tail)]
		if c|0x20 != s[k]|0x20 {
			return false
		}
	}
	return true
}

// last returns the last n (at most 32) bytes of the line.
func (g *imapGuard) last(n int) string {
	n = min(n, g.tpos, len(g.tail))
	out := make([]byte, n)
	for k := range n {
		out[k] = g.tail[(g.tpos-n+k)%len(g.tail)]
	}
	return string(out)
}

// endLine ends a line; when it announced a literal ("{123}" or "{123+}" before CRLF), the
// literal's bytes are skipped.
func (g *imapGuard) endLine() {
	l := strings.TrimSuffix(strings.TrimSuffix(g.last(len(g.tail)), "\n"), "\r")
	if open := strings.LastIndexByte(l, '{'); open >= 0 && strings.HasSuffix(l, "}") {
		num := strings.TrimSuffix(l[open+1:len(l)-1], "+")
		if n, err := strconv.ParseInt(num, 10, 64); err == nil && n >= 0 {
			g.literal = n
		}
	}
	g.lineLen, g.tpos, g.inCaps = 0, 0, false
}

// Write implements net.Conn.
func (c *imapConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	rewrite := c.expectEmpty && c.fixSASL && string(b) == "=\r\n"
	c.expectEmpty = false
	c.mu.Unlock()
	if rewrite {
		if _, err := c.Conn.Write([]byte("\r\n")); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// armEmptySASLResponse says that the next write encodes an empty SASL response.
func (c *imapConn) armEmptySASLResponse() {
	c.mu.Lock()
	c.expectEmpty = true
	c.mu.Unlock()
}

// imapSASLFix wraps the SASL client given to imapclient.Client.Authenticate: when the
// client answers a challenge with an empty response it tells conn (see imapConn).
// Authenticate holds the client's command lock for the whole exchange, so nothing else is
// written between Next returning and go-imap writing the response.
type imapSASLFix struct {
	sasl.Client
	conn *imapConn
}

// Next implements sasl.Client.
func (f imapSASLFix) Next(challenge []byte) ([]byte, error) {
	resp, err := f.Client.Next(challenge)
	if err == nil && len(resp) == 0 {
		f.conn.armEmptySASLResponse()
	}
	return resp, err
}
