package actions

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The bound on what a POP3 server may send for one message (pop3_bound.go), against a
// scripted server whose message never ends.

// badInputPOP3Box is the mailbox of badInputPOP3Mailbox: ordinary messages, except that
// message endless, which LIST announces as 100 bytes, gets an answer to RETR (and, with
// endlessTop, to TOP) with endless lines and never the terminating ".". The server counts
// what it sent of that answer and stops at limit, so that a client without a bound does
// not fill the disk.
type badInputPOP3Box struct {
	msgs       []string // message n is msgs[n-1] (CRLF lines, none starting with ".")
	endless    int
	endlessTop bool
	pipelining bool
	limit      int64
	sent       atomic.Int64
}

// badInputPOP3Mailbox serves box over plain POP3 on a local port.
func badInputPOP3Mailbox(t *testing.T, box *badInputPOP3Box) (host, port string) {
	t.Helper()
	return badInputIMAPServerScript(t, func(c net.Conn) {
		w := bufio.NewWriter(c)
		say := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
		endless := func() {
			say("+OK message follows")
			chunk := []byte(strings.Repeat("Endless: "+strings.Repeat("z", 60)+"\r\n", 1000))
			for box.sent.Load() < box.limit {
				n, err := c.Write(chunk)
				box.sent.Add(int64(n))
				if err != nil {
					return
				}
			}
			c.Close()
		}
		size := func(n int) int {
			if n == box.endless {
				return 100
			}
			return len(box.msgs[n-1])
		}
		num := func(arg string) int {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > len(box.msgs) {
				return 0
			}
			return n
		}
		say("+OK ready")
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(strings.ToUpper(strings.TrimSpace(line)))
			if len(f) == 0 {
				say("-ERR empty command")
				continue
			}
			n := 0
			if len(f) > 1 && strings.Contains(" LIST UIDL RETR TOP DELE ", " "+f[0]+" ") {
				if n = num(f[1]); n == 0 {
					say("-ERR no such message")
					continue
				}
			}
			switch cmd := f[0]; {
			case cmd == "CAPA":
				caps := "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n"
				if box.pipelining {
					caps += "PIPELINING\r\n"
				}
				say(caps + ".")
			case cmd == "STAT":
				say("+OK " + strconv.Itoa(len(box.msgs)) + " 1000")
			case (cmd == "LIST" || cmd == "UIDL") && n > 0:
				v := strconv.Itoa(size(n))
				if cmd == "UIDL" {
					v = "uidl-" + strconv.Itoa(n)
				}
				say("+OK " + strconv.Itoa(n) + " " + v)
			case cmd == "LIST" || cmd == "UIDL":
				var b strings.Builder
				b.WriteString("+OK\r\n")
				for i := range box.msgs {
					v := strconv.Itoa(size(i + 1))
					if cmd == "UIDL" {
						v = "uidl-" + strconv.Itoa(i+1)
					}
					b.WriteString(strconv.Itoa(i+1) + " " + v + "\r\n")
				}
				say(b.String() + ".")
			case (cmd == "RETR" || cmd == "TOP" && box.endlessTop) && n == box.endless:
				endless()
				return
			case cmd == "RETR":
				say("+OK\r\n" + box.msgs[n-1] + ".")
			case cmd == "TOP":
				head, _, _ := strings.Cut(box.msgs[n-1], "\r\n\r\n")
				say("+OK\r\n" + head + "\r\n\r\n.")
			case cmd == "QUIT":
				say("+OK bye")
				return
			default:
				say("+OK")
			}
		}
	})
}

// badInputPOP3Open opens the connection "pop3" of te to a scripted server.
func badInputPOP3Open(t *testing.T, te *testEnv, host, port string) *POP3Session {
	t.Helper()
	te.mustRun(NewPOP3Open(), map[string]string{"host": host, "port": port, "security": "none", "auth": "password",
		"user": "u", "password": "p", "allow_insecure_auth": "true", "timeout": "5s"})
	s, err := Lookup[*POP3Session](te.Sessions, DefaultPOP3Connection, "pop3")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// badInputPOP3Oversize checks that err is the size bound's, for message n announced as
// 100 bytes, and not one a retry policy would retry.
func badInputPOP3Oversize(t *testing.T, err error, n int) {
	t.Helper()
	var oe *POP3OversizeError
	want := fmt.Sprintf("the server sent more than %d bytes for message %d, which it announced as 100 bytes", pop3DataLimit(100), n)
	if !errors.As(err, &oe) || oe.Number != n || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v; want one saying %q", err, want)
	}
	if Temporary(err) {
		t.Fatalf("the bound's error counts as temporary (a retry would download the endless message again): %v", err)
	}
}

// TestBadInputPOP3EndlessMessage: LIST says the message has 100 bytes, RETR sends data
// without end (never the final "."). The download must stop on its own — failing with a
// clear error that is not temporary, leaving no file — after a bounded amount of data,
// not fill the disk. The session is broken afterwards: later commands fail with the same
// cause instead of reading the rest of the message as answers.
func TestBadInputPOP3EndlessMessage(t *testing.T) {
	const limit = 256 << 20 // what this server sends at most
	box := &badInputPOP3Box{msgs: []string{""}, endless: 1, limit: limit}
	host, port := badInputPOP3Mailbox(t, box)
	te := newTestEnv(t)
	badInputPOP3Open(t, te, host, port)
	dir := filepath.Join(t.TempDir(), "mail")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := te.run(ctx, NewPOP3Download(), map[string]string{"number": "1", "folder": dir})
	if err == nil {
		t.Fatal("an endless message was downloaded")
	}
	if ctx.Err() != nil {
		t.Fatalf("the download was only stopped by the test's own deadline: %v", err)
	}
	badInputPOP3Oversize(t, err, 1)
	t.Logf("the download failed as it should: %v", err)
	if n := box.sent.Load(); n >= limit {
		t.Fatalf("the client read %d MiB of a message announced as 100 bytes", n>>20)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
	// The rest of the stream is garbage: the next command fails, naming the cause.
	err = te.run(ctx, NewPOP3Count(), nil)
	if err == nil || !strings.Contains(err.Error(), "the server sent more than") {
		t.Fatalf("a command after the bound tripped: %v", err)
	}
}

// TestBadInputPOP3EndlessMessageInLoop: in a POP3 Mail Loop that downloads each message,
// the third message never ends. The bound stops it wherever it is read: in the loop's
// pipelined prefetch into its spool file (server with PIPELINING), in the download's own
// RETR through CurrentMessage.Open (without), and in the TOP the loop reads headers with.
// The loop fails with the bound's error; the messages before are saved whole, the endless
// one leaves no file, and the server sent a bounded amount.
func TestBadInputPOP3EndlessMessageInLoop(t *testing.T) {
	msg := func(i int) string {
		return "Subject: message " + strconv.Itoa(i) + "\r\n\r\n" + strings.Repeat("body line "+strconv.Itoa(i)+"\r\n", 200)
	}
	for _, tc := range []struct {
		name             string
		pipelining, top  bool
		wantAhead        bool
		savedBeforeError int
	}{
		{"prefetch", true, false, true, 2},
		{"streamed", false, false, false, 2},
		{"top", false, true, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const limit = 256 << 20
			box := &badInputPOP3Box{msgs: []string{msg(1), msg(2), "", msg(4)}, endless: 3, endlessTop: tc.top, pipelining: tc.pipelining, limit: limit}
			host, port := badInputPOP3Mailbox(t, box)
			te := newTestEnv(t)
			badInputPOP3Open(t, te, host, port)
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_, err := te.loop(ctx, NewPOP3MailLoop(), nil, true, func(int) error {
				return te.run(ctx, NewPOP3Download(), map[string]string{"folder": dir, "file_name": te.Var("MessageNumber") + ".eml"})
			})
			if ctx.Err() != nil {
				t.Fatalf("only the test's deadline stopped the loop: %v", err)
			}
			badInputPOP3Oversize(t, err, 3)
			t.Logf("the loop failed as it should: %v", err)
			if n := box.sent.Load(); n >= limit || n == 0 {
				t.Fatalf("the server sent %d bytes of the endless message", n)
			}
			if ahead := strings.Contains(te.Logs.String(), pop3PrefetchLogLine); ahead != tc.wantAhead {
				t.Fatalf("messages fetched ahead: %v, want %v", ahead, tc.wantAhead)
			}
			files := savedFilesIn(t, dir)
			if len(files) != tc.savedBeforeError {
				t.Fatalf("files %v, want messages 1..%d", slices.Sorted(maps.Keys(files)), tc.savedBeforeError)
			}
			for i := 1; i <= tc.savedBeforeError; i++ {
				if files[strconv.Itoa(i)+".eml"] != box.msgs[i-1] {
					t.Fatalf("message %d not saved whole: %d bytes %.80q, want %d", i, len(files[strconv.Itoa(i)+".eml"]), files[strconv.Itoa(i)+".eml"], len(box.msgs[i-1]))
				}
			}
		})
	}
}

// savedFilesIn returns the contents of the files in dir by name (temporary files too).
func savedFilesIn(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// TestBadInputPOP3SizeBound checks the bound at its edge: a message announced as 0 bytes
// may bring exactly pop3DataLimit(0) bytes, byte for byte, and the session stays usable;
// one byte more fails and breaks the session. Without a LIST of the message there is no
// bound.
func TestBadInputPOP3SizeBound(t *testing.T) {
	limit := pop3DataLimit(0)
	if limit != 16<<20 || pop3DataLimit(100) != 400+16<<20 || pop3DataLimit(-1) != 0 || pop3DataLimit(math.MaxInt64/2) != math.MaxInt64 {
		t.Fatalf("pop3DataLimit: %d, %d, %d, %d", limit, pop3DataLimit(100), pop3DataLimit(-1), pop3DataLimit(math.MaxInt64/2))
	}
	line := strings.Repeat("x", 62) + "\r\n" // 64 bytes
	body := func(n int64) io.Reader {
		return io.MultiReader(io.LimitReader(badInputRepeat(line), n/64*64), strings.NewReader(strings.Repeat("y", int(n%64))))
	}
	client := func(listed bool, n int64) *POP3Client {
		var head string
		if listed {
			head = "+OK 1 0\r\n"
		}
		wire := io.MultiReader(strings.NewReader(head+"+OK\r\n"), body(n), strings.NewReader("\r\n.\r\n+OK 1 0\r\n"))
		cli, srv := net.Pipe()
		t.Cleanup(func() { cli.Close(); srv.Close() })
		go io.Copy(io.Discard, srv)
		c := &POP3Client{addr: "wire", conn: &pop3NetConn{Conn: cli, idle: 5 * time.Second}, br: bufio.NewReaderSize(wire, pop3BufferSize)}
		if listed {
			if size, err := c.ListOne(1); err != nil || size != 0 {
				t.Fatalf("LIST 1 = %d, %v", size, err)
			}
		}
		return c
	}
	// The data is n bytes plus the CRLF before the terminator.
	c := client(true, limit-2)
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	want := sha256.New()
	io.Copy(want, io.MultiReader(body(limit-2), strings.NewReader("\r\n")))
	if err != nil || n != limit || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatalf("a message of exactly the bound: %d bytes, %v", n, err)
	}
	if size, err := c.ListOne(1); err != nil || size != 0 {
		t.Fatalf("the session is not usable after a message at the bound: %v", err)
	}

	c = client(true, limit-1)
	r, _ = c.Retr(1)
	n, err = io.Copy(io.Discard, r)
	var oe *POP3OversizeError
	if !errors.As(err, &oe) || n != limit || oe.Limit != limit || oe.Announced != 0 {
		t.Fatalf("one byte over the bound: %d bytes, %v", n, err)
	}
	if _, err := c.ListOne(1); !errors.As(err, &oe) {
		t.Fatalf("a command after the bound tripped: %v", err)
	}

	c = client(false, limit+1000) // no LIST: no bound
	r, _ = c.Retr(1)
	if n, err := io.Copy(io.Discard, r); err != nil || n != limit+1002 {
		t.Fatalf("a message without a LIST size: %d bytes, %v", n, err)
	}
}

// badInputRepeat is an endless reader of s.
type badInputRepeat string

func (s badInputRepeat) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], s)
	}
	return n, nil
}
