package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// pop3IntegrityMessages are messages that a careless client would change.
func pop3IntegrityMessages() (names []string, msgs [][]byte) {
	hdr := func(subject string) string {
		return "From: Integrity <integrity@example.test>\r\nTo: alice@example.test\r\nSubject: " + subject + "\r\n" +
			"Message-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@mailwright.test>\r\nContent-Type: application/octet-stream\r\n\r\n"
	}
	add := func(name, body string) {
		names = append(names, name)
		msgs = append(msgs, []byte(hdr(name)+body))
	}
	add("dot lines", ".\r\n..\r\n...\r\n.hidden\r\nend.\r\n. \r\n.\r\n")
	add("long lines", strings.Repeat("L", 200_000)+"\r\n"+strings.Repeat("m", 4097)+"\r\n."+strings.Repeat("d", 70_000)+"\r\n")
	var eight strings.Builder
	for c := 0; c < 256; c++ {
		if c != '\r' && c != '\n' {
			eight.WriteByte(byte(c))
		}
	}
	add("8-bit and NUL", eight.String()+"\r\n\x00\x00\r\n\xc3\xa9t\xc3\xa9\r\n")
	add("bare CR", "one\rtwo\r\n\r\r\nthree\r\r\r\n")
	// Random bytes; a LF always comes with its CR (bare LF is the next case).
	rnd := rand.New(rand.NewSource(7))
	bin := make([]byte, 300_000)
	rnd.Read(bin)
	add("binary", strings.ReplaceAll(strings.ReplaceAll(string(bin), "\r\n", "\n"), "\n", "\r\n")+"\r\n")
	return names, msgs
}

// TestPOP3DownloadIntegrity downloads messages that test every corner of the framing and
// compares them with the files Dovecot stores.
func TestPOP3DownloadIntegrity(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	names, msgs := pop3IntegrityMessages()
	dc.Seed(t, user, "INBOX", msgs...)
	// Dovecot's POP3 sends a stored bare LF as CRLF, and ends a message that lacks a final
	// line end with CRLF (pop3-commands.c); the client must keep what the server sends.
	dc.Seed(t, user, "INBOX",
		[]byte("From: x@example.test\r\nSubject: bare LF\r\n\r\nunix\nline\n\nend\n"),
		[]byte("From: x@example.test\r\nSubject: no final line end\r\n\r\nend"))
	names = append(names, "bare LF", "no final line end")
	stored := dc.Messages(t, user, "INBOX")
	if len(stored) != len(names) {
		t.Fatalf("%d messages stored", len(stored))
	}
	te := newTestEnv(t)
	pop3MustOpen(t, te, pop3Params(dc, dc.POP3SPort, SecurityTLS, nil))
	dir := t.TempDir()
	for i := range stored {
		want, name := stored[i].Body, names[i]
		switch {
		case i < len(msgs):
			if !bytes.Equal(want, msgs[i]) {
				t.Fatalf("%s: the stored file differs from what was seeded", name)
			}
		case name == "bare LF":
			want = bytes.ReplaceAll(want, []byte("\n"), []byte("\r\n"))
			want = bytes.ReplaceAll(want, []byte("\r\r\n"), []byte("\r\n"))
		default:
			want = append(want, '\r', '\n')
		}
		te.mustRun(NewPOP3Download(), map[string]string{"number": strconv.Itoa(i + 1), "folder": dir, "file_name": name + ".eml"})
		got, err := os.ReadFile(filepath.Join(dir, name+".eml"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: downloaded %d bytes, not identical to the %d stored (first difference at %d)", name, len(got), len(want), pop3FirstDiff(got, want))
		}
		if te.Var("DownloadedSize") != strconv.Itoa(len(want)) || te.Var("DownloadedFile") != filepath.Join(dir, name+".eml") {
			t.Errorf("%s: DownloadedSize %s, DownloadedFile %s", name, te.Var("DownloadedSize"), te.Var("DownloadedFile"))
		}
	}
	// LIST counts the stored message with CRLF line ends, so sizes match, except where
	// Dovecot adds the missing final CRLF: that is logged, and the download still succeeds.
	if logs := te.Logs.String(); strings.Count(logs, "size differs") != 1 || !strings.Contains(logs, fmt.Sprintf("received=%d announced=%d", len(stored[6].Body)+2, len(stored[6].Body))) {
		t.Errorf("want exactly one size warning, for the message without a final line end:\n%s", logs)
	}
	// Downloading leaves the messages on the server.
	te.mustRun(NewPOP3Close(), nil)
	if n := len(dc.Messages(t, user, "INBOX")); n != len(stored) {
		t.Fatalf("%d messages left after downloading, want %d", n, len(stored))
	}
}

func pop3FirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestPOP3DownloadNames checks the default file name (the UIDL), the collision policies
// and the errors for a bad number or a missing loop.
func TestPOP3DownloadNames(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	msgs := dc.SeedN(t, user, "INBOX", 2, 3000)
	te := newTestEnv(t)
	s := pop3MustOpen(t, te, pop3Params(dc, dc.POP3Port, SecuritySTARTTLS, nil))
	uidl, err := s.Client.UIDLOne(2)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "new folder")
	te.mustRun(NewPOP3Download(), map[string]string{"number": "2", "folder": dir})
	path := filepath.Join(dir, uidl+".eml")
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, msgs[1]) || te.Var("DownloadedFile") != path {
		t.Fatalf("default name: %s, %v, identical=%v", te.Var("DownloadedFile"), err, bytes.Equal(got, msgs[1]))
	}
	te.mustRun(NewPOP3Download(), map[string]string{"number": "2", "folder": dir, "collision": CollisionSkip})
	if te.Var("DownloadedSize") != "0" || te.Var("DownloadedFile") != path {
		t.Errorf("skip: %s %s", te.Var("DownloadedFile"), te.Var("DownloadedSize"))
	}
	te.mustRun(NewPOP3Download(), map[string]string{"number": "1", "folder": dir, "file_name": uidl + ".eml"})
	if renamed := filepath.Join(dir, uidl+" (2).eml"); te.Var("DownloadedFile") != renamed {
		t.Errorf("rename: %s, want %s", te.Var("DownloadedFile"), renamed)
	}
	err = te.run(context.Background(), NewPOP3Download(), map[string]string{"number": "1", "folder": dir, "file_name": uidl + ".eml", "collision": CollisionFail})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("fail: %v", err)
	}
	err = te.run(context.Background(), NewPOP3Download(), map[string]string{"number": "9", "folder": dir})
	var perr *POP3Error
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "check the message number") {
		t.Errorf("number 9 of 2: %v", err)
	}
	err = te.run(context.Background(), NewPOP3Download(), map[string]string{"folder": dir})
	if err == nil || !strings.Contains(err.Error(), "inside a POP3 Mail Loop") {
		t.Errorf("no number outside a loop: %v", err)
	}
	// The session is still usable after the refusals.
	te.mustRun(NewPOP3Count(), nil)
	if te.Var("MessageCount") != "2" {
		t.Errorf("MessageCount = %s", te.Var("MessageCount"))
	}
}

// TestPOP3RetrMemory streams a 20 MB message to io.Discard and checks that the client
// allocates far less than the message (go-pop3 v1.0.2 allocated 84.6 MB for it).
func TestPOP3RetrMemory(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	const size = 20 << 20
	dc.Seed(t, testmail.DefaultUser().Name, "INBOX", testmail.MessageText(1, size))
	te := newTestEnv(t)
	s := pop3MustOpen(t, te, pop3Params(dc, dc.POP3SPort, SecurityTLS, nil))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := s.Retr(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != size {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("RETR of %d MB streamed: %d KB allocated in %d allocations", size>>20, alloc>>10, after.Mallocs-before.Mallocs)
	if alloc > 2<<20 {
		t.Fatalf("RETR of a %d MB message allocated %d KB; want < 2 MB", size>>20, alloc>>10)
	}
	if err := s.Client.Noop(); err != nil {
		t.Fatalf("NOOP after the download: %v", err)
	}
}

// TestPOP3DownloadCancel cancels a download while the server holds back the rest of the
// message: Run returns promptly (not after the 30 s timeout) and leaves no file.
func TestPOP3DownloadCancel(t *testing.T) {
	sent := make(chan struct{})
	m := startPOP3Mini(t, &pop3Mini{capa: "USER\r\nUIDL", users: map[string]string{"bob": "bob-secret"},
		retr: func(c net.Conn) {
			c.Write([]byte("Subject: slow\r\n\r\n" + strings.Repeat("part of a long message\r\n", 20_000)))
			close(sent)
			io.Copy(io.Discard, c) // never finishes the answer
		}})
	te := newTestEnv(t)
	s := pop3MustOpen(t, te, m.params(map[string]string{"timeout": "30s"}))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-sent; cancel() }()
	dir := t.TempDir()
	start := time.Now()
	err := te.run(ctx, NewPOP3Download(), map[string]string{"number": "1", "folder": dir})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("download = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("files left after a cancelled download: %v", files)
	}
	if s.Client.Err() == nil {
		t.Fatal("the connection is still open after the cancel")
	}
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "connection closed") {
		t.Fatalf("close after cancel = %v", err)
	}
}
