package actions

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

// TestSecurityTLSAlwaysVerified: every action that connects verifies the server's
// certificate. Dovecot's certificate is self-signed, so with the system's roots each of
// IMAP Open, POP3 Open, SMTP Send Email and Check for Email — implicit TLS and STARTTLS —
// refuses the connection with a certificate error before sending the password; given the
// CA file, the same settings connect. There is no option to skip verification.
func TestSecurityTLSAlwaysVerified(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	login := func(port int, security string, kv ...string) map[string]string {
		m := map[string]string{"host": dc.Host, "port": strconv.Itoa(port), "security": security, "auth": "password",
			"user": u.Name, "password": u.Password, "timeout": "10s"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	send := []string{"from", u.Name, "to", u.Name, "subject", "tls", "text_body", "x"}
	cases := []struct {
		name   string
		action Action
		params map[string]string
	}{
		{"imap.open tls", NewIMAPOpen(), login(dc.IMAPSPort, "tls")},
		{"imap.open starttls", NewIMAPOpen(), login(dc.IMAPPort, "starttls")},
		{"pop3.open tls", NewPOP3Open(), login(dc.POP3SPort, "tls")},
		{"pop3.open starttls", NewPOP3Open(), login(dc.POP3Port, "starttls")},
		{"email.check tls", NewCheckEmail(), login(dc.IMAPSPort, "tls")},
		{"smtp.send starttls", NewSMTPSend(), login(dc.SubmissionPort, "starttls", send...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t)
			err := te.run(context.Background(), tc.action, tc.params)
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("without a CA file: %v, want a certificate error", err)
			}
			if strings.Contains(err.Error(), u.Password) {
				t.Fatalf("the error shows the password: %v", err)
			}
			withCA := map[string]string{"ca_file": dc.Certs.CertFile}
			for k, v := range tc.params {
				withCA[k] = v
			}
			err = te.run(context.Background(), tc.action, withCA)
			if tc.action.Schema().ID == "smtp.send" {
				// Dovecot's submission service cannot relay here: the login over TLS is what
				// counts, so any failure must come after it, and not be about the certificate.
				if err != nil && strings.Contains(err.Error(), "certificate") {
					t.Fatalf("with the CA file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("with the CA file: %v", err)
			}
		})
	}
	if p, ok := NewIMAPOpen().Schema().Param("ca_file"); !ok || p.Default != "" {
		t.Fatal("IMAP Open has no empty-by-default CA file parameter")
	}
	for _, a := range NewDefaultRegistry().IDs() {
		act, _ := NewDefaultRegistry().Get(a)
		for _, p := range act.Schema().Params {
			if n := strings.ToLower(p.Name); strings.Contains(n, "insecure") && n != "allow_insecure_auth" || strings.Contains(n, "skip_verify") || strings.Contains(n, "verify") {
				t.Errorf("%s has a parameter %q that looks like it turns certificate checks off", a, p.Name)
			}
		}
	}
}
