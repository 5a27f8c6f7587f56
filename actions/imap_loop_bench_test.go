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
