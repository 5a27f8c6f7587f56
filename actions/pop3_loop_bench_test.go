package actions

import (
	"context"
	"io"
	"log/slog"
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

// BenchmarkPOP3LoopDownload is issue 7's scenario: POP3 Open (STLS, password), then a POP3
// Mail Loop with "only new" whose body is one POP3 Download Email step, over 10,000
// messages of 5,000 bytes, each saved durably (temporary file, fsync, rename, folder
// fsync) into a fresh folder of the temporary directory. The record of handled messages
// is kept in memory (the task engine's SQLite store adds its own commit per message).
func BenchmarkPOP3LoopDownload(b *testing.B) {
	const n, size = 10_000, 5_000
	dc := testmail.StartDovecot(b, testmail.DovecotOptions{})
	dc.SeedN(b, testmail.DefaultUser().Name, "INBOX", n, size)
	te := newTestEnv(b)
	te.log = slog.New(slog.DiscardHandler)
	pop3MustOpen(b, te, pop3Params(dc, dc.POP3Port, SecuritySTARTTLS, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		dir := b.TempDir()
		te.State = &memState{m: map[string]string{}}
		got, err := te.loop(ctx, NewPOP3MailLoop(), map[string]string{"only_new": "true"}, true, func(int) error {
			return te.run(ctx, NewPOP3Download(), map[string]string{"folder": dir, "file_name": te.Var("MessageUIDL") + ".eml"})
		})
		if err != nil || got != n {
			b.Fatalf("loop: %d messages, %v", got, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "messages/s")
}
