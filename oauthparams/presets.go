package oauthparams

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Protocol is a mail protocol a preset has scopes and a server for.
type Protocol string

// The protocols presets know, in the order ScopeFor uses when given none.
const (
	ProtocolIMAP Protocol = "imap"
	ProtocolPOP3 Protocol = "pop3"
	ProtocolSMTP Protocol = "smtp"
)

// Protocols returns every protocol presets know, in a fixed order.
func Protocols() []Protocol { return []Protocol{ProtocolIMAP, ProtocolPOP3, ProtocolSMTP} }

// Connection security of a Server.
const (
	SecurityTLS      = "tls"      // TLS from the first byte (IMAPS 993, POP3S 995, SMTPS 465)
	SecuritySTARTTLS = "starttls" // plain connection upgraded with STARTTLS (submission 587)
)

// Server is a provider's mail server for one protocol.
type Server struct {
	Host     string
	Port     int
	Security string // SecurityTLS or SecuritySTARTTLS
}

// TenantPlaceholder is replaced by WithTenant in the URLs of presets that NeedsTenant.
const TenantPlaceholder = "{tenant}"

// Preset is what "Load Predefined Endpoints" fills in for one provider (or, for Microsoft,
// one authority). Presets carry no client ID or secret: every user registers their own app.
type Preset struct {
	ID   string // stable identifier stored in ParamSet.Preset, e.g. "google"
	Name string // shown to users, e.g. "Google (Gmail, Google Workspace)"

	AuthURL   string // authorization endpoint
	TokenURL  string // token endpoint
	DeviceURL string // device-authorization endpoint (RFC 8628); "" when the flow cannot be used for mail

	Scopes       map[Protocol][]string // scopes each protocol needs
	CommonScopes []string              // added whatever the protocols (e.g. Microsoft "offline_access")
	ExtraParams  map[string]string     // authorization-request parameters the provider needs

	SecretExpected bool                // whether the usual app registration comes with a client secret
	Servers        map[Protocol]Server // the provider's mail servers
	Notes          string              // what users trip over, and any value not verified
	NeedsTenant    bool                // URLs contain TenantPlaceholder: call WithTenant first
}

// Presets returns every provider preset, in display order. Each call builds fresh values:
// changing the result (its maps included) never affects another call.
func Presets() []Preset { return presetList() }

// FindPreset returns the preset with the given ID (case-insensitive).
func FindPreset(id string) (Preset, bool) {
	id = strings.TrimSpace(id)
	for _, pr := range presetList() {
		if strings.EqualFold(pr.ID, id) {
			return pr, true
		}
	}
	return Preset{}, false
}

// ScopeFor returns the scope for the given protocols (every protocol the preset knows when
// none is given) followed by CommonScopes: space-separated, each scope once, in protocol
// order (IMAP, POP3, SMTP) then common order. Protocols the preset lacks add nothing.
func (pr Preset) ScopeFor(protos ...Protocol) string {
	if len(protos) == 0 {
		protos = Protocols()
	} else {
		protos = slices.Clone(protos)
		slices.SortStableFunc(protos, func(a, b Protocol) int { return protocolRank(a) - protocolRank(b) })
	}
	var out []string
	add := func(scopes []string) {
		for _, s := range scopes {
			for _, tok := range strings.Fields(s) {
				if !slices.Contains(out, tok) {
					out = append(out, tok)
				}
			}
		}
	}
	for _, p := range protos {
		add(pr.Scopes[p])
	}
	add(pr.CommonScopes)
	return strings.Join(out, " ")
}

func protocolRank(p Protocol) int {
	if i := slices.Index(Protocols(), p); i >= 0 {
		return i
	}
	return len(Protocols())
}

var (
	tenantGUID   = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	tenantDomain = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

// ErrNoTenant is returned by WithTenant for a preset whose URLs have no tenant placeholder.
var ErrNoTenant = errors.New("this preset has no tenant to fill in")

// WithTenant returns pr with TenantPlaceholder in its URLs replaced by tenant: a directory
// (tenant) ID such as "72f988bf-86f1-41af-91ab-2d7cd011db47", a verified domain such as
// "contoso.onmicrosoft.com", or one of Microsoft's "common", "organizations", "consumers".
// Anything else (empty, slashes, "..", spaces) is refused, so the result is always a URL
// on the provider's own host.
func (pr Preset) WithTenant(tenant string) (Preset, error) {
	if !pr.NeedsTenant {
		return pr, ErrNoTenant
	}
	t := strings.TrimSpace(tenant)
	switch {
	case t == "":
		return pr, errors.New("tenant: must not be empty: enter the directory (tenant) ID or a domain such as contoso.onmicrosoft.com")
	case len(t) > 253 || !(tenantGUID.MatchString(t) || tenantDomain.MatchString(t) ||
		slices.Contains([]string{"common", "organizations", "consumers"}, strings.ToLower(t))):
		return pr, fmt.Errorf("tenant: %q is neither a directory (tenant) ID like 72f988bf-86f1-41af-91ab-2d7cd011db47 nor a domain like contoso.onmicrosoft.com", t)
	}
	c := pr.clone()
	for _, u := range []*string{&c.AuthURL, &c.TokenURL, &c.DeviceURL} {
		*u = strings.ReplaceAll(*u, TenantPlaceholder, t)
	}
	c.NeedsTenant = false
	return c, nil
}

func (pr Preset) clone() Preset {
	pr.Scopes = maps.Clone(pr.Scopes)
	for k, v := range pr.Scopes {
		pr.Scopes[k] = slices.Clone(v)
	}
	pr.CommonScopes = slices.Clone(pr.CommonScopes)
	pr.ExtraParams = maps.Clone(pr.ExtraParams)
	pr.Servers = maps.Clone(pr.Servers)
	return pr
}

// ApplyPreset loads pr into p: AuthURL, TokenURL and DeviceURL (cleared when the preset
// has none), Scope for the given protocols (all when none), the preset's ExtraParams merged
// over p's (preset keys win, other keys stay) and Preset = pr.ID. It never touches Name,
// Account, ClientID or Secrets, and does not set SignInNeeded: when the new scope asks for
// more than was granted, Status reports StateScopeChanged. A preset that NeedsTenant should
// go through WithTenant first; otherwise Validate reports the placeholder left in the URLs.
func (p *ParamSet) ApplyPreset(pr Preset, protos ...Protocol) {
	p.AuthURL, p.TokenURL, p.DeviceURL = pr.AuthURL, pr.TokenURL, pr.DeviceURL
	p.Scope = pr.ScopeFor(protos...)
	if len(pr.ExtraParams) > 0 && p.ExtraParams == nil {
		p.ExtraParams = make(map[string]string, len(pr.ExtraParams))
	}
	maps.Copy(p.ExtraParams, pr.ExtraParams)
	p.Preset = pr.ID
}
