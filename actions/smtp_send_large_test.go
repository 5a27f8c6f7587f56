package actions

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// smtpHashServer is a go-smtp server that keeps, of each attachment, only its headers and
// the SHA-256 of its base64 text (lines with their CRLFs), found by scanning the message
// line by line. A test can send a large message through it and measure the memory the
// whole path uses; decoding it with go-message would multiply the run time under the race
// detector, and the encoded text is checked exactly instead (76-character lines).
type smtpHashServer struct {
	onData func() // called when a message arrives, before the server answers it
	onRcpt func() // called for each RCPT TO, before the server answers it

	mu    sync.Mutex
	parts []smtpHashedPart
	err   error
	count int
}

type smtpHashedPart struct {
	Headers  []string // the attachment part's header lines
	Lines    int64    // base64 lines
	Sum      [32]byte // SHA-256 of the base64 lines, each with its CRLF
	LongLine bool     // a base64 line was longer than 76 characters
}

type smtpHashSession struct{ s *smtpHashServer }

func (ss smtpHashSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss smtpHashSession) Rcpt(string, *smtp.RcptOptions) error {
	if ss.s.onRcpt != nil {
		ss.s.onRcpt()
	}
	return nil
}
func (ss smtpHashSession) Reset()        {}
func (ss smtpHashSession) Logout() error { return nil }

func (ss smtpHashSession) Data(r io.Reader) error {
	if ss.s.onData != nil {
		ss.s.onData()
	}
	var parts []smtpHashedPart
	var headers []string
	var cur *smtpHashedPart
	var h hash.Hash
	state := 0 // 0: elsewhere, 1: a part's headers, 2: an attachment's body
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte("--")):
			if state == 2 {
				copy(cur.Sum[:], h.Sum(nil))
			}
			headers, state = nil, 1
		case state == 1 && len(line) > 0:
			headers = append(headers, string(line))
		case state == 1 && strings.Contains(strings.Join(headers, "\n"), "Content-Disposition: attachment"):
			parts = append(parts, smtpHashedPart{Headers: headers})
			cur, h, state = &parts[len(parts)-1], sha256.New(), 2
		case state == 1:
			state = 0
		case state == 2:
			h.Write(line)
			h.Write([]byte("\r\n"))
			cur.Lines++
			cur.LongLine = cur.LongLine || len(line) > 76
		}
	}
	ss.s.mu.Lock()
	ss.s.parts, ss.s.err = parts, sc.Err()
	ss.s.count++
	ss.s.mu.Unlock()
	return sc.Err()
}

// smtpBase64Lines writes base64 text to w in lines of 76 characters, each ending in CRLF
// (Close ends the last one): the encoding a composed attachment must have.
type smtpBase64Lines struct {
	w   io.Writer
	col int
}

func (l *smtpBase64Lines) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if l.col == 76 {
			l.w.Write([]byte("\r\n"))
			l.col = 0
		}
		k := min(76-l.col, len(p))
		l.w.Write(p[:k])
		l.col += k
		p = p[k:]
	}
	return n, nil
}

func (l *smtpBase64Lines) Close() error {
	if l.col > 0 {
		l.w.Write([]byte("\r\n"))
	}
	return nil
}

// startSMTPHashServer serves hs (with its hooks set) on 127.0.0.1 and returns the port.
func startSMTPHashServer(t *testing.T, hs *smtpHashServer) int {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return smtpHashSession{hs}, nil }))
	srv.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSMTPSendLargeAttachmentBoundedMemory sends a 30 MB attachment: composing, sending
// and (in the same process) receiving it allocate far less than its size, and it arrives
// byte-identical.
func TestSMTPSendLargeAttachmentBoundedMemory(t *testing.T) {
	// 30 copies of a random block of 18396 × 57 bytes: 57 bytes make exactly one 76-character
	// base64 line, so the attachment's expected base64 text is the block's, 30 times.
	const block, copies = 18396 * 57, 30
	const size = block * copies
	hs := &smtpHashServer{}
	port := startSMTPHashServer(t, hs)
	path := filepath.Join(t.TempDir(), "big.bin")
	data := make([]byte, block)
	rand.NewChaCha8([32]byte{7}).Read(data)
	var enc bytes.Buffer
	lines := &smtpBase64Lines{w: &enc}
	b64 := base64.NewEncoder(base64.StdEncoding, lines)
	b64.Write(data)
	b64.Close()
	lines.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for range copies {
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		h.Write(enc.Bytes())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var want [32]byte
	copy(want[:], h.Sum(nil))
	data, enc = nil, bytes.Buffer{}

	tempBefore, _ := filepath.Glob(filepath.Join(os.TempDir(), "mailwright-send-*.eml"))
	te := newTestEnv(t)
	var progress []int64
	env, err := te.env(NewSMTPSend(), smtpParams(port, "none", "attachments", path))
	if err != nil {
		t.Fatal(err)
	}
	env.Progress = func(done, total int64, what string) { progress = append(progress, done) }
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := NewSMTPSend().Run(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("sending and receiving a %.1f MiB attachment allocated %.1f MiB", float64(size)/(1<<20), float64(alloc)/(1<<20))
	// go-message's base64 line wrapper allocates its CRLF for every 76-character line
	// (about 1 MB here; several times that under the race detector, which disables the
	// tiny-object allocator): garbage, not memory held.
	if alloc > smtpAllocBound {
		t.Fatalf("allocated %d bytes for a %d-byte attachment (bound %d): the message is not streamed", alloc, size, smtpAllocBound)
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.err != nil || len(hs.parts) != 1 {
		t.Fatalf("received %d attachments, err %v", len(hs.parts), hs.err)
	}
	p := hs.parts[0]
	headers := strings.Join(p.Headers, "\n")
	if p.Sum != want || p.LongLine || p.Lines != (size*4/3+75)/76 ||
		!strings.Contains(headers, "filename=big.bin") || !strings.Contains(headers, "Content-Type: application/octet-stream") || !strings.Contains(headers, "Content-Transfer-Encoding: base64") {
		t.Fatalf("received attachment: identical=%v, %d lines, long line %v, headers:\n%s", p.Sum == want, p.Lines, p.LongLine, headers)
	}
	if len(progress) < 30 || progress[len(progress)-1] < size {
		t.Fatalf("progress reports: %d, last %v", len(progress), progress[len(progress)-1:])
	}
	if tempAfter, _ := filepath.Glob(filepath.Join(os.TempDir(), "mailwright-send-*.eml")); len(tempAfter) > len(tempBefore) {
		t.Fatalf("temporary message files left behind: %v", tempAfter)
	}
}
