package task

import "testing"

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
