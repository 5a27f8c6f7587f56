package actions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
)

// POP3Open is the "POP3 Open" action: it connects to a POP3 server, logs in and keeps the
// session under a connection name for the steps that follow.
type POP3Open struct{}

// NewPOP3Open returns the POP3 Open action.
func NewPOP3Open() Action { return POP3Open{} }

// Schema implements Action.
func (POP3Open) Schema() Schema {
	return Schema{
		ID:    "pop3.open",
		Title: "POP3 Open",
		Group: "POP3",
		Help: "Connects to a POP3 server (TLS, or STLS when security is starttls; never plaintext unless security is none) and logs in with OAuth or a password. " +
			"The connection stays open for the following POP3 steps until POP3 Close or the end of the run; messages deleted in it are removed from the server only then.",
		Params:   append([]Param{ConnectionParam("pop3")}, ConnParams("pop3", false)...),
		Sessions: "pop3",
	}
}

// Run implements Action.
func (POP3Open) Run(ctx context.Context, env *Env) error {
	name := env.Params.String("connection")
	if name == "" {
		name = DefaultPOP3Connection
	}
	cc, err := ParseConn("pop3", env.Params)
	if err != nil {
		return err
	}
	cfg, err := cc.TLSConfig()
	if err != nil {
		return err
	}
	log := env.Logger()
	c, err := DialPOP3(ctx, POP3Dial{Host: cc.Host, Port: cc.Port, Security: cc.Security, TLSConfig: cfg, Timeout: cc.Timeout})
	if err != nil {
		return fmt.Errorf("%w%s", err, pop3OpenHint(cc.Security, err))
	}
	s := NewPOP3Session(name, cc.Addr(), c)
	s.Account = imapOpenUser(cc, env.Tokens)
	stop := s.Watch(ctx)
	err = cc.Login(ctx, env.Tokens, pop3LoginFunc(c, cc))
	var count int
	if err == nil {
		c.caps = nil // capabilities may change after login (RFC 2449 section 5): ask again when needed
		count, _, err = c.Stat()
		if err != nil {
			err = fmt.Errorf("pop3 STAT on %s: %w", cc.Addr(), err)
		}
	}
	stop()
	if err != nil {
		c.Close()
		return pop3CtxErr(ctx, err)
	}
	env.Sessions.Put(name, s, log)
	log.Info("pop3 connection open", "connection", name, "server", cc.Addr(), "security", string(cc.Security), "auth", cc.Auth, "messages", count)
	return nil
}

// pop3LoginFunc returns the login attempt for ConnConfig.Login: SASL AUTH with the
// client it is given, except for a password with PLAIN on a server whose CAPA does not
// list SASL PLAIN, which gets USER/PASS (every POP3 server knows those).
//
// An OAuth mechanism the server's SASL line leaves out is refused before anything is sent
// (a server without a SASL line gets a try).
func pop3LoginFunc(c *POP3Client, cc ConnConfig) func(sasl.Client) error {
	mechs := c.SASLMechanisms()
	if cc.Auth == AuthPassword && cc.Mech == MechPlain && !slices.Contains(mechs, MechPlain) {
		return func(sasl.Client) error { return c.UserPass(cc.User, cc.Password) }
	}
	if cc.Auth == AuthOAuth && len(mechs) > 0 && !slices.Contains(mechs, cc.Mech) {
		return func(sasl.Client) error {
			return fmt.Errorf("the server does not offer SASL %s (it offers %s): check the host, or choose another \"SASL mechanism\"", cc.Mech, strings.Join(mechs, " "))
		}
	}
	return func(m sasl.Client) error { return POP3Authenticate(c, m) }
}

// pop3OpenHint suggests what to change when opening fails in a way that points at the
// security setting.
func pop3OpenHint(sec Security, err error) string {
	switch {
	case sec == SecuritySTARTTLS && errors.Is(err, ErrNoSTLS):
		return " (the server cannot switch to TLS on this port: use security tls, usually on port 995)"
	}
	return ""
}
