package testmail

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Default clients of StartOAuthServer when OAuthOptions.Clients is empty.
const (
	OAuthTestClientID     = "mailwright-test-client"   // confidential default client
	OAuthTestClientSecret = "test-client-secret"       // its secret
	OAuthPublicClientID   = "mailwright-public-client" // public default client (no secret, PKCE only)
)

const (
	codeTTL          = 60 * time.Second // authorization codes, as at Google and Microsoft
	deviceCodeTTL    = 10 * time.Minute
	loginTTL         = 10 * time.Minute // a LoginForm page waiting to be POSTed
	deviceGrantType  = "urn:ietf:params:oauth:grant-type:device_code"
	consentPath      = "/authorize/consent"
	deviceVerifyPath = "/device/verify"
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ" // RFC 8628 6.1: no vowels, no look-alikes
)

// OAuthClient is a client registered with an OAuthServer. A Secret of "" makes a public
// client: it must send no secret and, like every client here, must use PKCE.
type OAuthClient struct{ ID, Secret string }

// OAuthOptions configures StartOAuthServer; each zero field takes the default it documents.
type OAuthOptions struct {
	// Clients are the registered clients; default: the confidential
	// {OAuthTestClientID, OAuthTestClientSecret} and the public {OAuthPublicClientID, ""}.
	// Mint issues tokens to Clients[0].
	Clients []OAuthClient
	// User is the account that signs in (auto-consent) unless login_hint or the login form
	// names another; default "alice@example.test".
	User string
	// AccessTokenTTL is the lifetime of access tokens; default 1h.
	AccessTokenTTL time.Duration
	// Scopes are the scopes the server knows; default "https://mail.test/imap",
	// "https://mail.test/pop", "https://mail.test/smtp", "offline_access", "openid", "email".
	Scopes []string
	// LoginForm makes /authorize show an HTML form (field "username", buttons "consent" =
	// "allow" or "deny") that must be POSTed to sign in, instead of redirecting at once.
	LoginForm bool
	// DeviceInterval is the device-flow polling interval the server enforces (faster polls
	// get slow_down); default 1s. It is announced in whole seconds, at least 1, as RFC 8628
	// requires, so a shorter value only makes the server more lenient than it says.
	DeviceInterval time.Duration
}

// FailureKind selects how the token endpoint fails; see Failure.
type FailureKind int

// The failures SetFailure can inject into token-endpoint responses.
const (
	FailNone          FailureKind = iota // no failure
	FailInvalidGrant                     // 400 {"error":"invalid_grant"}
	FailInvalidClient                    // 401 {"error":"invalid_client"}
	FailInvalidScope                     // 400 {"error":"invalid_scope"}
	FailAADSTS                           // 400 Microsoft-style invalid_grant with AADSTS70008
	FailServerError                      // 503 with an HTML body, like a proxy in front
	FailNotJSON                          // 200 with a text/html body
	FailSlow                             // correct answer after Failure.Delay
)

// Failure is an injected token-endpoint failure. It is decided before the request is
// processed, so a failed request uses up no code or refresh token.
type Failure struct {
	Kind  FailureKind   // what goes wrong
	Count int           // how many token-endpoint requests fail; 0 = until SetFailure(Failure{})
	Delay time.Duration // for FailSlow
}

// OAuthCounts counts requests per kind, failed ones included. Token requests count by their
// grant_type (ones with another grant_type or no form body are not counted); Authorize
// counts requests to /authorize, not the POST of the login form.
type OAuthCounts struct{ Authorize, TokenCode, TokenRefresh, TokenDevice, Device, Introspect, Revoke int }

// OAuthServer is a strict local OAuth 2.0 authorization server (RFC 6749, RFC 7636 with
// S256 only, RFC 8628, RFC 7662, RFC 7009) on 127.0.0.1. It is safe for concurrent use.
type OAuthServer struct {
	URL           string // http://127.0.0.1:port
	AuthURL       string // authorization endpoint, URL + "/authorize"
	TokenURL      string // token endpoint, URL + "/token"
	DeviceURL     string // device authorization endpoint, URL + "/device"
	IntrospectURL string // token introspection endpoint, URL + "/introspect"
	RevokeURL     string // token revocation endpoint, URL + "/revoke"

	// Set before the server starts, read-only afterwards.
	done       chan struct{} // closed at cleanup
	user       string
	ttl        time.Duration
	interval   time.Duration
	loginForm  bool
	clients    map[string]OAuthClient
	mintClient string
	scopes     []string

	mu       sync.Mutex
	skew     time.Duration // added to the clock by advance, for tests of expiry
	counts   OAuthCounts
	failure  Failure
	failLeft int
	codes    map[string]*authRequest // issued authorization codes
	pending  map[string]*authRequest // LoginForm pages by request id
	tokens   map[string]*token       // access and refresh tokens
	devices  map[string]*deviceGrant // by device_code
}

// family is one grant: every token issued from one code, device code or Mint, through all
// refresh rotations. Revoking it invalidates them all.
type family struct {
	user, clientID, scope string
	revoked               bool
}

// authRequest is a checked authorization request: pending at the login form, then a code.
type authRequest struct {
	clientID, redirectURI, state, challenge, scope, user string
	expires                                              time.Time
	used                                                 bool    // the code was presented
	fam                                                  *family // the tokens issued from the code
}

// token is an access token or, if refresh, a refresh token.
type token struct {
	fam             *family
	refresh, used   bool // used: a refresh token rotated away; presenting it again is reuse
	scope           string
	issued, expires time.Time // of an access token
}

type deviceGrant struct {
	clientID, scope, userCode, user string
	expires, lastPoll               time.Time
	approved                        bool
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// StartOAuthServer starts an OAuthServer on 127.0.0.1 and closes it in t.Cleanup.
func StartOAuthServer(t testing.TB, opts OAuthOptions) *OAuthServer {
	t.Helper()
	s := &OAuthServer{
		done: make(chan struct{}), user: cmp.Or(opts.User, "alice@example.test"),
		ttl: cmp.Or(max(opts.AccessTokenTTL, 0), time.Hour), interval: cmp.Or(max(opts.DeviceInterval, 0), time.Second),
		loginForm: opts.LoginForm, clients: map[string]OAuthClient{}, scopes: opts.Scopes,
		codes: map[string]*authRequest{}, pending: map[string]*authRequest{}, tokens: map[string]*token{},
		devices: map[string]*deviceGrant{},
	}
	clients := opts.Clients
	if len(clients) == 0 {
		clients = []OAuthClient{{OAuthTestClientID, OAuthTestClientSecret}, {OAuthPublicClientID, ""}}
	}
	for _, c := range clients {
		if _, dup := s.clients[c.ID]; dup || c.ID == "" {
			t.Fatalf("testmail: OAuth client ID %q is empty or registered twice", c.ID)
		}
		s.clients[c.ID] = c
	}
	s.mintClient = clients[0].ID
	if len(s.scopes) == 0 {
		s.scopes = []string{"https://mail.test/imap", "https://mail.test/pop", "https://mail.test/smtp",
			"offline_access", "openid", "email"}
	}
	mux := http.NewServeMux()
	for path, h := range map[string]http.HandlerFunc{"/authorize": s.handleAuthorize, consentPath: s.handleConsent,
		"/token": s.handleToken, "/device": s.handleDevice, deviceVerifyPath: handleDeviceVerify,
		"/introspect": s.handleIntrospect, "/revoke": s.handleRevoke} {
		mux.HandleFunc(path, h)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatalf("testmail: OAuth server: listen: %v", err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = l
	s.URL = "http://" + l.Addr().String() // before Start: handlers read it
	s.AuthURL, s.TokenURL, s.DeviceURL = s.URL+"/authorize", s.URL+"/token", s.URL+"/device"
	s.IntrospectURL, s.RevokeURL = s.URL+"/introspect", s.URL+"/revoke"
	srv.Start()
	t.Cleanup(func() {
		close(s.done) // lets FailSlow handlers return, so Close does not wait for them
		srv.Close()
	})
	return s
}

// Endpoint returns the authorization and token endpoint URLs, e.g. for an oauth2.Endpoint.
func (s *OAuthServer) Endpoint() (authURL, tokenURL string) { return s.AuthURL, s.TokenURL }

// SetFailure makes the next f.Count token-endpoint requests (all of them if f.Count is 0)
// fail as f.Kind says; SetFailure(Failure{}) clears it.
func (s *OAuthServer) SetFailure(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure, s.failLeft = f, f.Count
}

// Counts returns how many requests of each kind the server has received.
func (s *OAuthServer) Counts() OAuthCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Mint issues an access and refresh token pair to Clients[0] for user (default: the
// server's User) with scope (space-separated; default: every known scope), as if the user
// had signed in. The pair behaves exactly like one from the token endpoint.
func (s *OAuthServer) Mint(user, scope string) (access, refresh string) {
	user, scope = cmp.Or(user, s.user), cmp.Or(scope, strings.Join(s.scopes, " "))
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.issueLocked(&family{user: user, clientID: s.mintClient, scope: scope}, scope)
	return r.AccessToken, r.RefreshToken
}

// ValidAccessToken reports whether token is an unexpired, unrevoked access token, and for
// whom and with which scope (space-separated) it was issued.
func (s *OAuthServer) ValidAccessToken(token string) (user, scope string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.activeAccessLocked(token)
	if !ok {
		return "", "", false
	}
	return a.fam.user, a.scope, true
}

// RevokeUser invalidates every token, code and approved device code of user, as when the
// user revokes the app's access or changes the password.
func (s *OAuthServer) RevokeUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tok := range s.tokens {
		if tok.fam.user == user {
			tok.fam.revoked = true
		}
	}
	for k, c := range s.codes {
		if c.user == user {
			delete(s.codes, k)
		}
	}
	for k, d := range s.devices {
		if d.approved && d.user == user {
			delete(s.devices, k)
		}
	}
}

// ExpireAccessTokens makes every access token issued so far expired; refresh tokens stay
// valid.
func (s *OAuthServer) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	for _, tok := range s.tokens {
		if !tok.refresh && tok.expires.After(now) {
			tok.expires = now
		}
	}
}

// ApproveDevice signs the server's User in for the device flow showing userCode, as the
// user would by typing it on another device. Case, spaces and the dash do not matter.
func (s *OAuthServer) ApproveDevice(userCode string) error {
	norm := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(userCode))
	if len(norm) == 8 {
		norm = norm[:4] + "-" + norm[4:]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		switch {
		case d.userCode != norm:
			continue
		case !s.nowLocked().Before(d.expires):
			return fmt.Errorf("testmail: approve device code %q: expired", userCode)
		case d.approved:
			return fmt.Errorf("testmail: approve device code %q: already approved", userCode)
		}
		d.approved, d.user = true, s.user
		return nil
	}
	return fmt.Errorf("testmail: approve device code %q: unknown user code", userCode)
}

// advance moves the server's clock forward by d (tests of expiry without sleeping).
func (s *OAuthServer) advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skew += d
}

func (s *OAuthServer) nowLocked() time.Time { return time.Now().Add(s.skew) }

func (s *OAuthServer) activeAccessLocked(access string) (*token, bool) {
	a, ok := s.tokens[access]
	if !ok || a.refresh || a.fam.revoked || !s.nowLocked().Before(a.expires) {
		return nil, false
	}
	return a, true
}

// issueLocked issues a new access and refresh token in fam, the access token with scope.
func (s *OAuthServer) issueLocked(fam *family, scope string) tokenResponse {
	now := s.nowLocked()
	at, rt := randomToken(), randomToken()
	s.tokens[at] = &token{fam: fam, scope: scope, issued: now, expires: now.Add(s.ttl)}
	s.tokens[rt] = &token{fam: fam, refresh: true}
	return tokenResponse{AccessToken: at, TokenType: "Bearer", RefreshToken: rt, Scope: scope,
		ExpiresIn: max(1, int64((s.ttl+time.Second-1)/time.Second))}
}

// newDeviceLocked registers a device authorization and returns its device and user codes.
func (s *OAuthServer) newDeviceLocked(clientID, scope string) (deviceCode, userCode string) {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails since Go 1.24
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)] // slight bias; fine here
	}
	userCode = string(b[:4]) + "-" + string(b[4:]) // a clash (1 in 2.5e10) is not worth a check
	deviceCode, now := randomToken(), s.nowLocked()
	s.devices[deviceCode] = &deviceGrant{clientID: clientID, scope: scope, userCode: userCode,
		expires: now.Add(deviceCodeTTL), lastPoll: now}
	return deviceCode, userCode
}

// randomToken returns 32 random bytes, base64url: an opaque token or code.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}

// randomUUID returns a random (version 4) UUID, as in Microsoft's trace IDs.
func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// scopeWithin returns the space-separated scope raw without duplicates, or the first of
// its scopes that is not in allowed.
func scopeWithin(raw string, allowed []string) (scope, bad string) {
	var out []string
	for _, f := range strings.Fields(raw) {
		if !slices.Contains(allowed, f) {
			return "", f
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return strings.Join(out, " "), ""
}

// checkLoopbackRedirect accepts only http://127.0.0.1:port/…, http://localhost:port/… and
// http://[::1]:port/… without fragment or user info (RFC 8252 7.3, RFC 6749 3.1.2).
func checkLoopbackRedirect(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse redirect_uri: %w", err)
	}
	host, port := u.Hostname(), u.Port()
	n, perr := strconv.Atoi(port)
	switch {
	case raw == "":
		return fmt.Errorf("missing required parameter: redirect_uri")
	case u.Scheme != "http" || u.Opaque != "" || host != "127.0.0.1" && host != "localhost" && host != "::1":
		return fmt.Errorf("redirect_uri %q is not http on a loopback address", raw)
	case u.User != nil || strings.Contains(raw, "#"):
		return fmt.Errorf("redirect_uri %q must not contain user info or a fragment", raw)
	case perr != nil || n < 1 || n > 65535 || u.Host != net.JoinHostPort(host, port):
		return fmt.Errorf("redirect_uri %q must name a valid port", raw)
	}
	return nil
}

func isS256Challenge(c string) bool {
	b, err := base64.RawURLEncoding.DecodeString(c)
	return len(c) == 43 && err == nil && len(b) == sha256.Size
}

// parsePostForm reads an application/x-www-form-urlencoded POST body, refusing repeated
// parameters (RFC 6749 3.1). Query-string parameters are not looked at.
func parsePostForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if r.Method != http.MethodPost {
		return nil, errf(http.StatusMethodNotAllowed, "invalid_request", "method %s not allowed; use POST", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errf(http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return nil, errf(http.StatusBadRequest, "invalid_request", "malformed request body: %v", err)
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, errf(http.StatusBadRequest, "invalid_request", "parameter %q is repeated", k)
		}
	}
	return r.PostForm, nil
}

// authenticateClient identifies the client by HTTP Basic (RFC 6749 2.3.1: form-encoded id
// and secret) or by client_id/client_secret in the body, never both. A confidential client
// must present its secret unless secretOptional; a public client must present none.
func (s *OAuthServer) authenticateClient(r *http.Request, form url.Values, secretOptional bool) (OAuthClient, *oauthError) {
	fail := func(desc string) (OAuthClient, *oauthError) {
		return OAuthClient{}, errf(http.StatusUnauthorized, "invalid_client", "%s", desc)
	}
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if r.Header.Get("Authorization") != "" {
		bid, bsecret, ok := r.BasicAuth()
		bid, err1 := url.QueryUnescape(bid)
		bsecret, err2 := url.QueryUnescape(bsecret)
		switch {
		case secret != "": // an empty one, as Dovecot sends, is no second method
			return OAuthClient{}, errf(http.StatusBadRequest, "invalid_request", "client authenticated by both HTTP Basic and client_secret")
		case !ok || err1 != nil || err2 != nil:
			return fail("malformed Authorization header; use HTTP Basic")
		case id != "" && id != bid:
			return fail("client_id in the body differs from the HTTP Basic one")
		}
		id, secret = bid, bsecret
	}
	c, ok := s.clients[id]
	switch {
	case !ok:
		return fail("client authentication required; the OAuth client was not found")
	case c.Secret == "" && secret != "":
		return fail("public client must not send a client_secret")
	case c.Secret != "" && secret == "" && !secretOptional:
		return fail("client_secret is missing")
	case c.Secret != "" && secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1:
		return fail("client_secret is wrong")
	}
	return c, nil
}
