package actions

import (
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

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// ConnCheck describes one "Test Connection": a protocol, a server and an OAuth login.
type ConnCheck struct {
	Protocol  string      // "imap", "pop3" or "smtp"
	Host      string      // server host name or address
	Port      int         // server port
	Security  Security    // tls, starttls or none
	TLSConfig *tls.Config // nil: the system roots, ServerName Host
	User      string      // SASL user (the set's Client Account)
	Token     string      // access token
	Mech      string      // "XOAUTH2" (default) or "OAUTHBEARER"
	Timeout   time.Duration
}

// ConnStep is one step of a connection check and how it went.
type ConnStep struct {
	Name string // "connect", "tls", "login"
	Err  error  // nil when the step succeeded
}

// CheckConnection runs a connection check step by step — TCP connect, TLS (implicit or
// STARTTLS/STLS), OAuth login — and returns every step attempted, the failed one last. The
// returned error is that step's error, if any. It never sends the token over a connection
// without TLS.
func CheckConnection(ctx context.Context, cc ConnCheck) ([]ConnStep, error) {
	if cc.Timeout <= 0 {
		cc.Timeout = 30 * time.Second
	}
	if cc.Security == "" {
		cc.Security = SecurityTLS
	}
	ctx, cancel := context.WithTimeout(ctx, cc.Timeout)
	defer cancel()
	addr := net.JoinHostPort(cc.Host, strconv.Itoa(cc.Port))
	var steps []ConnStep
	step := func(name string, err error) error {
		steps = append(steps, ConnStep{Name: name, Err: err})
		return err
	}

	// A bare TCP connect first, closed again: the protocol clients below dial and secure in
	// one call, and a user needs to see "server unreachable" apart from "TLS failed".
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if step("connect", err) != nil {
		return steps, fmt.Errorf("%s %s: connect: %w", cc.Protocol, addr, err)
	}
	raw.Close()
	if cc.Security == SecurityNone {
		err := fmt.Errorf("security is none: an OAuth token is only sent over TLS; use tls or starttls")
		step("tls", err)
		return steps, fmt.Errorf("%s %s: %w", cc.Protocol, addr, err)
	}
	cfg := cc.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = cc.Host
	}
	login, closeConn, err := dialForCheck(ctx, cc, addr, cfg)
	if step("tls", err) != nil {
		return steps, fmt.Errorf("%s %s: tls: %w%s", cc.Protocol, addr, err, securityHint(cc.Security, err))
	}
	defer closeConn()
	mech := newMechanism(cc)
	err = OAuthLoginError(cc.Protocol+" login to "+addr, login(mech), mech)
	if step("login", err) != nil {
		return steps, err
	}
	return steps, nil
}

// dialForCheck opens a secured connection and returns the login function for it.
func dialForCheck(ctx context.Context, cc ConnCheck, addr string, cfg *tls.Config) (login func(sasl.Client) error, closeConn func(), err error) {
	dialer := &net.Dialer{Timeout: cc.Timeout}
	switch strings.ToLower(cc.Protocol) {
	case "imap":
		opts := &imapclient.Options{TLSConfig: cfg, Dialer: dialer}
		var c *imapclient.Client
		if cc.Security == SecurityTLS {
			c, err = imapclient.DialTLS(addr, opts)
		} else {
			c, err = imapclient.DialStartTLS(addr, opts)
		}
		if err != nil {
			return nil, nil, err
		}
		return c.Authenticate, func() { c.Logout().Wait(); c.Close() }, nil
	case "pop3":
		c, err := DialPOP3(ctx, POP3Dial{Host: cc.Host, Port: cc.Port, Security: cc.Security, TLSConfig: cfg, Timeout: cc.Timeout})
		if err != nil {
			return nil, nil, err
		}
		return func(m sasl.Client) error { return POP3Authenticate(c, m) }, func() { c.Quit() }, nil
	case "smtp":
		var c *smtp.Client
		if cc.Security == SecurityTLS {
			c, err = smtp.DialTLS(addr, cfg)
		} else {
			c, err = smtp.DialStartTLS(addr, cfg)
		}
		if err != nil {
			return nil, nil, err
		}
		return c.Auth, func() { c.Quit(); c.Close() }, nil
	}
	return nil, nil, errors.New("unknown protocol " + strconv.Quote(cc.Protocol) + " (want imap, pop3 or smtp)")
}

// securityHint suggests the other security mode when the failure looks like a mismatch:
// STARTTLS spoken to an implicit-TLS port (the server waits for a handshake: EOF or a
// timeout), or TLS spoken to a plaintext port.
func securityHint(sec Security, err error) string {
	var recErr tls.RecordHeaderError
	switch {
	case sec == SecuritySTARTTLS && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrDeadlineExceeded)):
		return " (no plaintext greeting: if this port expects TLS from the first byte, use security tls)"
	case sec == SecurityTLS && errors.As(err, &recErr):
		return " (the server did not answer with TLS: if this port starts in plaintext, use security starttls)"
	}
	return ""
}

func newMechanism(cc ConnCheck) sasl.Client {
	if strings.EqualFold(cc.Mech, "OAUTHBEARER") {
		return NewOAuthBearerClient(cc.User, cc.Token, cc.Host, cc.Port)
	}
	return NewXOAuth2Client(cc.User, cc.Token)
}
