package actions

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailwright/mailwright/internal/testmail"
)

// parseTestLineWriter breaks base64 into 76-character lines as mail does.
type parseTestLineWriter struct {
	w   io.Writer
	col int
}

func (l *parseTestLineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(76-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		n += k
		l.col += k
		p = p[k:]
		if l.col == 76 {
			if _, err := io.WriteString(l.w, "\r\n"); err != nil {
				return n, err
			}
			l.col = 0
		}
	}
	return n, nil
}

// parseTestChunks makes the large attachment 50 MiB.
const parseTestChunks = 800

// TestParseEmailLargeAttachmentMemory parses a message with a 50 MB attachment and checks
// that memory does not grow with it and that the saved file is byte-identical.
func TestParseEmailLargeAttachmentMemory(t *testing.T) {
	const size = parseTestChunks * 57 * 1150
	dir := t.TempDir()
	eml := filepath.Join(dir, "big.eml")
	f, err := os.Create(eml)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	fmt.Fprint(bw, "From: a@example.test\r\nTo: b@example.test\r\nSubject: big\r\nDate: Tue, 7 May 2024 10:00:00 +0000\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BIG\"\r\n\r\n--BIG\r\nContent-Type: text/plain\r\n\r\n"+
		"see attachment\r\n--BIG\r\nContent-Type: application/octet-stream\r\n"+
		"Content-Disposition: attachment; filename=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	// 800 chunks of 57×1150 random bytes (50 MiB): each encodes to whole 76-column lines,
	// so one chunk is encoded once and written 800 times.
	chunk := make([]byte, 57*1150)
	rand.NewChaCha8([32]byte{1, 2, 3}).Read(chunk)
	var encoded strings.Builder
	enc := base64.NewEncoder(base64.StdEncoding, &parseTestLineWriter{w: &encoded})
	enc.Write(chunk)
	enc.Close()
	sum := sha256.New()
	for range parseTestChunks {
		sum.Write(chunk)
		io.WriteString(bw, encoded.String())
	}
	fmt.Fprint(bw, "--BIG--\r\n")
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x", sum.Sum(nil))

	out := filepath.Join(dir, "out")
	te := newTestEnv(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	parseTestRun(t, te, map[string]string{"file": eml, "save_attachments": "true", "attachments_folder": out})
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	heapGrowth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("parse of a %d MB attachment: TotalAlloc +%d KB, HeapInuse %+d KB", size>>20, allocated>>10, heapGrowth>>10)
	if allocated > 8<<20 || heapGrowth > 8<<20 {
		t.Fatalf("memory grew with the attachment: TotalAlloc +%d KB, HeapInuse %+d KB", allocated>>10, heapGrowth>>10)
	}
	if te.Var("EmailTextBody") != "see attachment" || te.Var("EmailWarnings") != "" {
		t.Fatalf("text %q warnings %q", te.Var("EmailTextBody"), te.Var("EmailWarnings"))
	}
	saved, err := os.Open(te.Var("EmailAttachments"))
	if err != nil {
		t.Fatal(err)
	}
	defer saved.Close()
	got := sha256.New()
	n, _ := io.Copy(got, saved)
	if n != size || fmt.Sprintf("%x", got.Sum(nil)) != want {
		t.Fatalf("saved %d bytes with SHA-256 %x, want %d bytes %s", n, got.Sum(nil), size, want)
	}
}

// parseTestFetchBody streams one BODY.PEEK[] literal and finishes the FETCH on Close.
type parseTestFetchBody struct {
	io.Reader
	cmd *imapclient.FetchCommand
	msg *imapclient.FetchMessageData
}

func (b *parseTestFetchBody) Close() error {
	io.Copy(io.Discard, b.Reader)
	for b.msg.Next() != nil {
	}
	for b.cmd.Next() != nil {
	}
	return b.cmd.Close()
}

// TestParseEmailDovecotIMAP seeds a message into Dovecot and parses it from an IMAP
// BODY.PEEK[] stream as a loop's current message.
func TestParseEmailDovecotIMAP(t *testing.T) {
	raw, err := os.ReadFile(parseTestFile("nested.eml"))
	if err != nil {
		t.Fatal(err)
	}
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	dc.Seed(t, u.Name, "INBOX", raw)

	c, err := imapclient.DialTLS(dc.Addr(dc.IMAPSPort), &imapclient.Options{TLSConfig: dc.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	open := func(context.Context) (io.ReadCloser, error) {
		cmd := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		msg := cmd.Next()
		if msg == nil {
			return nil, fmt.Errorf("fetch UID 1: %v", cmd.Close())
		}
		for item := msg.Next(); item != nil; item = msg.Next() {
			if body, ok := item.(imapclient.FetchItemDataBodySection); ok && body.Literal != nil {
				return &parseTestFetchBody{Reader: body.Literal, cmd: cmd, msg: msg}, nil
			}
		}
		return nil, fmt.Errorf("fetch UID 1: no body: %v", cmd.Close())
	}

	te := newTestEnv(t)
	te.Sessions.SetCurrent(&CurrentMessage{Protocol: "imap", Session: "imap", UID: 1, Size: int64(len(raw)), Open: open})
	dir := t.TempDir()
	parseTestRun(t, te, map[string]string{"save_attachments": "true", "attachments_folder": dir})

	// The same as parsing the file.
	ref := newTestEnv(t)
	parseTestRun(t, ref, map[string]string{"file": parseTestFile("nested.eml")})
	for _, name := range parseOutputNames {
		if name == "EmailAttachments" {
			continue
		}
		if te.Var(name) != ref.Var(name) {
			t.Errorf("%s = %q over IMAP, %q from the file", name, te.Var(name), ref.Var(name))
		}
	}
	pdf, err := os.ReadFile(filepath.Join(dir, "Résumé 2024—final.pdf"))
	if err != nil || string(pdf) != string(parseTestPDF()) {
		t.Fatalf("pdf over IMAP: %d bytes, %v", len(pdf), err)
	}
	if n := len(strings.Split(te.Var("EmailAttachments"), "\n")); n != 4 {
		t.Fatalf("%d attachments saved", n)
	}
	// BODY.PEEK[] left the message unseen, and the connection is still usable.
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch flags: %v", err)
	}
	for _, f := range msgs[0].Flags {
		if f == imap.FlagSeen {
			t.Fatal("the message was marked \\Seen")
		}
	}
}
