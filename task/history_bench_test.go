package task

import (
	"log/slog"
	"testing"
)

// BenchmarkCheckpointStore measures one durable checkpoint commit (SQLite WAL, synchronous
// FULL): the per-message cost of exactly-once loops.
func BenchmarkCheckpointStore(b *testing.B) {
	h, err := OpenHistory(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	cp := h.Checkpoints("T")
	b.ReportAllocs()
	for b.Loop() {
		if err := cp.Store("imap:alice@h/INBOX:imap.checkpoint", `{"uidvalidity":1,"last_uid":12345}`); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunLogLine measures recording one Info line of a run (as a download logs per
// message): the handler, the batch and its share of the batch's transaction.
func BenchmarkRunLogLine(b *testing.B) {
	h, err := OpenHistory(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	l := h.NewRunLog("bench-run")
	log := slog.New(l.Handler(nil))
	b.ReportAllocs()
	for b.Loop() {
		log.Info("saved message", "file", "/home/user/mail/12345.eml", "bytes", 5000, "uid", 12345)
	}
	if err := l.Flush(); err != nil {
		b.Fatal(err)
	}
}
