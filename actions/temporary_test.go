package actions

import (
	"context"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

// TestTemporaryClassifiesRealErrors: the retry policy retries what a later attempt can fix
// (nothing listening, a cut connection) and not what it cannot (a wrong password).
func TestTemporaryClassifiesRealErrors(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	closed := testmail.FreePort(t)
	conf := func(port int, pass string) ConnConfig {
		c, err := ParseConn("imap", Values{"host": dc.Host, "port": checkItoa(port), "security": "tls", "auth": "password",
			"user": u.Name, "password": pass, "ca_file": dc.Certs.CertFile, "timeout": "5s"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	_, err := OpenIMAP(context.Background(), conf(closed, u.Password), nil)
	if err == nil || !Temporary(err) {
		t.Fatalf("nothing listening: %v (temporary %v)", err, Temporary(err))
	}
	_, err = OpenIMAP(context.Background(), conf(dc.IMAPSPort, "wrong"), nil)
	if err == nil || Temporary(err) {
		t.Fatalf("wrong password must not be retried: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = OpenIMAP(ctx, conf(dc.IMAPSPort, u.Password), nil)
	if err == nil || Temporary(err) {
		t.Fatalf("cancelled: %v", err)
	}
}
