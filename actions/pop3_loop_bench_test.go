package actions

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// BenchmarkPOP3Loop runs a POP3 Mail Loop over 10,000 messages of about 2 KB on the harness
// Dovecot, streaming each body to io.Discard through the loop's current message. Seeding
// and the first login (when Dovecot indexes the mailbox) are outside the timer. "only_new"
// starts each iteration from an empty record, so it handles and records all 10,000.
func BenchmarkPOP3Loop(b *testing.B) {
	const messages = 10_000
	dc := testmail.StartDovecot(b, testmail.DovecotOptions{})
	t0 := time.Now()
	dc.SeedN(b, testmail.DefaultUser().Name, "INBOX", messages, 2000)
	t1 := time.Now()
	te := newTestEnv(b)
	pop3MustOpen(b, te, pop3Params(dc, dc.POP3SPort, SecurityTLS, nil))
	b.Logf("seed %s, open %s", t1.Sub(t0), time.Since(t1))
	body := func(int) error {
		r, err := te.Sessions.Current().Open(context.Background())
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		return r.Close()
	}
	for _, bc := range []struct {
		name   string
		params map[string]string
	}{{"all", nil}, {"only_new", map[string]string{"only_new": "true"}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				te.State = &memState{m: map[string]string{}}
				n, err := te.loop(context.Background(), NewPOP3MailLoop(), bc.params, true, body)
				if err != nil || n != messages {
					b.Fatalf("loop: %d messages, %v", n, err)
				}
			}
			b.ReportMetric(float64(messages*b.N)/b.Elapsed().Seconds(), "messages/s")
		})
	}
}
