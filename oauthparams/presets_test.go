package oauthparams

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// presetUsable returns pr ready to apply: tenant presets get a sample tenant.
func presetUsable(t *testing.T, pr Preset) Preset {
	t.Helper()
	if !pr.NeedsTenant {
		return pr
	}
	c, err := pr.WithTenant("contoso.onmicrosoft.com")
	if err != nil {
		t.Fatalf("%s: WithTenant: %v", pr.ID, err)
	}
	return c
}

func TestPresetsCoverDistinctProviders(t *testing.T) {
	hosts := map[string]bool{}
	ids := map[string]bool{}
	for _, pr := range Presets() {
		if ids[pr.ID] {
			t.Errorf("duplicate preset ID %q", pr.ID)
		}
		ids[pr.ID] = true
		u, err := url.Parse(pr.AuthURL)
		if err != nil {
			t.Fatalf("%s: %v", pr.ID, err)
		}
		hosts[u.Hostname()] = true
	}
	// Distinct authorization servers: each one is a provider users pick separately.
	if len(hosts) < 11 {
		t.Errorf("presets cover %d authorization servers, want >= 11: %v", len(hosts), hosts)
	}
	for _, id := range []string{"google", "microsoft-common", "microsoft-consumers", "microsoft-organizations",
		"microsoft-tenant", "yahoo", "aol", "fastmail", "yandex", "mailru", "zoho", "comcast"} {
		if !ids[id] {
			t.Errorf("no preset %q", id)
		}
	}
}

func TestPresetsAreValid(t *testing.T) {
	for _, pr := range Presets() {
		t.Run(pr.ID, func(t *testing.T) {
			if pr.Name == "" || pr.Notes == "" {
				t.Error("preset needs a Name and Notes")
			}
			pr = presetUsable(t, pr)
			p := ParamSet{Name: "x", ClientID: "id"}
			p.ApplyPreset(pr)
			if err := p.Validate(); err != nil {
				t.Fatalf("applied preset does not validate:\n%v", err)
			}
			for _, raw := range []string{pr.AuthURL, pr.TokenURL, pr.DeviceURL} {
				if raw != "" && !strings.HasPrefix(raw, "https://") {
					t.Errorf("endpoint %q is not https", raw)
				}
			}
			imap, smtp := pr.Servers[ProtocolIMAP], pr.Servers[ProtocolSMTP]
			if imap.Host == "" || imap.Port != 993 || imap.Security != SecurityTLS {
				t.Errorf("IMAP server = %+v, want TLS on 993", imap)
			}
			switch {
			case smtp.Host == "":
				t.Error("no SMTP server")
			case smtp.Port == 465 && smtp.Security != SecurityTLS, smtp.Port == 587 && smtp.Security != SecuritySTARTTLS,
				smtp.Port != 465 && smtp.Port != 587:
				t.Errorf("SMTP server = %+v: want 465/tls or 587/starttls", smtp)
			}
			if pop, ok := pr.Servers[ProtocolPOP3]; ok && (pop.Port != 995 || pop.Security != SecurityTLS) {
				t.Errorf("POP3 server = %+v, want TLS on 995", pop)
			}
			for proto := range pr.Servers {
				if len(pr.Scopes[proto]) == 0 {
					t.Errorf("server for %s but no scope for it", proto)
				}
			}
			for proto := range pr.Scopes {
				if _, ok := pr.Servers[proto]; !ok {
					t.Errorf("scope for %s but no server", proto)
				}
			}
		})
	}
}

func TestGoogleAndMicrosoftPresets(t *testing.T) {
	g, ok := FindPreset("GOOGLE")
	if !ok {
		t.Fatal("FindPreset is not case-insensitive")
	}
	if g.ExtraParams["access_type"] != "offline" || g.ExtraParams["prompt"] != "consent" {
		t.Errorf("google ExtraParams = %v", g.ExtraParams)
	}
	if g.ScopeFor() != "https://mail.google.com/" || !g.SecretExpected {
		t.Errorf("google scope %q, secret expected %v", g.ScopeFor(), g.SecretExpected)
	}
	if g.DeviceURL != "" {
		t.Error("google device flow does not allow the mail scope; DeviceURL must stay empty")
	}
	for _, id := range []string{"microsoft-common", "microsoft-consumers", "microsoft-organizations"} {
		ms, _ := FindPreset(id)
		authority := strings.TrimPrefix(id, "microsoft-")
		if ms.NeedsTenant || ms.AuthURL != "https://login.microsoftonline.com/"+authority+"/oauth2/v2.0/authorize" ||
			ms.TokenURL != "https://login.microsoftonline.com/"+authority+"/oauth2/v2.0/token" ||
			ms.DeviceURL != "https://login.microsoftonline.com/"+authority+"/oauth2/v2.0/devicecode" || ms.SecretExpected {
			t.Errorf("%s = %+v", id, ms)
		}
	}
	if _, ok := FindPreset("nope"); ok {
		t.Error("FindPreset found an unknown ID")
	}
}

func TestWithTenant(t *testing.T) {
	pr, _ := FindPreset("microsoft-tenant")
	if !pr.NeedsTenant || !strings.Contains(pr.AuthURL, TenantPlaceholder) {
		t.Fatalf("microsoft-tenant = %+v", pr)
	}
	for _, tenant := range []string{"72f988bf-86f1-41af-91ab-2d7cd011db47", "contoso.onmicrosoft.com", " contoso.com ", "organizations"} {
		got, err := pr.WithTenant(tenant)
		if err != nil {
			t.Errorf("WithTenant(%q): %v", tenant, err)
			continue
		}
		want := "https://login.microsoftonline.com/" + strings.TrimSpace(tenant) + "/oauth2/v2.0/"
		if got.AuthURL != want+"authorize" || got.TokenURL != want+"token" || got.DeviceURL != want+"devicecode" || got.NeedsTenant {
			t.Errorf("WithTenant(%q) = %+v", tenant, got)
		}
	}
	for _, bad := range []string{"", "  ", "../x", "a/b", "contoso", "con toso.com", "x.com/../y", `a\b.com`, "-bad-.com",
		"72f988bf-86f1-41af-91ab-2d7cd011db4", "evil.com?x=", "evil.com#", "%2e%2e"} {
		if _, err := pr.WithTenant(bad); err == nil {
			t.Errorf("WithTenant(%q) accepted", bad)
		}
	}
	if got, _ := pr.WithTenant(""); got.AuthURL != pr.AuthURL {
		t.Error("a refused tenant changed the preset")
	}
	g, _ := FindPreset("google")
	if _, err := g.WithTenant("contoso.com"); !errors.Is(err, ErrNoTenant) {
		t.Errorf("WithTenant on google = %v, want ErrNoTenant", err)
	}
}

func TestScopeFor(t *testing.T) {
	pr := Preset{
		Scopes: map[Protocol][]string{
			ProtocolIMAP: {"imap", "shared"},
			ProtocolPOP3: {"pop shared"},
			ProtocolSMTP: {"smtp"},
		},
		CommonScopes: []string{"offline_access", "imap"},
	}
	tests := []struct {
		protos []Protocol
		want   string
	}{
		{nil, "imap shared pop smtp offline_access"},
		{[]Protocol{ProtocolSMTP, ProtocolIMAP}, "imap shared smtp offline_access"},
		{[]Protocol{ProtocolSMTP, ProtocolSMTP}, "smtp offline_access imap"},
		{[]Protocol{"carddav"}, "offline_access imap"},
	}
	for _, tt := range tests {
		if got := pr.ScopeFor(tt.protos...); got != tt.want {
			t.Errorf("ScopeFor(%v) = %q, want %q", tt.protos, got, tt.want)
		}
	}
	ms, _ := FindPreset("microsoft-common")
	if got := ms.ScopeFor(ProtocolIMAP, ProtocolSMTP); got != "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access" {
		t.Errorf("microsoft IMAP+SMTP scope = %q", got)
	}
	y, _ := FindPreset("yandex")
	if got := y.ScopeFor(ProtocolPOP3); got != "" {
		t.Errorf("yandex has no POP3 OAuth, ScopeFor(POP3) = %q", got)
	}
}

func TestPresetsAreIndependentCopies(t *testing.T) {
	a := Presets()
	a[0].Name = "changed"
	a[0].ExtraParams["prompt"] = "changed"
	a[0].Scopes[ProtocolIMAP][0] = "changed"
	a[0].Servers[ProtocolIMAP] = Server{Host: "changed"}
	for _, pr := range a {
		for k := range pr.Servers {
			delete(pr.Servers, k)
		}
		pr.CommonScopes = append(pr.CommonScopes[:0], "changed")
	}
	b := Presets()
	g, _ := FindPreset(b[0].ID)
	for _, pr := range []Preset{b[0], g} {
		if pr.Name == "changed" || pr.ExtraParams["prompt"] == "changed" || pr.Scopes[ProtocolIMAP][0] == "changed" ||
			pr.Servers[ProtocolIMAP].Host == "changed" {
			t.Errorf("mutating one Presets() result changed another: %+v", pr)
		}
	}
	for _, pr := range b {
		if len(pr.Servers) == 0 || (len(pr.CommonScopes) > 0 && pr.CommonScopes[0] == "changed") {
			t.Errorf("%s: mutation leaked into a later call", pr.ID)
		}
	}
	ms, _ := FindPreset("microsoft-tenant")
	withT, _ := ms.WithTenant("contoso.com")
	withT.Scopes[ProtocolIMAP][0] = "changed"
	if ms.Scopes[ProtocolIMAP][0] == "changed" {
		t.Error("WithTenant shares scope slices with its receiver")
	}
}
