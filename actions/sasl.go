package actions

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SASL mechanism names of the OAuth 2.0 clients.
const (
	MechXOAuth2     = "XOAUTH2"
	MechOAuthBearer = "OAUTHBEARER"
)

// OAuthFailure is the error a server reports, as a SASL challenge, when it refuses an OAuth
// 2.0 access token: base64 JSON such as
// {"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"} (Google's XOAUTH2
// format, and RFC 7628 section 3.2.2 for OAUTHBEARER).
type OAuthFailure struct {
	Status  string // "401", "invalid_token", ...; numbers in the JSON are given in decimal
	Schemes string // the accepted schemes, usually "Bearer"
	Scope   string // the scope the server wants the token to carry, if it said
	Raw     string // the decoded challenge as received (never holds the token)
}

// OAuthSASLClient is a sasl.Client that remembers the failure challenge of the server.
// NewXOAuth2Client and NewOAuthBearerClient return one.
type OAuthSASLClient interface {
	sasl.Client
	// Failure returns the server's error challenge of the last exchange, or nil when the
	// server sent none.
	Failure() *OAuthFailure
	// User returns the account name the client authenticates as.
	User() string
}

// AuthFailure returns the failure challenge that c received during its last exchange. It
// reports false when c is not an OAuthSASLClient or the server sent no failure challenge.
func AuthFailure(c sasl.Client) (*OAuthFailure, bool) {
	oc, ok := c.(OAuthSASLClient)
	if !ok {
		return nil, false
	}
	f := oc.Failure()
	return f, f != nil
}

// oauthClient holds what XOAUTH2 and OAUTHBEARER share. Its String and GoString hide the
// token, so printing a client with %v or %#v never leaks it.
type oauthClient struct {
	mech  string
	user  string
	token string

	mu       sync.Mutex
	failure  *OAuthFailure
	answered bool // the error challenge was answered; a second challenge is a protocol error
}

func (c *oauthClient) User() string { return c.user }

func (c *oauthClient) Failure() *OAuthFailure {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failure == nil {
		return nil
	}
	f := *c.failure
	return &f
}

func (c *oauthClient) String() string {
	return fmt.Sprintf("%s client for %q (token hidden)", c.mech, c.user)
}

func (c *oauthClient) GoString() string { return c.String() }

// reset forgets the previous exchange; Start calls it so a client can be reused.
func (c *oauthClient) reset() {
	c.mu.Lock()
	c.failure = nil
	c.answered = false
	c.mu.Unlock()
}

// challenge records a server challenge and returns the response the mechanism gives to an
// error challenge (answer), or an error when the server challenges again after that.
func (c *oauthClient) challenge(challenge []byte, answer []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answered {
		return nil, fmt.Errorf("%s: unexpected second challenge from the server", c.mech)
	}
	c.answered = true
	c.failure = parseOAuthFailure(challenge)
	return answer, nil
}

// parseOAuthFailure decodes a failure challenge. A challenge that is not the expected JSON
// is still kept, in Raw.
func parseOAuthFailure(challenge []byte) *OAuthFailure {
	f := &OAuthFailure{Raw: string(challenge)}
	var fields map[string]any
	if err := json.Unmarshal(challenge, &fields); err != nil {
		return f
	}
	str := func(key string) string {
		switch v := fields[key].(type) {
		case string:
			return v
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return ""
		}
	}
	f.Status, f.Schemes, f.Scope = str("status"), str("schemes"), str("scope")
	return f
}

// xoauth2Client implements Google's and Microsoft's XOAUTH2 mechanism.
type xoauth2Client struct{ oauthClient }

// NewXOAuth2Client returns a client of the XOAUTH2 mechanism (Google, Microsoft), which
// go-sasl lacks. Its initial response is "user=<user>\x01auth=Bearer <token>\x01\x01". When
// the server refuses the token it sends a JSON error challenge; the client answers it with
// an empty response, as the mechanism requires, so that the server can finish with its
// NO/-ERR/535, and keeps the decoded challenge for AuthFailure and OAuthLoginError.
func NewXOAuth2Client(user, accessToken string) sasl.Client {
	return &xoauth2Client{oauthClient{mech: MechXOAuth2, user: user, token: accessToken}}
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	c.reset()
	return MechXOAuth2, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next answers the error challenge with an empty, non-nil response: go-smtp's client ends
// the exchange without answering when Next returns nil (client.go, "if resp == nil").
func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return c.challenge(challenge, []byte{})
}

// oauthBearerClient implements RFC 7628 OAUTHBEARER.
type oauthBearerClient struct {
	oauthClient
	host string
	port int
}

// NewOAuthBearerClient returns a client of the OAUTHBEARER mechanism (RFC 7628). Its
// initial response is the GS2 header "n,a=<user>," followed by
// "\x01host=<host>\x01port=<port>\x01auth=Bearer <token>\x01\x01" (host and port are left
// out when empty or 0). When the server refuses the token it sends a JSON error
// challenge; the client answers it with the single byte 0x01 (RFC 7628 section 3.2.3) and
// keeps the decoded challenge. go-sasl's own client returns an error instead of
// answering, which leaves the server waiting for a response line.
func NewOAuthBearerClient(user, accessToken, host string, port int) sasl.Client {
	return &oauthBearerClient{
		oauthClient: oauthClient{mech: MechOAuthBearer, user: user, token: accessToken},
		host:        host,
		port:        port,
	}
}

func (c *oauthBearerClient) Start() (string, []byte, error) {
	c.reset()
	var b strings.Builder
	b.WriteString("n,")
	if c.user != "" {
		b.WriteString("a=" + gs2SASLName(c.user))
	}
	b.WriteString(",")
	if c.host != "" {
		b.WriteString("\x01host=" + c.host)
	}
	if c.port != 0 {
		b.WriteString("\x01port=" + strconv.Itoa(c.port))
	}
	b.WriteString("\x01auth=Bearer " + c.token + "\x01\x01")
	return MechOAuthBearer, []byte(b.String()), nil
}

func (c *oauthBearerClient) Next(challenge []byte) ([]byte, error) {
	return c.challenge(challenge, []byte{0x01})
}

// gs2SASLName escapes a GS2 authzid (RFC 5801 section 4): "=" as "=3D" and "," as "=2C".
func gs2SASLName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// OAuthRejectedError is the error OAuthLoginError returns. Its text names the server, the
// account and, when the server sent one, its failure challenge; it never holds the token.
type OAuthRejectedError struct {
	Server   string        // what was attempted, e.g. "imap login to 127.0.0.1:143"
	User     string        // the account, when the SASL client knows it
	Mech     string        // the SASL mechanism
	Failure  *OAuthFailure // the server's failure challenge, if any
	Rejected bool          // the server refused the credentials (not a transport failure)
	Err      error         // the error of the login call
	token    string        // only to scrub it from Err's text
}

// Error implements error.
func (e *OAuthRejectedError) Error() string {
	var b strings.Builder
	b.WriteString(e.Server)
	if e.User != "" {
		b.WriteString(" as " + e.User)
	}
	if !e.Rejected && e.Failure == nil {
		b.WriteString(" failed: " + e.errText())
		return b.String()
	}
	b.WriteString(" rejected: token not accepted")
	var details []string
	if e.Failure != nil {
		if e.Failure.Status != "" {
			details = append(details, "status "+e.Failure.Status)
		}
		if e.Failure.Scope != "" {
			details = append(details, "scope needed: "+e.Failure.Scope)
		}
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	b.WriteString(`; sign in again with "Get Refresh Token"`)
	if e.Err != nil {
		b.WriteString(" [server said: " + e.errText() + "]")
	}
	return b.String()
}

// errText is Err's text with the token, should a server echo it, replaced.
func (e *OAuthRejectedError) errText() string {
	if e.Err == nil {
		return "unknown error"
	}
	s := e.Err.Error()
	if len(e.token) >= 4 {
		s = strings.ReplaceAll(s, e.token, "[token hidden]")
	}
	return s
}

// Unwrap returns the error of the login call.
func (e *OAuthRejectedError) Unwrap() error { return e.Err }

// OAuthLoginError turns the error of an OAuth login (imapclient.Authenticate, smtp
// Client.Auth, POP3Authenticate) into a clear one. server describes the attempt, such as
// "imap login to 127.0.0.1:143"; c is the SASL client used. It returns nil when err is nil,
// and otherwise an *OAuthRejectedError whose text reads like
//
//	imap login to 127.0.0.1:143 as alice@example.test rejected: token not accepted (status 401, scope needed: https://mail.google.com/); sign in again with "Get Refresh Token" [server said: ...]
//
// when the server refused the token, or "<server> as <user> failed: <err>" for other errors
// (a broken connection, say). The text never holds the access token.
func OAuthLoginError(server string, err error, c sasl.Client) error {
	if err == nil {
		return nil
	}
	e := &OAuthRejectedError{Server: server, Err: err, Rejected: isAuthRejection(err)}
	if oc, ok := c.(OAuthSASLClient); ok {
		e.User = oc.User()
		e.Failure = oc.Failure()
	}
	// A server that sent an OAuth failure challenge has refused the token, whatever status
	// word ends the exchange: go-imap v2.0.0-beta.8 answers the challenge with "=" instead of
	// an empty line (imapclient/authenticate.go writeSASLResp), so Dovecot ends it with BAD
	// rather than NO. See README, "Library notes".
	if e.Failure != nil {
		e.Rejected = true
	}
	switch oc := c.(type) {
	case *xoauth2Client:
		e.Mech, e.token = oc.mech, oc.token
	case *oauthBearerClient:
		e.Mech, e.token = oc.mech, oc.token
	}
	return e
}

// isAuthRejection reports whether err is a server's refusal of the credentials rather than,
// say, a network error.
func isAuthRejection(err error) bool {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return imapErr.Type == imap.StatusResponseTypeNo
	}
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		// 535 credentials invalid, 534 mechanism too weak, 530 authentication required
		// (RFC 4954 section 6); 454 is a temporary failure, not a refusal.
		switch smtpErr.Code {
		case 530, 534, 535:
			return true
		}
		return false
	}
	var popErr *POP3AuthError
	return errors.As(err, &popErr)
}
