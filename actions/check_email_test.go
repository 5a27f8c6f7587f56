package actions

import (
	"context"
	"strconv"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

func checkParams(dc *testmail.Dovecot, proto string, port int, extra map[string]string) map[string]string {
	u := testmail.DefaultUser()
	p := map[string]string{"protocol": proto, "host": dc.Host, "port": checkItoa(port), "security": "tls",
		"auth": "password", "user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func checkItoa(n int) string { return strconv.Itoa(n) }

func TestCheckEmailIMAPAndPOP3(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "INBOX", 3, 500)
	te := newTestEnv(t)
	check := NewCheckEmail()
	count := func(params map[string]string) (string, string) {
		t.Helper()
		te.mustRun(check, params)
		return te.Var("NewMailCount"), te.Var("TotalCount")
	}
	imapNew := checkParams(dc, "imap", dc.IMAPSPort, nil)
	if n, total := count(imapNew); n != "3" || total != "3" {
		t.Fatalf("first IMAP check: new %s total %s", n, total)
	}
	if n, _ := count(imapNew); n != "0" {
		t.Fatalf("second IMAP check without new mail: %s", n)
	}
	dc.SeedN(t, user, "INBOX", 2, 500)
	if n, total := count(imapNew); n != "2" || total != "5" {
		t.Fatalf("after 2 new: new %s total %s", n, total)
	}
	if n, _ := count(imapNew); n != "0" {
		t.Fatalf("again: %s", n)
	}
	if n, _ := count(checkParams(dc, "imap", dc.IMAPSPort, map[string]string{"count": "unseen"})); n != "5" {
		t.Fatalf("unseen: %s", n)
	}
	// STARTTLS on the plain port, default port derivation is not used here (explicit port).
	if n, _ := count(checkParams(dc, "imap", dc.IMAPPort, map[string]string{"security": "starttls", "count": "all"})); n != "5" {
		t.Fatalf("all: %s", n)
	}
	// Another folder has its own checkpoint; first_check count_none only records.
	dc.SeedN(t, user, "Archive", 4, 500)
	if n, _ := count(checkParams(dc, "imap", dc.IMAPSPort, map[string]string{"folder": "Archive", "first_check": "count_none"})); n != "0" {
		t.Fatalf("count_none: %s", n)
	}
	dc.SeedN(t, user, "Archive", 1, 500)
	if n, _ := count(checkParams(dc, "imap", dc.IMAPSPort, map[string]string{"folder": "Archive"})); n != "1" {
		t.Fatalf("archive after one new: %s", n)
	}

	pop := checkParams(dc, "pop3", dc.POP3SPort, nil)
	if n, total := count(pop); n != "5" || total != "5" {
		t.Fatalf("first POP3 check: new %s total %s", n, total)
	}
	dc.SeedN(t, user, "INBOX", 1, 500)
	if n, total := count(pop); n != "1" || total != "6" {
		t.Fatalf("POP3 after one new: new %s total %s", n, total)
	}
	if err := te.run(context.Background(), check, checkParams(dc, "pop3", dc.POP3SPort, map[string]string{"count": "unseen"})); err == nil {
		t.Fatal("POP3 unseen must be refused")
	}
	// Nothing was marked seen by checking.
	for _, m := range dc.Messages(t, user, "INBOX") {
		if m.Flags != "" {
			t.Fatalf("checking changed flags: %q", m.Flags)
		}
	}
}

func TestCheckEmailOAuth(t *testing.T) {
	te := newTestEnv(t)
	rig := startOAuthRig(t, te)
	rig.dc.SeedN(t, rig.user, "INBOX", 2, 300)
	te.mustRun(NewCheckEmail(), map[string]string{"host": rig.dc.Host, "port": checkItoa(rig.dc.IMAPPort), "security": "starttls",
		"param_set": "Local", "ca_file": rig.dc.Certs.CertFile})
	if te.Var("NewMailCount") != "2" {
		t.Fatalf("NewMailCount %q", te.Var("NewMailCount"))
	}
}

// BenchmarkCheckForEmail measures the every-minute case: IMAPS login, STATUS, nothing new.
func BenchmarkCheckForEmail(b *testing.B) {
	dc := testmail.StartDovecot(b, testmail.DovecotOptions{})
	dc.SeedN(b, testmail.DefaultUser().Name, "INBOX", 1000, 2000)
	te := newTestEnv(b)
	params := checkParams(dc, "imap", dc.IMAPSPort, nil)
	if err := te.run(context.Background(), NewCheckEmail(), params); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := te.run(context.Background(), NewCheckEmail(), params); err != nil {
			b.Fatal(err)
		}
	}
}
