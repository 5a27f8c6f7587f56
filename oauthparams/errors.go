package oauthparams

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/oauth2"
)

// ErrorKind says what went wrong with a request to a provider, in terms of what to do.
type ErrorKind string

// The kinds Explain tells apart.
const (
	KindInvalidGrant          ErrorKind = "invalid_grant"           // refresh token (or code) expired or revoked
	KindInvalidClient         ErrorKind = "invalid_client"          // client ID or secret not accepted
	KindInvalidScope          ErrorKind = "invalid_scope"           // a scope was refused
	KindWrongClientOrTenant   ErrorKind = "wrong_client_or_tenant"  // app not found in that directory
	KindWrongSecret           ErrorKind = "wrong_secret"            // secret wrong or expired
	KindSecretNotAllowed      ErrorKind = "secret_not_allowed"      // public client sent a secret
	KindSecretRequired        ErrorKind = "secret_required"         // confidential client sent none
	KindRedirectNotRegistered ErrorKind = "redirect_not_registered" // redirect URI unknown to the app
	KindAdminConsent          ErrorKind = "admin_consent"           // an administrator must consent
	KindMFARequired           ErrorKind = "mfa_required"            // interactive sign-in (MFA, ...) needed
	KindBlockedByPolicy       ErrorKind = "blocked_by_policy"       // Conditional Access or similar
	KindUnreachable           ErrorKind = "unreachable"             // DNS, connection refused, reset
	KindTLS                   ErrorKind = "tls"                     // certificate or handshake failure
	KindTimeout               ErrorKind = "timeout"                 // no answer in time
	KindServerError           ErrorKind = "server_error"            // HTTP 5xx, rate limiting
	KindBadResponse           ErrorKind = "bad_response"            // not an OAuth answer (HTML, ...)
	KindAccessDenied          ErrorKind = "access_denied"           // user declined, account blocked
	KindUnknown               ErrorKind = "unknown"                 // anything else
)

// ProviderError explains a failed request to a provider's endpoint. No field ever holds a
// token, secret, authorization code or request body: provider texts are cleaned first.
type ProviderError struct {
	Kind    ErrorKind
	Code    string // OAuth error code, e.g. "invalid_grant"; "" when the provider sent none
	SubCode string // provider-specific code, e.g. "AADSTS70008"
	URL     string // endpoint, without query, fragment or user info
	// Description is the provider's error_description (or, for answers that are not OAuth
	// errors, the status, content type and first words), cleaned and shortened.
	Description  string
	Advice       string // what the user should do, in words
	Temporary    bool   // retry later with backoff: network, timeout, 5xx, non-JSON answers
	SignInNeeded bool   // the set must be marked sign-in needed (invalid_grant, MFA, ...)
	Err          error  // the cause; its text may hold provider data, so show Error() instead

	stage string // "token endpoint" (default), "device authorization endpoint", "sign-in"
}

// Error renders the explanation on one line, e.g. "token endpoint
// https://login.microsoftonline.com/common/oauth2/v2.0/token: invalid_grant (AADSTS70008):
// the refresh token expired or was revoked — click Get Refresh Token".
func (e *ProviderError) Error() string {
	var b strings.Builder
	b.WriteString(cmp.Or(e.stage, "token endpoint"))
	if e.URL != "" {
		b.WriteString(" " + e.URL)
	}
	b.WriteString(": ")
	switch {
	case e.Code != "" && e.SubCode != "":
		b.WriteString(e.Code + " (" + e.SubCode + "): ")
	case e.Code != "" || e.SubCode != "":
		b.WriteString(e.Code + e.SubCode + ": ")
	}
	b.WriteString(cmp.Or(e.Advice, "the request failed"))
	return b.String()
}

// Unwrap returns the cause.
func (e *ProviderError) Unwrap() error { return e.Err }

// Explain turns an error from golang.org/x/oauth2 or net/http into a ProviderError that
// says what to do; nil for nil. See ExplainAt.
func Explain(err error) *ProviderError { return ExplainAt("", err) }

// ExplainAt is Explain for an error from a request to endpoint, whose URL is used when the
// error does not carry one (oauth2's "cannot parse json" errors, for example).
func ExplainAt(endpoint string, err error) *ProviderError {
	if err == nil {
		return nil
	}
	if pe, ok := errors.AsType[*ProviderError](err); ok {
		c := *pe
		if c.URL == "" {
			c.URL = cleanURL(endpoint)
		}
		return &c
	}
	e := &ProviderError{Kind: KindUnknown, URL: cleanURL(endpoint), Err: err}
	if ue, ok := errors.AsType[*url.Error](err); ok && ue.URL != "" {
		e.URL = cleanURL(ue.URL)
	}
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		e.fromRetrieveError(re)
	} else if ur, ok := errors.AsType[*UnexpectedResponseError](err); ok {
		e.URL = cmp.Or(cleanURL(ur.URL), e.URL)
		e.Kind, e.Temporary = KindBadResponse, true
		e.Description = fmt.Sprintf("HTTP %d, %s: %q", ur.StatusCode, cmp.Or(ur.ContentType, "no content type"), ur.Snippet)
		e.Advice = "answered with a web page (" + e.Description + ") instead of JSON: a proxy, captive portal or wrong URL is in the way; try again later or check the URL"
	} else {
		e.fromTransportError(err)
	}
	if p := strings.ToLower(e.URL); e.stage == "" && (strings.Contains(p, "devicecode") || strings.Contains(p, "/device")) {
		e.stage = "device authorization endpoint"
	}
	return e
}

func (e *ProviderError) fromRetrieveError(re *oauth2.RetrieveError) {
	status, ctype := 0, ""
	if r := re.Response; r != nil {
		status, ctype = r.StatusCode, r.Header.Get("Content-Type")
		if r.Request != nil && r.Request.URL != nil {
			e.URL = cleanURL(r.Request.URL.String())
		}
	}
	sub := aadstsCode(re.Body, re.ErrorDescription)
	if re.ErrorCode != "" || sub != "" {
		e.classify(re.ErrorCode, re.ErrorDescription, sub, status)
		return
	}
	// Not an OAuth error answer: describe what came back instead.
	mt, _, _ := mime.ParseMediaType(ctype)
	e.Description = fmt.Sprintf("HTTP %d, %s: %q", status, cmp.Or(mt, "no content type"), bodySnippet(mt, re.Body))
	isJSON := json.Valid(re.Body)
	switch {
	case status >= 500:
		e.Kind, e.Temporary = KindServerError, true
		e.Advice = "the server failed (" + e.Description + "); try again later"
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		e.Kind, e.Temporary = KindServerError, true
		e.Advice = "the provider is limiting requests (" + e.Description + "); try again later"
	case status == http.StatusUnauthorized:
		e.Kind = KindInvalidClient
		e.Advice = "the client credentials were refused (" + e.Description + "): check the Client ID and Client Secret"
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusGone:
		e.Kind = KindBadResponse
		e.Advice = "no OAuth endpoint at this address (" + e.Description + "): check the URL or use Load Predefined Endpoints"
	default:
		e.Kind, e.Temporary = KindBadResponse, !isJSON
		e.Advice = "the answer is not an OAuth response (" + e.Description + "): a proxy or wrong URL may be in the way; check the URL"
	}
}

func (e *ProviderError) fromTransportError(err error) {
	e.Temporary = true
	msg := err.Error()
	switch {
	case isType[x509.UnknownAuthorityError](err):
		e.Kind, e.Temporary = KindTLS, false
		e.Advice = "the server's TLS certificate is not signed by an authority this computer trusts: a proxy or antivirus may be intercepting HTTPS, or the system's CA certificates are missing"
	case isType[x509.HostnameError](err):
		e.Kind, e.Temporary = KindTLS, false
		e.Advice = "the server's TLS certificate belongs to another host name: check the URL, or whether something intercepts the connection"
	case isType[x509.CertificateInvalidError](err):
		e.Kind, e.Temporary = KindTLS, false
		e.Advice = "the server's TLS certificate is invalid or expired: check this computer's date and time"
	case isType[*tls.CertificateVerificationError](err) || isType[tls.AlertError](err) || isType[tls.RecordHeaderError](err) || strings.Contains(msg, "tls: "):
		e.Kind, e.Temporary = KindTLS, false
		e.Advice = "the TLS handshake failed: check that the URL starts with https:// and points at the provider, and whether a proxy interferes"
	case errors.Is(err, context.Canceled):
		e.Kind, e.Temporary = KindUnknown, false
		e.Advice = "the request was cancelled"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		e.Kind = KindTimeout
		e.Advice = "no answer in time: the provider or the network is slow or down; try again later (check proxy and firewall settings if it persists)"
	case isType[*net.DNSError](err):
		e.Kind = KindUnreachable
		e.Advice = "the host name could not be resolved: check the URL and the network connection"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Kind = KindUnreachable
		e.Advice = "connection refused: nothing answers at this address and port; check the URL"
	case errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH):
		e.Kind = KindUnreachable
		e.Advice = "the network or host is unreachable: check the network connection"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		e.Kind = KindUnreachable
		e.Advice = "the connection was closed before an answer came; try again later"
	case strings.Contains(msg, "oauth2: cannot parse json") || strings.Contains(msg, "oauth2: cannot parse response"):
		e.Kind = KindBadResponse
		e.Advice = "the answer is not JSON (often a proxy or captive-portal page); try again later or check the URL"
	case strings.Contains(msg, "oauth2: server response missing access_token"):
		e.Kind, e.Temporary = KindBadResponse, false
		e.Advice = "the answer contains no access token: check that the Token URL is the provider's token endpoint"
	case strings.Contains(msg, "refresh token is not set"):
		e.Kind, e.Temporary, e.SignInNeeded = KindInvalidGrant, false, true
		e.Advice = "there is no refresh token yet: click Get Refresh Token"
	case isType[*url.Error](err) || isType[*net.OpError](err):
		e.Kind = KindUnreachable
		e.Advice = "could not reach the server: " + cleanText(unwrapURLError(err), 160)
	default:
		e.Kind, e.Temporary = KindUnknown, false
		e.Advice = cleanText(msg, 200)
	}
}

func isType[T error](err error) bool { _, ok := errors.AsType[T](err); return ok }

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

func unwrapURLError(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}

const (
	adviceRevoked  = "the refresh token expired or was revoked — click Get Refresh Token (Google apps in Testing mode expire tokens after 7 days)"
	adviceClient   = "the provider did not accept the client: check the Client ID and Client Secret against the app registration"
	adviceRegister = "the redirect URI is not registered for this app: register http://localhost in the app's \"Mobile and desktop applications\" platform (Google: use a Desktop app client)"
	adviceSecretIn = "this app needs a client secret: enter it, or for Microsoft turn on \"Allow public client flows\" in the app's Authentication settings"
)

// classify sets Kind, Advice, Temporary and SignInNeeded from an OAuth error answer.
func (e *ProviderError) classify(code, desc, sub string, status int) {
	e.Code, e.SubCode, e.Description = cleanCode(code), sub, cleanDescription(desc)
	set := func(k ErrorKind, signIn bool, advice string) { e.Kind, e.SignInNeeded, e.Advice = k, signIn, advice }
	if sub != "" && e.aadsts(strings.TrimPrefix(sub, "AADSTS"), desc, set) {
		return
	}
	ldesc := strings.ToLower(desc)
	switch e.Code {
	case "invalid_grant":
		advice := adviceRevoked
		if strings.Contains(ldesc, "code") && !strings.Contains(ldesc, "refresh") {
			advice = "the sign-in code expired, was already used or does not match — click Get Refresh Token and finish signing in within a few minutes"
		}
		set(KindInvalidGrant, true, advice)
	case "expired_token":
		set(KindInvalidGrant, true, "the device code expired before sign-in finished — start the device sign-in again")
	case "invalid_client", "invalid_request", "unauthorized_client":
		switch {
		case strings.Contains(ldesc, "client_secret") && strings.Contains(ldesc, "missing"):
			set(KindSecretRequired, false, adviceSecretIn)
		case strings.Contains(ldesc, "redirect_uri"):
			set(KindRedirectNotRegistered, false, adviceRegister)
		case e.Code == "invalid_client" && strings.Contains(ldesc, "not found"):
			set(KindInvalidClient, false, "the provider does not know this Client ID: copy it again from the app registration")
		case e.Code == "invalid_client":
			set(KindInvalidClient, false, adviceClient)
		case e.Code == "unauthorized_client":
			set(KindInvalidClient, false, "this client may not use this kind of sign-in: the refresh token may belong to another Client ID, or the app registration does not allow this flow")
		default:
			set(KindUnknown, false, "the provider refused the request: "+cmp.Or(e.Description, "invalid_request"))
		}
	case "redirect_uri_mismatch":
		set(KindRedirectNotRegistered, false, adviceRegister)
	case "invalid_scope":
		set(KindInvalidScope, false, scopeAdvice(desc))
	case "access_denied":
		set(KindAccessDenied, false, "access was denied: sign-in was cancelled or permission declined — click Get Refresh Token and allow access")
	case "consent_required":
		set(KindAdminConsent, true, "consent is needed: click Get Refresh Token and accept; if that is not offered, an administrator must grant consent")
	case "interaction_required", "login_required":
		set(KindMFARequired, true, "the provider wants an interactive sign-in (for example multi-factor authentication) — click Get Refresh Token")
	case "server_error", "temporarily_unavailable":
		set(KindServerError, false, "the provider reported a temporary failure; try again later")
		e.Temporary = true
	default:
		set(KindUnknown, false, "the provider answered "+cmp.Or(e.Code, "an error")+": "+cmp.Or(e.Description, "no description"))
	}
	if status >= 500 && e.Kind == KindUnknown {
		e.Kind, e.Temporary = KindServerError, true
	}
}

// aadsts explains Microsoft Entra ID error numbers; it reports false for unknown ones.
func (e *ProviderError) aadsts(n, desc string, set func(ErrorKind, bool, string)) bool {
	switch n {
	case "70008", "700082", "700084", "50173", "70043", "70000", "54005":
		advice := "the refresh token expired or was revoked — click Get Refresh Token"
		if n == "50173" {
			advice = "the sign-in expired because the password was changed or reset — click Get Refresh Token"
		}
		set(KindInvalidGrant, true, advice)
	case "700016":
		set(KindWrongClientOrTenant, false, "the application (Client ID) was not found in this directory: check the Client ID, and use the tenant where the app is registered (or the common authority for multi-tenant apps)")
	case "90002", "90072", "50020", "50194", "500208":
		set(KindWrongClientOrTenant, false, "the account or app does not belong to this tenant: for single-tenant apps use the tenant-specific preset (microsoft-tenant); for personal accounts use consumers or common with an app registered for personal accounts")
	case "7000215":
		set(KindWrongSecret, false, "the client secret is wrong — paste the secret's Value, not its Secret ID")
	case "7000222":
		set(KindWrongSecret, false, "the client secret has expired — create a new one under Certificates & secrets and paste its Value")
	case "700025":
		set(KindSecretNotAllowed, false, "this app is registered as a public client — clear the Client Secret field")
	case "7000218":
		set(KindSecretRequired, false, adviceSecretIn)
	case "50011", "500113":
		set(KindRedirectNotRegistered, false, adviceRegister)
	case "65001", "90094", "90095":
		set(KindAdminConsent, true, "an administrator must grant consent to this app (API permissions → Grant admin consent), then click Get Refresh Token")
	case "65004":
		set(KindAccessDenied, false, "consent was declined — click Get Refresh Token and accept the requested permissions")
	case "50076", "50079", "50158", "50074":
		set(KindMFARequired, true, "multi-factor authentication is required — click Get Refresh Token and sign in interactively")
	case "53003", "53000", "53001", "53002", "530032":
		set(KindBlockedByPolicy, false, "access was blocked by a Conditional Access policy — ask your administrator to allow this app, device or location")
	case "50053", "50055", "50057", "50034":
		set(KindAccessDenied, true, "the account is locked, disabled or its password expired — fix it by signing in on the provider's website, then click Get Refresh Token")
	case "70011":
		set(KindInvalidScope, false, scopeAdvice(desc))
	case "7000112", "700024":
		set(KindInvalidClient, false, adviceClient)
	default:
		return false
	}
	return true
}

var (
	aadstsInText  = regexp.MustCompile(`AADSTS(\d{4,7})`)
	scopePatterns = []*regexp.Regexp{
		regexp.MustCompile(`(?i)invalid=\[([^\]]+)\]`),
		regexp.MustCompile(`(?i)scopes?\s+'([^']+)'`),
		regexp.MustCompile(`(?i)scopes?\s+"([^"]+)"`),
		regexp.MustCompile(`(?i)the scope (.+?) (?:is|are) not valid`),
		regexp.MustCompile(`(?i)scopes?:\s*(\S+)`),
	}
	tokenRun   = regexp.MustCompile(`[A-Za-z0-9._~+/=-]{16,}`)
	guidLike   = regexp.MustCompile(`^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$`)
	secretKV   = regexp.MustCompile(`(?i)\b(code|refresh_token|access_token|id_token|client_secret|client_assertion|code_verifier|assertion|password|token)(["']?\s*[=:]\s*["']?)([^&\s"',;}]{4,})`)
	htmlTitle  = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlTag    = regexp.MustCompile(`(?s)<[^>]*>`)
	codeFilter = regexp.MustCompile(`[^A-Za-z0-9_.:-]`)
)

// aadstsCode returns "AADSTSnnnn" from a Microsoft answer: the first of error_codes in a
// JSON body, else an AADSTS number in the description.
func aadstsCode(body []byte, desc string) string {
	var v struct {
		Codes []int64 `json:"error_codes"`
	}
	if json.Unmarshal(body, &v) == nil && len(v.Codes) > 0 && v.Codes[0] > 0 {
		return "AADSTS" + strconv.FormatInt(v.Codes[0], 10)
	}
	if m := aadstsInText.FindStringSubmatch(desc); m != nil {
		return "AADSTS" + m[1]
	}
	return ""
}

func scopeAdvice(desc string) string {
	if name := scopeFromDescription(desc); name != "" {
		return fmt.Sprintf("the provider refused the scope %q: check the Scope field against the provider's documentation", name)
	}
	return "the provider refused the requested scope: check the Scope field against the provider's documentation"
}

func scopeFromDescription(desc string) string {
	for _, re := range scopePatterns {
		if m := re.FindStringSubmatch(desc); m != nil && !strings.EqualFold(m[1], "scope") {
			return cleanText(m[1], 150)
		}
	}
	return ""
}

// ExplainRedirectError explains an error the provider sent to the sign-in redirect
// (error, error_description); nil when q has no error. Codes and descriptions are cleaned
// like token-endpoint answers; error_uri is not shown, since the redirect could be forged
// to point anywhere.
func ExplainRedirectError(q url.Values) error {
	code := strings.TrimSpace(q.Get("error"))
	if code == "" {
		return nil
	}
	desc := q.Get("error_description")
	e := &ProviderError{stage: "sign-in", Err: errors.New("sign-in redirect returned error " + cleanCode(code))}
	e.classify(code, desc, aadstsCode(nil, desc), 0)
	if e.Kind == KindUnknown && e.Description == "" {
		e.Advice = "the provider refused the sign-in (" + cmp.Or(e.Code, "error") + "): check Client ID, Scope and Redirect URL, then click Get Refresh Token"
	}
	return e
}

// RecordRefreshError records a failed sign-in or refresh in p and returns its explanation:
// LastError gets the one-line message, and when the user must sign in again SignInNeeded
// is set (with MarkTokenRevoked for invalid_grant). Temporary failures leave SignInNeeded.
func (p *ParamSet) RecordRefreshError(err error) *ProviderError {
	pe := ExplainAt(p.TokenURL, err)
	if pe == nil {
		return nil
	}
	p.LastError = pe.Error()
	switch {
	case pe.Kind == KindInvalidGrant:
		p.MarkTokenRevoked(pe.Advice)
	case pe.SignInNeeded:
		p.MarkSignInNeeded(pe.Advice)
	}
	return pe
}
