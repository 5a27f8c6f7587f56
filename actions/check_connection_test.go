package actions

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

func stepNames(steps []ConnStep) string {
	var b strings.Builder
	for _, s := range steps {
		mark := "ok"
		if s.Err != nil {
			mark = "FAIL"
		}
		b.WriteString(s.Name + ":" + mark + " ")
	}
	return strings.TrimSpace(b.String())
}

func TestCheckConnectionAgainstDovecot(t *testing.T) {
	rig := startOAuthDovecot(t)
	access, _ := rig.oauth.Mint(rig.user, "https://mail.test/imap https://mail.test/pop https://mail.test/smtp")
	dc := rig.dc
	base := ConnCheck{Host: dc.Host, TLSConfig: dc.TLSConfig(), User: rig.user, Token: access, Timeout: 10 * time.Second}
	with := func(proto string, port int, sec Security, mech string) ConnCheck {
		cc := base
		cc.Protocol, cc.Port, cc.Security, cc.Mech = proto, port, sec, mech
		return cc
	}
	good := []ConnCheck{
		with("imap", dc.IMAPPort, SecuritySTARTTLS, ""), with("imap", dc.IMAPSPort, SecurityTLS, "OAUTHBEARER"),
		with("pop3", dc.POP3Port, SecuritySTARTTLS, ""), with("pop3", dc.POP3SPort, SecurityTLS, ""),
		with("smtp", dc.SubmissionPort, SecuritySTARTTLS, ""),
	}
	for _, cc := range good {
		steps, err := CheckConnection(context.Background(), cc)
		if err != nil || stepNames(steps) != "connect:ok tls:ok login:ok" {
			t.Errorf("%s:%d %s: %s: %v", cc.Protocol, cc.Port, cc.Security, stepNames(steps), err)
		}
	}

	// Each failure stops at the step that failed, with words that say what happened.
	untrusted := with("imap", dc.IMAPSPort, SecurityTLS, "")
	untrusted.TLSConfig = nil // system roots do not know the harness certificate
	closed := with("pop3", testmail.FreePort(t), SecurityTLS, "")
	plain := with("smtp", dc.SubmissionPort, SecurityNone, "")
	starttlsOnTLSPort := with("imap", dc.IMAPSPort, SecuritySTARTTLS, "")
	tlsOnPlainPort := with("pop3", dc.POP3Port, SecurityTLS, "")
	for _, c := range []struct {
		cc         ConnCheck
		steps, msg string
	}{
		{untrusted, "connect:ok tls:FAIL", "certificate"},
		{closed, "connect:FAIL", "connect"},
		{plain, "connect:ok tls:FAIL", "only sent over TLS"},
		{starttlsOnTLSPort, "connect:ok tls:FAIL", "use security tls"},
		{tlsOnPlainPort, "connect:ok tls:FAIL", "use security starttls"},
	} {
		steps, err := CheckConnection(context.Background(), c.cc)
		if stepNames(steps) != c.steps || err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s:%d: %s: %v; want %s mentioning %q", c.cc.Protocol, c.cc.Port, stepNames(steps), err, c.steps, c.msg)
		}
	}

	rig.oauth.RevokeUser(rig.user)
	for _, cc := range good[:1] {
		steps, err := CheckConnection(context.Background(), cc)
		if stepNames(steps) != "connect:ok tls:ok login:FAIL" || err == nil || !strings.Contains(err.Error(), "Get Refresh Token") ||
			strings.Contains(err.Error(), access) {
			t.Errorf("revoked: %s: %v", stepNames(steps), err)
		}
	}
}
