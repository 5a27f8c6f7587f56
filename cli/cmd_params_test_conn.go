package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/oauthparams"
)

type testConnFlags struct {
	imap, pop3, smtp, security, caFile, mech string
	timeout                                  time.Duration
}

func paramsTestCommand() Command {
	f := &testConnFlags{}
	return Command{
		Name:    "test",
		Summary: "Test Connection: get a token, connect, TLS, log in with XOAUTH2",
		Usage:   "NAME",
		Help: `Without --imap/--pop3/--smtp, tests the mail servers of the set's provider preset.
Security defaults by port (993, 995, 465: implicit TLS; others: STARTTLS); a token is never
sent without TLS.`,
		MinArgs: 1, MaxArgs: 1,
		Flags: func(c *Context) {
			fs := c.Flags
			fs.StringVar(&f.imap, "imap", "", "test IMAP at `HOST:PORT`")
			fs.StringVar(&f.pop3, "pop3", "", "test POP3 at `HOST:PORT`")
			fs.StringVar(&f.smtp, "smtp", "", "test SMTP submission at `HOST:PORT`")
			fs.StringVar(&f.security, "security", "", "`tls` or `starttls` for every server tested (default: by port)")
			fs.StringVar(&f.caFile, "ca-file", "", "trust the CA certificates in PEM `FILE` instead of the system's")
			fs.StringVar(&f.mech, "mech", "XOAUTH2", "SASL `MECHANISM`: XOAUTH2 or OAUTHBEARER")
			fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "per-server `DURATION`")
		},
		Run: func(c *Context) error { return runParamsTest(c, f) },
	}
}

func runParamsTest(c *Context, f *testConnFlags) error {
	s, err := c.openStore()
	if err != nil {
		return err
	}
	p, err := s.Get(c.Args[0])
	if err != nil {
		return err
	}
	targets, err := connTargets(p, f)
	if err != nil {
		return err
	}
	var roots *x509.CertPool
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca-file %s: no PEM certificate in it", f.caFile)
		}
	}
	out := c.Env.Stdout
	fmt.Fprintf(out, "Test connection for %s (%s)\n", p.Name, dash(p.Account))
	tok, err := oauthparams.NewTokenManager(s, nil).Token(c.Ctx, p.Name)
	if err != nil {
		fmt.Fprintf(out, "  token    FAILED\n")
		return err
	}
	fmt.Fprintf(out, "  token    ok (valid until %s)\n", tok.Expiry.Local().Format(time.RFC3339))
	var failed []error
	for _, cc := range targets {
		cc.TLSConfig = &tls.Config{RootCAs: roots, ServerName: cc.Host}
		cc.User, cc.Token, cc.Mech, cc.Timeout = p.Account, tok.AccessToken, f.mech, f.timeout
		fmt.Fprintf(out, "  %s %s (%s)\n", cc.Protocol, net.JoinHostPort(cc.Host, strconv.Itoa(cc.Port)), cc.Security)
		steps, err := actions.CheckConnection(c.Ctx, cc)
		for _, st := range steps {
			mark := "ok"
			if st.Err != nil {
				mark = "FAILED: " + oneLine(st.Err.Error())
			}
			fmt.Fprintf(out, "    %-8s %s\n", st.Name, mark)
		}
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d connection tests failed; first: %w", len(failed), len(targets), failed[0])
	}
	return nil
}

// connTargets lists the servers to test: the flags' ones, else the preset's.
func connTargets(p oauthparams.ParamSet, f *testConnFlags) ([]actions.ConnCheck, error) {
	if f.security != "" && f.security != string(actions.SecurityTLS) && f.security != string(actions.SecuritySTARTTLS) {
		return nil, usageError{fmt.Sprintf("--security: want tls or starttls, got %q", f.security)}
	}
	var targets []actions.ConnCheck
	for _, x := range []struct{ proto, addr string }{{"imap", f.imap}, {"pop3", f.pop3}, {"smtp", f.smtp}} {
		if x.addr == "" {
			continue
		}
		host, portStr, err := net.SplitHostPort(x.addr)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil || port < 1 || port > 65535 {
			return nil, usageError{fmt.Sprintf("--%s: want HOST:PORT, got %q", x.proto, x.addr)}
		}
		targets = append(targets, actions.ConnCheck{Protocol: x.proto, Host: host, Port: port, Security: securityFor(f.security, port)})
	}
	if len(targets) > 0 {
		return targets, nil
	}
	pr, ok := oauthparams.FindPreset(p.Preset)
	if !ok {
		return nil, usageError{fmt.Sprintf("parameter set %s has no provider preset: name the servers with --imap, --pop3 or --smtp HOST:PORT", p.Name)}
	}
	for _, proto := range oauthparams.Protocols() {
		srv, ok := pr.Servers[proto]
		if !ok {
			continue
		}
		sec := actions.Security(srv.Security)
		if f.security != "" {
			sec = actions.Security(f.security)
		}
		targets = append(targets, actions.ConnCheck{Protocol: string(proto), Host: srv.Host, Port: srv.Port, Security: sec})
	}
	if len(targets) == 0 {
		return nil, errors.New("the preset names no mail servers: use --imap, --pop3 or --smtp HOST:PORT")
	}
	return targets, nil
}

// securityFor picks the security of a server given by port, unless --security says.
func securityFor(flag string, port int) actions.Security {
	if flag != "" {
		return actions.Security(flag)
	}
	switch port {
	case 993, 995, 465:
		return actions.SecurityTLS
	}
	return actions.SecuritySTARTTLS
}
