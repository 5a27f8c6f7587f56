package actions

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"golang.org/x/oauth2"
)

// TokenProvider gives actions the access tokens of OAuth parameter sets. The run gets one
// from NewTokenProvider (an oauthparams.TokenManager over the store); tests may use it too.
type TokenProvider interface {
	// Token returns a valid access token of the set, refreshing silently when needed.
	Token(ctx context.Context, set string) (*oauth2.Token, error)
	// ForceRefresh gets a new access token although rejected (the one a server refused)
	// has not expired.
	ForceRefresh(ctx context.Context, set, rejected string) (*oauth2.Token, error)
	// Account returns the set's Client Account, the default SASL user.
	Account(set string) (string, error)
}

// The authentication methods of a connection.
const (
	AuthOAuth    = "oauth"    // an OAuth parameter set (XOAUTH2 or OAUTHBEARER)
	AuthPassword = "password" // user and password (PLAIN, or LOGIN)
	AuthNone     = "none"     // no login (SMTP relays only)
)

// Password SASL mechanism names offered by the "mechanism" parameter (the OAuth ones are
// MechXOAuth2 and MechOAuthBearer).
const (
	MechPlain = "PLAIN"
	MechLogin = "LOGIN"
)

// DefaultTimeout bounds connecting and each command when a step sets no timeout.
const DefaultTimeout = 30 * time.Second

// ConnParams returns the connection and authentication parameters shared by IMAP Open,
// POP3 Open, SMTP Send Email and Check for Email, for protocol "imap", "pop3" or "smtp".
// allowNoAuth adds "none" to the auth choices (SMTP relays).
func ConnParams(protocol string, allowNoAuth bool) []Param {
	port := map[string]string{"imap": "993", "pop3": "995", "smtp": "465"}[protocol]
	auths := []string{AuthOAuth, AuthPassword}
	if allowNoAuth {
		auths = append(auths, AuthNone)
	}
	return []Param{
		{Name: "host", Label: "Host", Kind: KindText, Required: true, Help: "Server host name, e.g. imap.gmail.com."},
		{Name: "port", Label: "Port", Kind: KindNumber, Default: port, Help: "Server port: " + defaultPortsHelp(protocol) + "."},
		{Name: "security", Label: "Security", Kind: KindEnum, Default: string(SecurityTLS), Choices: []string{string(SecurityTLS), string(SecuritySTARTTLS), string(SecurityNone)},
			Help: "tls: TLS from the first byte; starttls: upgrade a plain connection and fail if the server cannot; none: no encryption (local test servers only)."},
		{Name: "auth", Label: "Authentication", Kind: KindEnum, Default: AuthOAuth, Choices: auths,
			Help: "oauth: sign in with an OAuth parameter set; password: user name and password (or app password)" + map[bool]string{true: "; none: no login (relays)", false: ""}[allowNoAuth] + "."},
		{Name: "param_set", Label: "OAuth parameter set", Kind: KindParamSet, Help: "The OAuth parameter set whose token is used (auth = oauth)."},
		{Name: "user", Label: "User", Kind: KindText, Help: "Login name. With OAuth, empty means the parameter set's Client Account."},
		{Name: "password", Label: "Password", Kind: KindSecret, Help: "Password or app password (auth = password). Never logged."},
		{Name: "mechanism", Label: "SASL mechanism", Kind: KindEnum, Choices: []string{"", MechXOAuth2, MechOAuthBearer, MechPlain, MechLogin}, Advanced: true,
			Help: "Empty: XOAUTH2 for OAuth, PLAIN for passwords. OAUTHBEARER (RFC 7628) or LOGIN when the server needs them."},
		{Name: "ca_file", Label: "CA certificate file", Kind: KindFile, Advanced: true, Help: "PEM file of the certificate authority that signed the server's certificate; empty means the system roots."},
		{Name: "timeout", Label: "Timeout", Kind: KindDuration, Default: "30s", Advanced: true, Help: "Limit for connecting, TLS and logging in, and how long a step waits for a server that sends nothing before it fails."},
		{Name: "allow_insecure_auth", Label: "Allow login without TLS", Kind: KindBool, Default: "false", Advanced: true,
			Help: "With security none, sending a password or token needs this set to true. Never needed with tls or starttls."},
	}
}

func defaultPortsHelp(protocol string) string {
	switch protocol {
	case "imap":
		return "993 for tls, 143 for starttls"
	case "pop3":
		return "995 for tls, 110 for starttls"
	default:
		return "465 for tls, 587 for starttls, 25 for relays"
	}
}

// ConnConfig is a parsed set of ConnParams.
type ConnConfig struct {
	Protocol          string
	Host              string
	Port              int
	Security          Security
	Auth              string
	ParamSet          string
	User              string
	Password          string
	Mech              string
	CAFile            string
	Timeout           time.Duration
	AllowInsecureAuth bool
	// IMAPOptions, when set, are the go-imap client options of IMAP connections (the
	// new-mail trigger uses them to hear EXISTS during IDLE). Not a step parameter.
	IMAPOptions *imapclient.Options
	// imapMaxLine, when above 0, replaces imapMaxResponseLine (tests only).
	imapMaxLine int64
}

// ParseConn reads ConnParams from v and checks that they fit together (a parameter set
// for oauth, a user and password for password, allow_insecure_auth for a login without
// TLS). Errors name the parameter to fix.
func ParseConn(protocol string, v Values) (ConnConfig, error) {
	c := ConnConfig{
		Protocol:          protocol,
		Host:              strings.TrimSpace(v.String("host")),
		Port:              int(v.Int("port")),
		Security:          Security(v.String("security")),
		Auth:              v.String("auth"),
		ParamSet:          strings.TrimSpace(v.String("param_set")),
		User:              strings.TrimSpace(v.String("user")),
		Password:          v.String("password"),
		Mech:              strings.ToUpper(v.String("mechanism")),
		CAFile:            v.String("ca_file"),
		Timeout:           v.Duration("timeout"),
		AllowInsecureAuth: v.Bool("allow_insecure_auth"),
	}
	if c.Security == "" {
		c.Security = SecurityTLS
	}
	if c.Auth == "" {
		c.Auth = AuthOAuth
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	var problems []string
	if c.Host == "" {
		problems = append(problems, `"Host" is required`)
	}
	if c.Port <= 0 || c.Port > 65535 {
		problems = append(problems, fmt.Sprintf(`"Port" %d is not a TCP port (1-65535)`, c.Port))
	}
	switch c.Auth {
	case AuthOAuth:
		if c.ParamSet == "" {
			problems = append(problems, `"OAuth parameter set" is required when authentication is oauth`)
		}
		if c.Mech == "" {
			c.Mech = MechXOAuth2
		}
		if c.Mech != MechXOAuth2 && c.Mech != MechOAuthBearer {
			problems = append(problems, fmt.Sprintf(`"SASL mechanism" %s does not carry an OAuth token: use XOAUTH2 or OAUTHBEARER`, c.Mech))
		}
	case AuthPassword:
		if c.User == "" {
			problems = append(problems, `"User" is required when authentication is password`)
		}
		if c.Password == "" {
			problems = append(problems, `"Password" is required when authentication is password`)
		}
		if c.Mech == "" {
			c.Mech = MechPlain
		}
		if c.Mech != MechPlain && c.Mech != MechLogin {
			problems = append(problems, fmt.Sprintf(`"SASL mechanism" %s needs a token: use PLAIN or LOGIN with a password`, c.Mech))
		}
	}
	if c.Security == SecurityNone && c.Auth != AuthNone && !c.AllowInsecureAuth {
		problems = append(problems, fmt.Sprintf(`security is none, so the %s would cross the network unencrypted: choose tls or starttls, or set "Allow login without TLS" to true`, map[bool]string{true: "token", false: "password"}[c.Auth == AuthOAuth]))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%s connection settings: %s", strings.ToUpper(protocol), strings.Join(problems, "; "))
	}
	return c, nil
}

// Addr is host:port.
func (c ConnConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// TLSConfig returns the TLS client configuration: ServerName Host, and the CA file's
// certificates as the only roots when one is set.
func (c ConnConfig) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12}
	if c.CAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate file (parameter \"CA certificate file\"): %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA certificate file %s holds no PEM certificate: give the server's CA certificate in PEM form", c.CAFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// Login authenticates over an open connection. try performs one login attempt with the
// given SASL client (the protocol's AUTHENTICATE / AUTH, or LOGIN for IMAP passwords when
// the client is PLAIN and the caller prefers it). With OAuth, a login the server rejects
// gets exactly one more attempt after a forced token refresh; the error then names the
// server, the account and the server's failure challenge, never the token.
func (c ConnConfig) Login(ctx context.Context, tokens TokenProvider, try func(sasl.Client) error) error {
	server := fmt.Sprintf("%s login to %s", c.Protocol, c.Addr())
	switch c.Auth {
	case AuthNone:
		return nil
	case AuthPassword:
		var cl sasl.Client
		if c.Mech == MechLogin {
			cl = newLoginClient(c.User, c.Password)
		} else {
			cl = sasl.NewPlainClient("", c.User, c.Password)
		}
		if err := try(cl); err != nil {
			return fmt.Errorf("%s as %s failed: %s (check the user and password; many providers need an app password)", server, c.User, scrub(err.Error(), c.Password))
		}
		return nil
	}
	if tokens == nil {
		return fmt.Errorf("%s: no OAuth parameter sets are available to this run", server)
	}
	user := c.User
	if user == "" {
		acct, err := tokens.Account(c.ParamSet)
		if err != nil {
			return fmt.Errorf("%s: %w", server, err)
		}
		if acct == "" {
			return fmt.Errorf("%s: parameter set %q has no Client Account: fill it in, or set \"User\" on this step", server, c.ParamSet)
		}
		user = acct
	}
	tok, err := tokens.Token(ctx, c.ParamSet)
	if err != nil {
		return fmt.Errorf("%s: access token of parameter set %q: %w", server, c.ParamSet, err)
	}
	mech := func(access string) sasl.Client {
		if c.Mech == MechOAuthBearer {
			return NewOAuthBearerClient(user, access, c.Host, c.Port)
		}
		return NewXOAuth2Client(user, access)
	}
	cl := mech(tok.AccessToken)
	lerr := OAuthLoginError(server, try(cl), cl)
	var rej *OAuthRejectedError
	if lerr == nil || !errors.As(lerr, &rej) || !rej.Rejected {
		return lerr
	}
	tok2, err := tokens.ForceRefresh(ctx, c.ParamSet, tok.AccessToken)
	if err != nil {
		return fmt.Errorf("%w; refreshing the token of parameter set %q failed too: %w", lerr, c.ParamSet, err)
	}
	cl = mech(tok2.AccessToken)
	return OAuthLoginError(server, try(cl), cl)
}

// scrub hides secret in s.
func scrub(s, secret string) string {
	if len(secret) >= 3 {
		s = strings.ReplaceAll(s, secret, "[hidden]")
	}
	return s
}

// loginClient is the SASL LOGIN mechanism (draft-murchison-sasl-login), which go-sasl's
// client side lacks.
type loginClient struct {
	user, pass string
	step       int
}

func newLoginClient(user, pass string) sasl.Client { return &loginClient{user: user, pass: pass} }

func (c *loginClient) Start() (string, []byte, error) { return MechLogin, nil, nil }

func (c *loginClient) Next(challenge []byte) ([]byte, error) {
	c.step++
	switch c.step {
	case 1:
		return []byte(c.user), nil
	case 2:
		return []byte(c.pass), nil
	}
	return nil, errors.New("LOGIN: unexpected server challenge")
}
