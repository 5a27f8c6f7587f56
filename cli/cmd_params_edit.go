package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/mailwright/mailwright/oauthparams"
)

// kvFlags collects repeated --param k=v flags.
type kvFlags map[string]string

func (f kvFlags) String() string { return formatParams(f) }

func (f kvFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want KEY=VALUE (an empty VALUE removes the parameter), got %q", s)
	}
	f[strings.TrimSpace(k)] = v
	return nil
}

type setFlags struct {
	preset, tenant, protocols, account, clientID, secretFile string
	authURL, tokenURL, deviceURL, scope, redirectURL         string
	clearSecret                                              bool
	params                                                   kvFlags
}

func paramsSetCommand() Command {
	f := &setFlags{params: kvFlags{}}
	return Command{
		Name:    "set",
		Summary: "create or change a parameter set",
		Usage:   "NAME",
		Help: `Creates the set when it does not exist. --preset fills the endpoints, scope and extra
parameters from a provider preset (see 'mailwright params presets') and never touches the
name, account, client ID or secrets; other flags then override single fields. The client
secret is read from a file (or - for standard input) so it never appears on a command line.`,
		MinArgs: 1, MaxArgs: 1,
		Flags: func(c *Context) {
			fs := c.Flags
			fs.StringVar(&f.preset, "preset", "", "`ID` of a provider preset to load")
			fs.StringVar(&f.tenant, "tenant", "", "Microsoft `TENANT` ID or domain, for the microsoft-tenant preset")
			fs.StringVar(&f.protocols, "protocols", "imap,pop3,smtp", "`LIST` of protocols whose scopes the preset adds")
			fs.StringVar(&f.account, "account", "", "client account: the mailbox `ADDRESS`")
			fs.StringVar(&f.clientID, "client-id", "", "OAuth client `ID`")
			fs.StringVar(&f.secretFile, "client-secret-file", "", "read the client secret from `FILE` (- for stdin)")
			fs.BoolVar(&f.clearSecret, "clear-client-secret", false, "remove the client secret (public clients)")
			fs.StringVar(&f.authURL, "auth-url", "", "authorization endpoint `URL`")
			fs.StringVar(&f.tokenURL, "token-url", "", "access token endpoint `URL`")
			fs.StringVar(&f.deviceURL, "device-url", "", "device authorization endpoint `URL`")
			fs.StringVar(&f.scope, "scope", "", "space-separated `SCOPES`")
			fs.StringVar(&f.redirectURL, "redirect-url", "", "fixed loopback redirect `URL` (default: 127.0.0.1, random port)")
			fs.Var(f.params, "param", "extra authorization parameter `KEY=VALUE` (repeatable)")
		},
		Run: func(c *Context) error { return runParamsSet(c, f) },
	}
}

func runParamsSet(c *Context, f *setFlags) error {
	s, err := c.openStore()
	if err != nil {
		return err
	}
	name := oauthparams.NormalizeName(c.Args[0])
	p, err := s.Get(name)
	created := errors.Is(err, oauthparams.ErrNotFound)
	switch {
	case created:
		p = oauthparams.ParamSet{Name: name}
	case err != nil:
		return err
	}
	set := map[string]bool{}
	c.Flags.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f.preset != "" {
		if err := applyPreset(&p, f.preset, f.tenant, f.protocols); err != nil {
			return err
		}
	}
	for _, fv := range []struct {
		flag string
		dst  *string
		val  string
	}{
		{"account", &p.Account, f.account}, {"client-id", &p.ClientID, f.clientID},
		{"auth-url", &p.AuthURL, f.authURL}, {"token-url", &p.TokenURL, f.tokenURL},
		{"device-url", &p.DeviceURL, f.deviceURL}, {"scope", &p.Scope, f.scope},
		{"redirect-url", &p.RedirectURL, f.redirectURL},
	} {
		if set[fv.flag] {
			*fv.dst = fv.val
		}
	}
	for k, v := range f.params {
		if p.ExtraParams == nil {
			p.ExtraParams = map[string]string{}
		}
		if v == "" {
			delete(p.ExtraParams, k)
		} else {
			p.ExtraParams[k] = v
		}
	}
	switch {
	case f.clearSecret && f.secretFile != "":
		return usageError{"--client-secret-file and --clear-client-secret contradict each other"}
	case f.clearSecret:
		p.Secrets.ClientSecret = ""
	case f.secretFile != "":
		if p.Secrets.ClientSecret, err = readSecretFile(f.secretFile); err != nil {
			return err
		}
	}
	p.Normalize()
	if err := p.Validate(); err != nil {
		return fmt.Errorf("parameter set %s not saved: %w", p.Name, err)
	}
	if err := s.Put(p); err != nil {
		return err
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	st := p.Status(time.Now())
	fmt.Fprintf(c.Env.Stdout, "%s %s: %s%s\n", verb, p.Name, st.State, reasonSuffix(st.Reason))
	return nil
}

// applyPreset loads the preset id (with a Microsoft tenant where needed) for the listed
// protocols.
func applyPreset(p *oauthparams.ParamSet, id, tenant, protocols string) error {
	pr, ok := oauthparams.FindPreset(id)
	if !ok {
		var ids []string
		for _, x := range oauthparams.Presets() {
			ids = append(ids, x.ID)
		}
		return usageError{fmt.Sprintf("unknown preset %q; known: %s", id, strings.Join(ids, ", "))}
	}
	if pr.NeedsTenant {
		if tenant == "" {
			return usageError{fmt.Sprintf("preset %s needs --tenant (your directory ID or domain)", id)}
		}
		var err error
		if pr, err = pr.WithTenant(tenant); err != nil {
			return fmt.Errorf("--tenant: %w", err)
		}
	}
	var protos []oauthparams.Protocol
	for _, s := range strings.Split(protocols, ",") {
		proto := oauthparams.Protocol(strings.ToLower(strings.TrimSpace(s)))
		if proto == "" {
			continue
		}
		if proto != oauthparams.ProtocolIMAP && proto != oauthparams.ProtocolPOP3 && proto != oauthparams.ProtocolSMTP {
			return usageError{fmt.Sprintf("--protocols: unknown protocol %q (want imap, pop3, smtp)", proto)}
		}
		protos = append(protos, proto)
	}
	p.ApplyPreset(pr, protos...)
	return nil
}

func paramsAuthorizeCommand() Command {
	var noBrowser, device bool
	var timeout time.Duration
	return Command{
		Name:    "authorize",
		Summary: "sign in and store a refresh token (Get Refresh Token)",
		Usage:   "NAME",
		Help: `Opens the system browser ($BROWSER, else xdg-open) on the provider's sign-in page and
waits for the redirect to a one-shot listener on 127.0.0.1. --no-browser prints the URL instead
(for remote shells); --device uses the device flow: open a URL on any device and type a code.`,
		MinArgs: 1, MaxArgs: 1,
		Flags: func(c *Context) {
			c.Flags.BoolVar(&noBrowser, "no-browser", false, "print the sign-in URL instead of opening a browser")
			c.Flags.BoolVar(&device, "device", false, "use the device flow (code on another device)")
			c.Flags.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after `DURATION`")
		},
		Run: func(c *Context) error {
			s, err := c.openStore()
			if err != nil {
				return err
			}
			var p oauthparams.ParamSet
			if device {
				p, err = s.AuthorizeDevice(c.Ctx, c.Args[0], oauthparams.DeviceOptions{Prompt: c.Env.Stderr, Timeout: timeout})
			} else {
				p, err = s.Authorize(c.Ctx, c.Args[0], oauthparams.AuthorizeOptions{NoBrowser: noBrowser, Prompt: c.Env.Stderr, Timeout: timeout})
			}
			if err != nil {
				return err
			}
			st := p.Status(time.Now())
			fmt.Fprintf(c.Env.Stdout, "signed in: %s is %s (granted scope: %s)\n", p.Name, st.State, dash(p.GrantedScope))
			return nil
		},
	}
}

func paramsTokenCommand() Command {
	var show bool
	return Command{
		Name:    "token",
		Summary: "get an access token silently (refreshing it when needed)",
		Usage:   "NAME",
		MinArgs: 1, MaxArgs: 1,
		Flags: func(c *Context) {
			c.Flags.BoolVar(&show, "show", false, "print the access token itself on standard output")
		},
		Run: func(c *Context) error {
			s, err := c.openStore()
			if err != nil {
				return err
			}
			tok, err := oauthparams.NewTokenManager(s, nil).Token(c.Ctx, c.Args[0])
			if err != nil {
				return err
			}
			if show {
				fmt.Fprintln(c.Env.Stdout, tok.AccessToken)
				return nil
			}
			p, err := s.Get(c.Args[0])
			if err != nil {
				return err
			}
			until := "unknown expiry"
			if !tok.Expiry.IsZero() {
				until = "valid until " + tok.Expiry.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(c.Env.Stdout, "access token for %s: %s (scope: %s)\n", p.Name, until, dash(p.GrantedScope))
			return nil
		},
	}
}
