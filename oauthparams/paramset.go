package oauthparams

import "time"

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
