package actions

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// BenchmarkIMAPLoop loops over 10,000 messages of about 2 KB on the harness Dovecot,
// streaming each body to io.Discard through CurrentMessage.Open, as a Download or Parse
// step inside the loop would.
func BenchmarkIMAPLoop(b *testing.B) {
	const n = 10_000
	dc := testmail.StartDovecot(b, testmail.DovecotOptions{})
	dc.SeedN(b, testmail.DefaultUser().Name, "Bench", n, 2000)
	te := newTestEnv(b)
	imapMsgsSession(b, te, dc, "Bench")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		env, err := te.env(NewIMAPMailLoop(), nil)
		if err != nil {
			b.Fatal(err)
		}
		env.Log = slog.New(slog.DiscardHandler)
		it, err := NewIMAPMailLoop().Loop(ctx, env)
		if err != nil {
			b.Fatal(err)
		}
		count, bytes := 0, int64(0)
		for {
			ok, err := it.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
			r, err := te.Sessions.Current().Open(ctx)
			if err != nil {
				b.Fatal(err)
			}
			m, err := io.Copy(io.Discard, r)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Close(); err != nil {
				b.Fatal(err)
			}
			bytes += m
			count++
			if err := it.Commit(ctx, true); err != nil {
				b.Fatal(err)
			}
		}
		it.Close()
		if count != n || bytes != n*2000 {
			b.Fatalf("looped over %d messages, %d bytes; want %d, %d", count, bytes, n, n*2000)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "messages/s")
}

// BenchmarkIMAPLoopDownload is issue 7's scenario: IMAP Open (STARTTLS, password), Select,
// then an IMAP Mail Loop with "only new" whose body is one IMAP Download Message step,
// over 10,000 messages of 5,000 bytes, each saved durably (temporary file, fsync, rename,
// folder fsync) into a fresh folder of the temporary directory. The checkpoint is kept in
// memory (the task engine's SQLite store adds its own commit per message).
func BenchmarkIMAPLoopDownload(b *testing.B) {
	const n, size = 10_000, 5_000
	dc := testmail.StartDovecot(b, testmail.DovecotOptions{})
	dc.SeedN(b, testmail.DefaultUser().Name, "Bench", n, size)
	te := newTestEnv(b)
	te.log = slog.New(slog.DiscardHandler)
	te.mustRun(NewIMAPOpen(), imapTestPasswordParams(dc, dc.IMAPPort, "starttls"))
	te.mustRun(NewIMAPSelect(), map[string]string{"folder": "Bench"})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		dir := b.TempDir()
		te.State = &memState{m: map[string]string{}}
		got, err := te.loop(ctx, NewIMAPMailLoop(), map[string]string{"only_new": "true"}, true, func(int) error {
			return te.run(ctx, NewIMAPDownload(), map[string]string{"folder": dir, "file_name": te.Var("MessageUID") + ".eml"})
		})
		if err != nil || got != n {
			b.Fatalf("loop: %d messages, %v", got, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "messages/s")
}
