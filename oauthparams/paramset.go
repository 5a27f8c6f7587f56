package oauthparams

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// ParamSet is one named OAuth 2.0 parameter set: everything a mail action needs to get an
// access token for one mailbox. The plain fields are stored as JSON; Secrets are never
// marshalled with them (the store keeps them in the OS keyring or an encrypted file).
type ParamSet struct {
	// Name is the Record Name, the key actions refer to: unique case-insensitively, trimmed.
	Name string `json:"name"`
	// Account is the Client Account: the mailbox address, also the SASL user.
	Account string `json:"account,omitempty"`
	// ClientID is the OAuth client (application) ID registered with the provider.
	ClientID string `json:"client_id"`
	// AuthURL is the authorization endpoint.
	AuthURL string `json:"auth_url"`
	// TokenURL is the access-token endpoint.
	TokenURL string `json:"token_url"`
	// DeviceURL is the device-authorization endpoint (RFC 8628); optional.
	DeviceURL string `json:"device_url,omitempty"`
	// Scope is the space-separated scope requested at sign-in.
	Scope string `json:"scope"`
	// RedirectURL is a fixed loopback redirect for providers that need one registered
	// (e.g. "http://127.0.0.1:8765/"); empty means 127.0.0.1 on a random port.
	RedirectURL string `json:"redirect_url,omitempty"`
	// ExtraParams are added to the authorization request (access_type=offline,
	// prompt=consent, login_hint, ...).
	ExtraParams map[string]string `json:"extra_params,omitempty"`
	// Preset is the provider preset last loaded into the set, e.g. "google"; informational.
	Preset string `json:"preset,omitempty"`

	// GrantedScope is the scope the provider granted with the last token.
	GrantedScope string `json:"granted_scope,omitempty"`
	// LastRefresh is when an access token was last obtained.
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	// LastError is the last sign-in or refresh error, in words (never a secret).
	LastError string `json:"last_error,omitempty"`
	// SignInNeeded, when not empty, says why the user must click Get Refresh Token again
	// (token revoked or expired, scope changed, imported without secrets).
	SignInNeeded string `json:"sign_in_needed,omitempty"`

	// Secrets are kept apart from the plain fields and never marshalled with them.
	Secrets Secrets `json:"-"`
}

// Secrets are the sensitive parts of a parameter set.
type Secrets struct {
	ClientSecret string    // empty for public clients: then no secret is sent at all
	RefreshToken string    // long-lived; rotated by some providers on every refresh
	AccessToken  string    // cached short-lived token
	AccessExpiry time.Time // when AccessToken expires
}

// MaxNameLength is the longest Record Name accepted, in characters.
const MaxNameLength = 100

// maxAccountLength bounds Account (the longest valid mailbox address is 320 characters).
const maxAccountLength = 320

// NormalizeName returns the Record Name as stored: s without surrounding white space.
func NormalizeName(s string) string { return strings.TrimSpace(s) }

// NameKey returns the key under which names are unique: the normalized name in lower case,
// so "Work" and " work " name the same set.
func NameKey(name string) string { return strings.ToLower(NormalizeName(name)) }

// Normalize trims every text field (and the client secret, often pasted with a trailing
// newline), collapses white space in Scope and GrantedScope to single spaces and drops
// ExtraParams whose key is empty after trimming.
func (p *ParamSet) Normalize() {
	for _, f := range []*string{&p.Name, &p.Account, &p.ClientID, &p.AuthURL, &p.TokenURL,
		&p.DeviceURL, &p.RedirectURL, &p.Preset, &p.LastError, &p.SignInNeeded,
		&p.Secrets.ClientSecret} {
		*f = strings.TrimSpace(*f)
	}
	p.Scope = strings.Join(strings.Fields(p.Scope), " ")
	p.GrantedScope = strings.Join(strings.Fields(p.GrantedScope), " ")
	if p.ExtraParams != nil {
		clean := make(map[string]string, len(p.ExtraParams))
		for k, v := range p.ExtraParams {
			if k = strings.TrimSpace(k); k != "" {
				clean[k] = strings.TrimSpace(v)
			}
		}
		p.ExtraParams = clean
	}
}

// Clone returns a deep copy of p: the copy's ExtraParams map is its own.
func (p ParamSet) Clone() ParamSet {
	p.ExtraParams = maps.Clone(p.ExtraParams)
	return p
}

// Masked returns a copy of p fit for display (`params show`): each secret is replaced by
// "(set)" when present and "" when not; AccessExpiry is kept.
func (p ParamSet) Masked() ParamSet {
	c := p.Clone()
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "(set)"
	}
	c.Secrets.ClientSecret = mask(p.Secrets.ClientSecret)
	c.Secrets.RefreshToken = mask(p.Secrets.RefreshToken)
	c.Secrets.AccessToken = mask(p.Secrets.AccessToken)
	return c
}

// OAuth2Config returns the golang.org/x/oauth2 configuration for p. redirectURL is the
// loopback address the sign-in listener actually serves; when empty, p.RedirectURL is used.
// Client credentials go in the request body (AuthStyleInParams), so an empty client secret
// is omitted entirely, as public clients (Microsoft personal accounts, PKCE-only apps) need.
func (p ParamSet) OAuth2Config(redirectURL string) *oauth2.Config {
	if redirectURL == "" {
		redirectURL = strings.TrimSpace(p.RedirectURL)
	}
	return &oauth2.Config{
		ClientID:     strings.TrimSpace(p.ClientID),
		ClientSecret: strings.TrimSpace(p.Secrets.ClientSecret),
		Endpoint: oauth2.Endpoint{
			AuthURL:       strings.TrimSpace(p.AuthURL),
			TokenURL:      strings.TrimSpace(p.TokenURL),
			DeviceAuthURL: strings.TrimSpace(p.DeviceURL),
			AuthStyle:     oauth2.AuthStyleInParams,
		},
		RedirectURL: redirectURL,
		Scopes:      strings.Fields(p.Scope),
	}
}

// AuthCodeOptions returns ExtraParams as authorization-request options, sorted by key.
// Keys the protocol sets itself (state, redirect_uri, scope, ...) are skipped even when
// Validate was not called, so a stored set can never override them.
func (p ParamSet) AuthCodeOptions() []oauth2.AuthCodeOption {
	var opts []oauth2.AuthCodeOption
	for _, k := range slices.Sorted(maps.Keys(p.ExtraParams)) {
		key := strings.TrimSpace(k)
		if key == "" || isProtectedParam(key) {
			continue
		}
		opts = append(opts, oauth2.SetAuthURLParam(key, strings.TrimSpace(p.ExtraParams[k])))
	}
	return opts
}

// isProtectedParam reports whether key is a parameter the sign-in flow sets itself, which
// ExtraParams must not override (compared case-insensitively).
func isProtectedParam(key string) bool {
	switch strings.ToLower(key) {
	case "response_type", "client_id", "redirect_uri", "state", "code_challenge",
		"code_challenge_method", "scope":
		return true
	}
	return false
}

// State is the sign-in state of a parameter set, as the UI shows it.
type State string

// The states Status reports.
const (
	StateReady        State = "ready"          // a refresh token is stored and nothing is known to be wrong
	StateSignInNeeded State = "sign-in needed" // no refresh token yet, or SignInNeeded says why
	StateScopeChanged State = "scope changed"  // Scope asks for more than the last sign-in granted
	StateTokenRevoked State = "token revoked"  // the provider answered invalid_grant to a refresh
	StateIncomplete   State = "incomplete"     // Validate fails: the set cannot be used as is
)

// StatusInfo is the State of a set, the reason in words and when a token was last obtained.
type StatusInfo struct {
	State       State
	Reason      string
	LastRefresh time.Time
}

// revokedPrefix starts a SignInNeeded reason written by MarkTokenRevoked.
const revokedPrefix = "token revoked: "

// MarkSignInNeeded records why the user must click Get Refresh Token again.
func (p *ParamSet) MarkSignInNeeded(reason string) { p.SignInNeeded = strings.TrimSpace(reason) }

// MarkTokenRevoked records that the provider refused the refresh token (invalid_grant);
// Status then reports StateTokenRevoked.
func (p *ParamSet) MarkTokenRevoked(reason string) {
	p.SignInNeeded = revokedPrefix + strings.TrimSpace(reason)
}

// Status reports the state of p at time now. Secrets must be loaded: without a refresh
// token the set needs a sign-in. The rules, in order: a set that fails Validate is
// incomplete; a set with SignInNeeded needs a sign-in (token revoked when the reason was
// written by MarkTokenRevoked or names invalid_grant); a set without a refresh token needs
// a sign-in; a set whose Scope asks for scopes GrantedScope lacks has its scope changed;
// anything else is ready.
func (p ParamSet) Status(now time.Time) StatusInfo {
	info := StatusInfo{LastRefresh: p.LastRefresh}
	reason := strings.TrimSpace(p.SignInNeeded)
	switch err := p.Validate(); {
	case err != nil:
		probs := err.(ValidationError).Problems
		info.State, info.Reason = StateIncomplete, probs[0].Field+": "+probs[0].Message
		if len(probs) > 1 {
			info.Reason += fmt.Sprintf(" (and %d more)", len(probs)-1)
		}
	case strings.HasPrefix(reason, revokedPrefix) || strings.Contains(reason, "invalid_grant"):
		info.State, info.Reason = StateTokenRevoked, reason
	case reason != "":
		info.State, info.Reason = StateSignInNeeded, reason
	case p.Secrets.RefreshToken == "":
		info.State, info.Reason = StateSignInNeeded, "no refresh token yet: click Get Refresh Token"
	default:
		if missing := p.ScopeChanged(); len(missing) > 0 {
			info.State = StateScopeChanged
			info.Reason = "the scope asks for " + strings.Join(missing, ", ") +
				" which the last sign-in did not grant: click Get Refresh Token"
			break
		}
		info.State, info.Reason = StateReady, "signed in"
		if p.Secrets.AccessToken != "" && p.Secrets.AccessExpiry.After(now) {
			info.Reason += "; the access token is valid for another " +
				p.Secrets.AccessExpiry.Sub(now).Round(time.Minute).String()
		}
	}
	return info
}

// ScopeChanged returns the requested scopes the last sign-in did not grant, in Scope
// order; nil when GrantedScope is empty (not every provider reports it). Scopes compare
// case-insensitively, a URL scope also matches its last path element (Microsoft reports
// "https://graph.microsoft.com/Mail.Read" as "Mail.Read"), and openid, profile, email and
// offline_access are ignored, because providers do not echo them reliably.
func (p ParamSet) ScopeChanged() (missing []string) {
	granted := strings.Fields(p.GrantedScope)
	if len(granted) == 0 {
		return nil
	}
	for _, want := range strings.Fields(p.Scope) {
		switch strings.ToLower(want) {
		case "openid", "profile", "email", "offline_access":
			continue
		}
		short := want[strings.LastIndexByte(want, '/')+1:]
		ok := slices.ContainsFunc(granted, func(g string) bool {
			return strings.EqualFold(g, want) || (short != "" && short != want && strings.EqualFold(g, short))
		})
		if !ok && !slices.Contains(missing, want) {
			missing = append(missing, want)
		}
	}
	return missing
}

// Problem is one thing wrong with a parameter set. Field is the JSON name of the field
// ("name", "auth_url", "extra_params.prompt"); Message says what to fix. Neither ever
// contains a secret.
type Problem struct {
	Field, Message string
}

// ValidationError lists every problem Validate found, in field order.
type ValidationError struct {
	Problems []Problem
}

// Error renders one line per problem, e.g. "name: must not be empty".
func (e ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, pr := range e.Problems {
		lines[i] = pr.Field + ": " + pr.Message
	}
	return strings.Join(lines, "\n")
}

// Has reports whether a problem was found in field.
func (e ValidationError) Has(field string) bool {
	return slices.ContainsFunc(e.Problems, func(pr Problem) bool { return pr.Field == field })
}

// Validate checks p as Normalize would leave it and reports all problems at once as a
// ValidationError, or returns nil.
//
// Endpoints (auth_url, token_url, and device_url when set) must be absolute https URLs;
// plain http is accepted only for loopback hosts (127.0.0.0/8, ::1, localhost), which
// local test servers use. redirect_url, when set, must be http:// on a loopback host with
// an explicit port from 1 to 65535: it is where Mailwright's own listener waits, and a
// fixed port is the only reason to set it (leave it empty for a random port; port 0 is
// refused for that reason).
func (p ParamSet) Validate() error {
	q := p.Clone()
	q.Normalize()
	var probs []Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	switch n := utf8.RuneCountInString(q.Name); {
	case n == 0:
		add("name", "must not be empty")
	case n > MaxNameLength:
		add("name", "is %d characters long; use at most %d", n, MaxNameLength)
	}
	if hasControl(q.Name) {
		add("name", "must not contain control characters (tabs, line breaks, ...)")
	}
	if strings.ContainsAny(q.Name, `/\`) {
		add("name", `must not contain "/" or "\"`)
	}

	if q.Account != "" {
		if msg := accountProblem(q.Account); msg != "" {
			add("account", "%s", msg)
		}
	}

	switch {
	case q.ClientID == "":
		add("client_id", "must not be empty: copy the client (application) ID from the provider's app registration")
	case hasControl(q.ClientID) || strings.ContainsFunc(q.ClientID, unicode.IsSpace):
		add("client_id", "must not contain spaces or control characters")
	}
	if cs := q.Secrets.ClientSecret; hasControl(cs) || strings.ContainsFunc(cs, unicode.IsSpace) {
		add("client_secret", "must not contain spaces or control characters: paste the secret value again")
	}

	for _, ep := range []struct {
		field, value string
		required     bool
	}{{"auth_url", q.AuthURL, true}, {"token_url", q.TokenURL, true}, {"device_url", q.DeviceURL, false}} {
		if ep.value == "" {
			if ep.required {
				add(ep.field, "is required: enter the provider's endpoint or use Load Predefined Endpoints")
			}
			continue
		}
		for _, msg := range endpointProblems(ep.value) {
			add(ep.field, "%s", msg)
		}
	}
	if q.RedirectURL != "" {
		for _, msg := range redirectProblems(q.RedirectURL) {
			add("redirect_url", "%s", msg)
		}
	}

	switch {
	case hasControl(q.Scope):
		add("scope", "must not contain control characters")
	case q.Scope == "":
		add("scope", "must name at least one scope (for Gmail: https://mail.google.com/)")
	default:
		for _, tok := range strings.Fields(q.Scope) {
			if !validScopeToken(tok) {
				add("scope", `%q contains a character not allowed in a scope: use printable ASCII except '"' and '\'`, tok)
			}
		}
	}

	for _, k := range slices.Sorted(maps.Keys(q.ExtraParams)) {
		field := "extra_params." + k
		switch {
		case isProtectedParam(k):
			add(field, "%q is set by Mailwright on every sign-in and cannot be overridden: remove it (use the Client ID, Scope or Redirect URL fields instead)", k)
		case hasControl(k) || strings.ContainsFunc(k, unicode.IsSpace):
			add(field, "the parameter name must not contain spaces or control characters")
		}
		if hasControl(q.ExtraParams[k]) {
			add(field, "the value must not contain control characters")
		}
	}

	if len(probs) == 0 {
		return nil
	}
	return ValidationError{Problems: probs}
}

func hasControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }

// validScopeToken reports whether tok is a scope-token of RFC 6749 §3.3:
// 1*NQCHAR, NQCHAR = %x21 / %x23-5B / %x5D-7E.
func validScopeToken(tok string) bool {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return tok != ""
}

func accountProblem(a string) string {
	const what = "must be a mailbox address (user@example.com) or a user name, without spaces or control characters"
	if hasControl(a) || strings.ContainsFunc(a, unicode.IsSpace) || strings.ContainsAny(a, "<>") {
		return what
	}
	if utf8.RuneCountInString(a) > maxAccountLength {
		return fmt.Sprintf("is longer than %d characters", maxAccountLength)
	}
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		local, domain := a[:at], a[at+1:]
		if local == "" || domain == "" || strings.HasPrefix(domain, ".") ||
			strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
			return what
		}
	}
	return ""
}

// isLoopbackHost reports whether host (without port or brackets) is localhost or a
// loopback IP address (127.0.0.0/8, ::1).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseAbsURL parses raw and reports the problems every URL field shares.
func parseAbsURL(raw string) (*url.URL, []string) {
	if hasControl(raw) || strings.ContainsFunc(raw, unicode.IsSpace) {
		return nil, []string{"must not contain spaces or control characters"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, []string{"is not a valid URL"}
	}
	if !u.IsAbs() || u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, []string{"must be an absolute URL, such as https://login.example.com/oauth2/token"}
	}
	var probs []string
	if strings.ContainsAny(raw, "{}") {
		probs = append(probs, "still contains a placeholder such as {tenant}: replace it with your tenant ID or domain")
	}
	if u.User != nil {
		probs = append(probs, "must not contain a user name or password (user:pass@)")
	}
	if strings.Contains(raw, "#") {
		probs = append(probs, "must not contain a fragment (#...)")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			probs = append(probs, "has an invalid port: use 1 to 65535")
		}
	}
	return u, probs
}

func endpointProblems(raw string) []string {
	u, probs := parseAbsURL(raw)
	if u == nil {
		return probs
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && (scheme != "http" || !isLoopbackHost(u.Hostname())) {
		probs = append(probs, "must use https:// (plain http:// is allowed only for loopback hosts: 127.0.0.0/8, ::1 and localhost)")
	}
	return probs
}

func redirectProblems(raw string) []string {
	u, probs := parseAbsURL(raw)
	if u == nil {
		return probs
	}
	if !strings.EqualFold(u.Scheme, "http") || !isLoopbackHost(u.Hostname()) {
		probs = append(probs, "must be http:// on a loopback host (127.0.0.1, [::1] or localhost), where Mailwright listens; leave it empty to use a random port")
	}
	if u.Port() == "" {
		probs = append(probs, "must name an explicit port, such as http://127.0.0.1:8765/; leave the field empty to use a random port")
	}
	return probs
}
