package testmail

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const loginFormHTML = `<!DOCTYPE html>
<html><head><title>Sign in - Mailwright test provider</title></head>
<body><h1>Sign in</h1><p>%s wants access to: %s</p>
<form method="post" action="%s">
<input type="hidden" name="request" value="%s">
<label>Email <input type="email" name="username" value="%s"></label>
<button type="submit" name="consent" value="allow">Allow</button>
<button type="submit" name="consent" value="deny">Deny</button>
</form></body></html>
`

// oauthError is an RFC 6749 5.2 error response.
type oauthError struct {
	status     int
	code, desc string
}

func errf(status int, code, format string, args ...any) *oauthError {
	return &oauthError{status: status, code: code, desc: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) (tokenResponse, *oauthError) {
	return tokenResponse{}, errf(http.StatusBadRequest, code, format, args...)
}

// handleAuthorize is the authorization endpoint (RFC 6749 4.1.1, PKCE S256 required).
func (s *OAuthServer) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.Authorize++
	s.mu.Unlock()
	q := r.URL.Query()
	req := &authRequest{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"), state: q.Get("state"),
		challenge: q.Get("code_challenge"), user: cmp.Or(q.Get("login_hint"), s.user)}
	page, code, desc := s.checkAuthorize(r, q, req)
	switch {
	case page:
		writeErrorPage(w, http.StatusBadRequest, code, desc)
	case code != "":
		redirectTo(w, r, req, "error", code, "error_description", desc)
	case !s.loginForm:
		s.redirectWithCode(w, r, req)
	default:
		id := randomToken()
		s.mu.Lock()
		req.expires, s.pending[id] = s.nowLocked().Add(loginTTL), req
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, loginFormHTML, html.EscapeString(req.clientID), html.EscapeString(req.scope),
			consentPath, id, html.EscapeString(req.user))
	}
}

// checkAuthorize checks an authorization request and sets req.scope. Errors about the
// client or redirect_uri must be shown on a page (page true); all others are redirected
// back to the client (RFC 6749 4.1.2.1).
func (s *OAuthServer) checkAuthorize(r *http.Request, q url.Values, req *authRequest) (page bool, code, desc string) {
	_, known := s.clients[req.clientID]
	switch err := checkLoopbackRedirect(req.redirectURI); {
	case r.Method != http.MethodGet:
		return true, "invalid_request", "use GET"
	case len(q["client_id"]) > 1 || len(q["redirect_uri"]) > 1:
		return true, "invalid_request", "client_id or redirect_uri is repeated"
	case !known:
		return true, "invalid_client", "The OAuth client was not found."
	case err != nil:
		return true, "redirect_uri_mismatch", err.Error()
	}
	for k, v := range q {
		if len(v) > 1 {
			return false, "invalid_request", "parameter " + k + " is repeated"
		}
	}
	scope, bad := scopeWithin(q.Get("scope"), s.scopes)
	switch rt := q.Get("response_type"); {
	case rt == "":
		return false, "invalid_request", "Missing required parameter: response_type"
	case rt != "code":
		return false, "unsupported_response_type", "response_type must be code"
	case req.state == "":
		return false, "invalid_request", "Missing required parameter: state"
	case req.challenge == "":
		return false, "invalid_request", "PKCE is required: missing code_challenge"
	case q.Get("code_challenge_method") != "S256":
		return false, "invalid_request", "code_challenge_method must be S256; transform algorithm not supported"
	case !isS256Challenge(req.challenge):
		return false, "invalid_request", "code_challenge is not a base64url SHA-256 (43 characters)"
	case bad != "":
		return false, "invalid_scope", "unknown scope " + strconv.Quote(bad)
	case scope == "":
		return false, "invalid_request", "Missing required parameter: scope"
	case s.loginForm && slices.Contains(strings.Fields(q.Get("prompt")), "none"): // else prompt, access_type are ignored
		return false, "login_required", "the user must sign in"
	}
	req.scope = scope
	return false, "", ""
}

// handleConsent receives the POSTed login form.
func (s *OAuthServer) handleConsent(w http.ResponseWriter, r *http.Request) {
	form, e := parsePostForm(w, r)
	user, consent := strings.TrimSpace(form.Get("username")), form.Get("consent")
	if e == nil && consent != "deny" && (consent != "allow" || user == "") {
		e = errf(http.StatusBadRequest, "invalid_request", "enter the username and allow or deny")
	}
	s.mu.Lock()
	req := s.pending[form.Get("request")]
	if e == nil {
		delete(s.pending, form.Get("request"))
	}
	if e == nil && (req == nil || !s.nowLocked().Before(req.expires)) {
		e = errf(http.StatusBadRequest, "invalid_request", "the sign-in session is unknown or has expired")
	}
	s.mu.Unlock()
	switch {
	case e != nil:
		writeErrorPage(w, e.status, e.code, e.desc)
	case consent == "deny":
		redirectTo(w, r, req, "error", "access_denied", "error_description", "The user denied access.")
	default:
		req.user = user
		s.redirectWithCode(w, r, req)
	}
}

func (s *OAuthServer) redirectWithCode(w http.ResponseWriter, r *http.Request, req *authRequest) {
	code := randomToken()
	s.mu.Lock()
	req.expires, s.codes[code] = s.nowLocked().Add(codeTTL), req
	s.mu.Unlock()
	redirectTo(w, r, req, "code", code)
}

// redirectTo answers 302 to req's redirect_uri (already checked) with the key-value pairs
// kv and the state added to its query.
func redirectTo(w http.ResponseWriter, r *http.Request, req *authRequest, kv ...string) {
	u, _ := url.Parse(req.redirectURI)
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	if req.state != "" {
		q.Set("state", req.state)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// handleToken is the token endpoint (RFC 6749 3.2, 4.1.3, 6; RFC 8628 3.4).
func (s *OAuthServer) handleToken(w http.ResponseWriter, r *http.Request) {
	form, e := parsePostForm(w, r)
	grant, f := form.Get("grant_type"), Failure{}
	s.mu.Lock()
	if n := map[string]*int{"authorization_code": &s.counts.TokenCode, "refresh_token": &s.counts.TokenRefresh,
		deviceGrantType: &s.counts.TokenDevice}[grant]; n != nil {
		*n++
	}
	if e == nil && s.failure.Kind != FailNone { // decided before the request is processed
		if f = s.failure; f.Count > 0 {
			if s.failLeft--; s.failLeft <= 0 {
				s.failure = Failure{}
			}
		}
	}
	s.mu.Unlock()
	if s.injectFailure(w, r, f) {
		return
	}
	var client OAuthClient
	if e == nil {
		client, e = s.authenticateClient(r, form, false)
	}
	var resp tokenResponse
	switch {
	case e != nil:
	case grant == "authorization_code":
		resp, e = s.exchangeCode(client, form)
	case grant == "refresh_token":
		resp, e = s.refreshGrant(client, form)
	case grant == deviceGrantType:
		resp, e = s.deviceToken(client, form)
	default:
		_, e = badRequest("unsupported_grant_type", "grant_type %q is missing or not supported", grant)
	}
	if e != nil {
		writeOAuthError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// injectFailure answers as f says and reports whether it did; FailSlow only delays.
func (s *OAuthServer) injectFailure(w http.ResponseWriter, r *http.Request, f Failure) bool {
	plain := map[FailureKind]*oauthError{
		FailInvalidGrant:  errf(http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked."),
		FailInvalidClient: errf(http.StatusUnauthorized, "invalid_client", "The OAuth client was not found."),
		FailInvalidScope:  errf(http.StatusBadRequest, "invalid_scope", "The requested scope is invalid, unknown, or malformed."),
	}
	switch f.Kind {
	case FailInvalidGrant, FailInvalidClient, FailInvalidScope:
		writeOAuthError(w, plain[f.Kind])
	case FailAADSTS:
		ts, trace, corr := time.Now().UTC().Format("2006-01-02 15:04:05Z"), randomUUID(), randomUUID()
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant",
			"error_description": "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. " +
				"Send a new interactive authorization request for this user and resource.\r\nTrace ID: " + trace +
				"\r\nCorrelation ID: " + corr + "\r\nTimestamp: " + ts,
			"error_codes": []int{70008}, "timestamp": ts, "trace_id": trace, "correlation_id": corr,
			"error_uri": "https://login.microsoftonline.com/error?code=70008"})
	case FailServerError:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"+
			"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
	case FailNotJSON:
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!DOCTYPE html><html><body><h1>Sign in</h1><p>Please sign in to continue.</p></body></html>\n")
	case FailSlow:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
			return false
		case <-r.Context().Done(): // the client gave up
		case <-s.done:
			http.Error(w, "server closing", http.StatusServiceUnavailable)
		}
	default:
		return false
	}
	return true
}

// exchangeCode is the authorization_code grant with PKCE. Presenting a code uses it up,
// whether or not the exchange succeeds; presenting it again revokes its tokens.
func (s *OAuthServer) exchangeCode(client OAuthClient, form url.Values) (tokenResponse, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[form.Get("code")]
	switch {
	case form.Get("code") == "":
		return badRequest("invalid_request", "Missing required parameter: code")
	case !ok || c.clientID != client.ID:
		return badRequest("invalid_grant", "the authorization code is invalid or was issued to another client")
	case c.used:
		if c.fam != nil {
			c.fam.revoked = true
		}
		return badRequest("invalid_grant", "the authorization code was already used; tokens issued from it are revoked")
	}
	c.used = true
	v := form.Get("code_verifier")
	sum := sha256.Sum256([]byte(v))
	switch {
	case !s.nowLocked().Before(c.expires):
		return badRequest("invalid_grant", "the authorization code has expired")
	case form.Get("redirect_uri") != c.redirectURI:
		return badRequest("invalid_grant", "redirect_uri does not match the authorization request")
	case v == "":
		return badRequest("invalid_grant", "Missing code_verifier")
	case len(v) < 43 || len(v) > 128 || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") != "" ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
		return badRequest("invalid_grant", "PKCE verification failed: code_verifier does not match code_challenge")
	}
	c.fam = &family{user: c.user, clientID: client.ID, scope: c.scope}
	return s.issueLocked(c.fam, c.scope), nil
}

// refreshGrant is the refresh_token grant with rotation and reuse detection. A scope
// parameter may narrow the granted scope, not widen it.
func (s *OAuthServer) refreshGrant(client OAuthClient, form url.Values) (tokenResponse, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.tokens[form.Get("refresh_token")]
	switch {
	case form.Get("refresh_token") == "":
		return badRequest("invalid_request", "Missing required parameter: refresh_token")
	case !ok || !g.refresh || g.fam.clientID != client.ID:
		return badRequest("invalid_grant", "the refresh token is invalid or was issued to another client")
	case g.fam.revoked:
		return badRequest("invalid_grant", "Token has been expired or revoked.")
	case g.used:
		g.fam.revoked = true
		return badRequest("invalid_grant", "the refresh token was already used; the grant is revoked")
	}
	scope, bad := scopeWithin(form.Get("scope"), strings.Fields(g.fam.scope))
	if bad != "" {
		return badRequest("invalid_scope", "scope %q exceeds the granted scope", bad)
	}
	g.used = true
	return s.issueLocked(g.fam, cmp.Or(scope, g.fam.scope)), nil
}

// deviceToken is the RFC 8628 3.4 device_code grant.
func (s *OAuthServer) deviceToken(client OAuthClient, form url.Values) (tokenResponse, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dc, now := form.Get("device_code"), s.nowLocked()
	d, ok := s.devices[dc]
	if dc == "" {
		return badRequest("invalid_request", "Missing required parameter: device_code")
	} else if !ok || d.clientID != client.ID {
		return badRequest("invalid_grant", "the device code is invalid or was issued to another client")
	}
	tooSoon := now.Sub(d.lastPoll) < s.interval
	d.lastPoll = now
	scope, bad := scopeWithin(form.Get("scope"), strings.Fields(d.scope))
	switch {
	case !now.Before(d.expires):
		return badRequest("expired_token", "the device code has expired")
	case tooSoon:
		return badRequest("slow_down", "polling faster than the interval")
	case !d.approved:
		return badRequest("authorization_pending", "the user has not yet approved")
	case bad != "":
		return badRequest("invalid_scope", "scope %q exceeds the requested scope", bad)
	}
	delete(s.devices, dc)
	scope = cmp.Or(scope, d.scope)
	return s.issueLocked(&family{user: d.user, clientID: client.ID, scope: scope}, scope), nil
}

// handleDevice is the RFC 8628 3.1 device authorization endpoint. A confidential client
// may omit its secret here, as at Google; it must send it when polling /token.
func (s *OAuthServer) handleDevice(w http.ResponseWriter, r *http.Request) {
	form, client, ok := s.clientRequest(w, r, &s.counts.Device, secretOptional)
	scope, bad := scopeWithin(form.Get("scope"), s.scopes)
	if ok && (bad != "" || scope == "") {
		writeOAuthError(w, errf(http.StatusBadRequest, "invalid_scope", "unknown or missing scope %q", bad))
	}
	if !ok || bad != "" || scope == "" {
		return
	}
	s.mu.Lock()
	dc, uc := s.newDeviceLocked(client.ID, scope)
	s.mu.Unlock()
	verify := s.URL + deviceVerifyPath
	writeJSON(w, http.StatusOK, map[string]any{"device_code": dc, "user_code": uc, "verification_uri": verify,
		"verification_uri_complete": verify + "?user_code=" + url.QueryEscape(uc),
		"expires_in":                int64(deviceCodeTTL / time.Second),
		"interval":                  max(1, int64((s.interval+time.Second-1)/time.Second))})
}

// handleDeviceVerify is the verification_uri page; tests approve with ApproveDevice.
func handleDeviceVerify(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html><html><body><h1>Connect a device</h1><p>Code: %s</p></body></html>\n",
		html.EscapeString(r.URL.Query().Get("user_code")))
}

// handleIntrospect is RFC 7662 token introspection, e.g. for Dovecot's oauth2 passdb
// (introspection_mode = post, which sends token, client_id and client_secret, the last two
// empty unless configured). Client credentials are optional but checked if sent.
func (s *OAuthServer) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	form, _, ok := s.clientRequest(w, r, &s.counts.Introspect, authIfSent)
	if !ok {
		return
	}
	resp := map[string]any{"active": false}
	s.mu.Lock()
	if a, ok := s.activeAccessLocked(form.Get("token")); ok {
		resp = map[string]any{"active": true, "username": a.fam.user, "sub": a.fam.user, "email": a.fam.user,
			"scope": a.scope, "client_id": a.fam.clientID, "exp": a.expires.Unix(), "iat": a.issued.Unix(),
			"token_type": "Bearer"}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

// handleRevoke is RFC 7009 revocation, with client authentication as at /token. Revoking
// a refresh token revokes its whole grant; revoking an access token only that token.
func (s *OAuthServer) handleRevoke(w http.ResponseWriter, r *http.Request) {
	form, client, ok := s.clientRequest(w, r, &s.counts.Revoke, secretRequired)
	if !ok {
		return
	}
	s.mu.Lock()
	tok, found := s.tokens[form.Get("token")]
	mine := found && tok.fam.clientID == client.ID
	switch {
	case mine && tok.refresh:
		tok.fam.revoked = true
	case mine:
		delete(s.tokens, form.Get("token"))
	}
	s.mu.Unlock()
	if found && !mine {
		writeOAuthError(w, errf(http.StatusBadRequest, "unauthorized_client", "the token was issued to another client"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK) // also for unknown tokens (RFC 7009 2.2)
}

// How clientRequest authenticates the client.
const (
	secretRequired = iota // as at /token
	secretOptional        // a confidential client may omit its secret
	authIfSent            // no client authentication needed, but checked if sent
)

// clientRequest counts a request to /device, /introspect or /revoke, parses its form,
// authenticates the client as mode says and, unless mode is secretOptional (/device),
// requires a token. On failure it writes the error and returns ok false.
func (s *OAuthServer) clientRequest(w http.ResponseWriter, r *http.Request, counter *int, mode int) (url.Values, OAuthClient, bool) {
	s.mu.Lock()
	*counter++
	s.mu.Unlock()
	form, e := parsePostForm(w, r)
	var client OAuthClient
	if e == nil && (mode != authIfSent || r.Header.Get("Authorization") != "" || form.Get("client_id") != "") {
		client, e = s.authenticateClient(r, form, mode == secretOptional)
	}
	if e == nil && mode != secretOptional && form.Get("token") == "" {
		e = errf(http.StatusBadRequest, "invalid_request", "Missing required parameter: token")
	}
	if e != nil {
		writeOAuthError(w, e)
	}
	return form, client, e == nil
}

// writeJSON writes v as a JSON response that must not be cached (RFC 6749 5.1).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a failed write means the client has gone
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	switch e.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="mailwright-test"`)
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

// writeErrorPage answers a browser with an HTML error page, for /authorize errors that must
// not be redirected (RFC 6749 4.1.2.1).
func writeErrorPage(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>Error %d</title></head><body><h1>Error %d: %s</h1><p>%s</p></body></html>\n",
		status, status, html.EscapeString(code), html.EscapeString(desc))
}
