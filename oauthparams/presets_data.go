package oauthparams

// presetList builds the provider presets afresh on every call, so no caller can change
// what another sees. Values were checked against provider documentation and widely used
// mail clients (Thunderbird, FairEmail); what could not be verified is said in Notes.
func presetList() []Preset {
	tls := func(host string, port int) Server { return Server{Host: host, Port: port, Security: SecurityTLS} }
	starttls := func(host string, port int) Server { return Server{Host: host, Port: port, Security: SecuritySTARTTLS} }
	same := func(scope ...string) map[Protocol][]string {
		return map[Protocol][]string{ProtocolIMAP: scope, ProtocolPOP3: scope, ProtocolSMTP: scope}
	}

	const msRegister = "Register the app in Microsoft Entra ID under \"Mobile and desktop applications\" with the redirect URI http://localhost and leave the client secret empty (public client); for device sign-in turn on \"Allow public client flows\". Add the delegated Office 365 Exchange Online permissions IMAP.AccessAsUser.All, POP.AccessAsUser.All and SMTP.Send; SMTP AUTH must be enabled for the mailbox."
	microsoft := func(id, name, tenant, notes string) Preset {
		base := "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/"
		smtp := starttls("smtp.office365.com", 587)
		if tenant == "consumers" {
			smtp = starttls("smtp-mail.outlook.com", 587)
		}
		return Preset{
			ID: id, Name: name,
			AuthURL: base + "authorize", TokenURL: base + "token", DeviceURL: base + "devicecode",
			Scopes: map[Protocol][]string{
				ProtocolIMAP: {"https://outlook.office.com/IMAP.AccessAsUser.All"},
				ProtocolPOP3: {"https://outlook.office.com/POP.AccessAsUser.All"},
				ProtocolSMTP: {"https://outlook.office.com/SMTP.Send"},
			},
			CommonScopes: []string{"offline_access"},
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls("outlook.office365.com", 993),
				ProtocolPOP3: tls("outlook.office365.com", 995),
				ProtocolSMTP: smtp,
			},
			Notes:       notes + " " + msRegister,
			NeedsTenant: tenant == TenantPlaceholder,
		}
	}
	// Sovereign Microsoft clouds: own identity service, own resource host and mail servers.
	sovereign := func(id, name, login, resource, imap, smtpHost, notes string) Preset {
		base := "https://" + login + "/" + TenantPlaceholder + "/oauth2/v2.0/"
		return Preset{
			ID: id, Name: name,
			AuthURL: base + "authorize", TokenURL: base + "token", DeviceURL: base + "devicecode",
			Scopes: map[Protocol][]string{
				ProtocolIMAP: {"https://" + resource + "/IMAP.AccessAsUser.All"},
				ProtocolPOP3: {"https://" + resource + "/POP.AccessAsUser.All"},
				ProtocolSMTP: {"https://" + resource + "/SMTP.Send"},
			},
			CommonScopes: []string{"offline_access"},
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls(imap, 993),
				ProtocolPOP3: tls(imap, 995),
				ProtocolSMTP: starttls(smtpHost, 587),
			},
			Notes:       notes + " Register the app in that cloud's own Entra ID portal, as a public client like in the commercial cloud.",
			NeedsTenant: true,
		}
	}

	return []Preset{
		{
			ID: "google", Name: "Google (Gmail, Google Workspace)",
			AuthURL:  "https://accounts.google.com/o/oauth2/v2/auth",
			TokenURL: "https://oauth2.googleapis.com/token",
			// DeviceURL left empty on purpose: Google's device flow (https://oauth2.googleapis.com/device/code)
			// accepts only a short list of scopes, and https://mail.google.com/ is not among them.
			Scopes:         same("https://mail.google.com/"),
			ExtraParams:    map[string]string{"access_type": "offline", "prompt": "consent"},
			SecretExpected: true,
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls("imap.gmail.com", 993),
				ProtocolPOP3: tls("pop.gmail.com", 995),
				ProtocolSMTP: tls("smtp.gmail.com", 465),
			},
			Notes: "Create an OAuth client of type \"Desktop app\" in Google Cloud Console; its client secret is required. While the app's publishing status is \"Testing\", refresh tokens expire after 7 days and only listed test users can sign in: publish the app to keep tokens. The mail scope is restricted, so an unverified app shows a warning. Device sign-in is not offered because Google's device flow does not allow the mail scope. SMTP also works on smtp.gmail.com:587 with STARTTLS.",
		},
		microsoft("microsoft-common", "Microsoft (work, school and personal accounts)", "common",
			"The \"common\" authority accepts work/school and personal accounts; the app must be registered for both account types."),
		microsoft("microsoft-consumers", "Microsoft (personal: Outlook.com, Hotmail, Live)", "consumers",
			"Personal Microsoft accounts only; register the app for \"personal Microsoft accounts\". Outlook.com's SMTP server is smtp-mail.outlook.com:587 (STARTTLS)."),
		microsoft("microsoft-organizations", "Microsoft 365 (any work or school account)", "organizations",
			"Any Microsoft Entra ID (work or school) account; the app must be multi-tenant, and an administrator may have to grant consent."),
		microsoft("microsoft-tenant", "Microsoft 365 (one organization: tenant ID)", TenantPlaceholder,
			"Only accounts of one organization: enter its directory (tenant) ID or domain. Use this for single-tenant app registrations (error AADSTS50194 with common)."),
		sovereign("microsoft-usgov", "Microsoft 365 US Government (GCC High, DoD)", "login.microsoftonline.us",
			"outlook.office365.us", "outlook.office365.us", "smtp.office365.us",
			"Unverified: the POP.AccessAsUser.All and SMTP.Send scopes under https://outlook.office365.us and the SMTP host smtp.office365.us follow the commercial pattern; GCC (moderate) tenants use the commercial Microsoft presets instead."),
		sovereign("microsoft-china", "Microsoft 365 operated by 21Vianet (China)", "login.partner.microsoftonline.cn",
			"partner.outlook.cn", "partner.outlook.cn", "smtp.partner.outlook.cn",
			"Unverified: the POP and SMTP scopes under https://partner.outlook.cn, the POP3 host partner.outlook.cn:995 and the SMTP host smtp.partner.outlook.cn follow the commercial pattern; check them against the 21Vianet documentation."),
		{
			ID: "yahoo", Name: "Yahoo Mail",
			AuthURL:        "https://api.login.yahoo.com/oauth2/request_auth",
			TokenURL:       "https://api.login.yahoo.com/oauth2/get_token",
			Scopes:         same("mail-w"),
			SecretExpected: true,
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls("imap.mail.yahoo.com", 993),
				ProtocolPOP3: tls("pop.mail.yahoo.com", 995),
				ProtocolSMTP: tls("smtp.mail.yahoo.com", 465),
			},
			Notes: "Yahoo grants the mail scopes (mail-r read-only, mail-w read/write/send) only to apps it has approved: request \"Mail\" API access for your app first. Unverified: whether Yahoo's app registration accepts an http://localhost redirect URI; if it does not, set a registered Redirect URL.",
		},
		{
			ID: "aol", Name: "AOL Mail",
			AuthURL:        "https://api.login.aol.com/oauth2/request_auth",
			TokenURL:       "https://api.login.aol.com/oauth2/get_token",
			Scopes:         same("mail-w"),
			SecretExpected: true,
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls("imap.aol.com", 993),
				ProtocolPOP3: tls("pop.aol.com", 995),
				ProtocolSMTP: tls("smtp.aol.com", 465),
			},
			Notes: "AOL shares Yahoo's identity service but needs its own app registration, and the mail scope must be approved for the app, as at Yahoo. Unverified: whether http://localhost is accepted as redirect URI.",
		},
		{
			ID: "fastmail", Name: "Fastmail",
			AuthURL:  "https://api.fastmail.com/oauth/authorize",
			TokenURL: "https://api.fastmail.com/oauth/refresh",
			Scopes: map[Protocol][]string{
				ProtocolIMAP: {"https://www.fastmail.com/dev/protocol-imap"},
				ProtocolPOP3: {"https://www.fastmail.com/dev/protocol-pop"},
				ProtocolSMTP: {"https://www.fastmail.com/dev/protocol-smtp"},
			},
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls("imap.fastmail.com", 993),
				ProtocolPOP3: tls("pop.fastmail.com", 995),
				ProtocolSMTP: tls("smtp.fastmail.com", 465),
			},
			Notes: "Fastmail issues OAuth client IDs to registered applications only (public clients with PKCE, no secret); the token endpoint really is /oauth/refresh. Unverified: how to obtain a client ID as an individual; Fastmail app passwords are the documented alternative.",
		},
		{
			ID: "yandex", Name: "Yandex Mail",
			AuthURL:  "https://oauth.yandex.com/authorize",
			TokenURL: "https://oauth.yandex.com/token",
			Scopes: map[Protocol][]string{
				ProtocolIMAP: {"mail:imap_full"},
				ProtocolSMTP: {"mail:smtp"},
			},
			SecretExpected: true,
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls("imap.yandex.com", 993),
				ProtocolSMTP: tls("smtp.yandex.com", 465),
			},
			Notes: "Register the app at oauth.yandex.com with the Yandex Mail permissions for reading and deleting messages over IMAP (mail:imap_full; mail:imap_ro is read-only) and for sending over SMTP (mail:smtp), and add the redirect URI there. IMAP access must be enabled in Yandex Mail settings. POP3 does not accept OAuth.",
		},
		{
			ID: "mailru", Name: "Mail.ru",
			AuthURL:        "https://oauth.mail.ru/login",
			TokenURL:       "https://oauth.mail.ru/token",
			Scopes:         map[Protocol][]string{ProtocolIMAP: {"mail.imap"}, ProtocolSMTP: {"mail.imap"}},
			SecretExpected: true,
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls("imap.mail.ru", 993),
				ProtocolSMTP: tls("smtp.mail.ru", 465),
			},
			Notes: "The scope mail.imap covers IMAP and SMTP; POP3 does not accept OAuth. Register the app with Mail.ru OAuth (documentation at oauth.mail.ru/docs). Some older clients use the o2.mail.ru/login and o2.mail.ru/token endpoints instead.",
		},
		{
			ID: "zoho", Name: "Zoho Mail (US data centre)",
			AuthURL:  "https://accounts.zoho.com/oauth/v2/auth",
			TokenURL: "https://accounts.zoho.com/oauth/v2/token",
			Scopes: map[Protocol][]string{
				ProtocolIMAP: {"ZOHOMAIL.PROTOCOL.IMAP"},
				ProtocolPOP3: {"ZOHOMAIL.PROTOCOL.POP"},
				ProtocolSMTP: {"ZOHOMAIL.PROTOCOL.SMTP"},
			},
			ExtraParams:    map[string]string{"access_type": "offline", "prompt": "consent"},
			SecretExpected: true,
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls("imap.zoho.com", 993),
				ProtocolPOP3: tls("pop.zoho.com", 995),
				ProtocolSMTP: tls("smtp.zoho.com", 465),
			},
			Notes: "Accounts outside the US use their data centre's domain in every URL and server: zoho.eu, zoho.in, zoho.com.au, zoho.jp (e.g. accounts.zoho.eu, imap.zoho.eu). Organization (custom-domain) mailboxes use imappro.zoho.com and smtppro.zoho.com. Unverified: the SMTP scope ZOHOMAIL.PROTOCOL.SMTP (IMAP and POP are documented) and whether Zoho accepts space-separated scopes (its documentation joins them with commas).",
		},
		{
			ID: "comcast", Name: "Comcast Xfinity",
			AuthURL:        "https://oauth.xfinity.com/oauth/authorize",
			TokenURL:       "https://oauth.xfinity.com/oauth/token",
			Scopes:         same("https://email.comcast.net/"),
			CommonScopes:   []string{"openid", "profile"},
			SecretExpected: true,
			Servers: map[Protocol]Server{
				ProtocolIMAP: tls("imap.comcast.net", 993),
				ProtocolPOP3: tls("pop.comcast.net", 995),
				ProtocolSMTP: starttls("smtp.comcast.net", 587),
			},
			Notes: "Third-party email access must be turned on in the Xfinity account settings. Unverified: Comcast registers OAuth clients for mail applications individually, and there is no public registration page.",
		},
	}
}
