package actions

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// badInputPOP3Session runs what Mailwright's POP3 actions do with a connection against a
// server that sends script: the greeting (and, with starttls, CAPA and STLS in our own
// parser), then login, AUTH, CAPA, STAT, LIST, UIDL, TOP (pipelined when CAPA says so),
// RETR, DELE, RSET, NOOP and QUIT.
func badInputPOP3Session(t *testing.T, script []byte, starttls bool) {
	cli, srv := net.Pipe()
	go badInputIMAPServer(srv, script) // no tags in POP3: it just writes script and closes
	stop := time.AfterFunc(300*time.Millisecond, func() { cli.Close(); srv.Close() })
	defer stop.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		sec := SecurityNone
		if starttls {
			sec = SecuritySTARTTLS
		}
		c, err := pop3Open(ctx, cli, sec, &tls.Config{ServerName: "pop.example.test"}, time.Now().Add(300*time.Millisecond))
		if err != nil {
			return
		}
		c.conn.idle, c.conn.openDeadline = 300*time.Millisecond, time.Time{}
		defer c.Close()
		c.UserPass("alice", "pw")
		POP3Authenticate(c, NewXOAuth2Client("alice", "token"))
		c.Capabilities()
		c.SASLMechanisms()
		if n, size, err := c.Stat(); err == nil && (n < 0 || size < 0) {
			t.Errorf("STAT gave %d messages of %d bytes", n, size)
		}
		for _, list := range []func() ([]POP3Entry, error){c.List, c.UIDLs} {
			if es, err := list(); err == nil {
				if !sort.SliceIsSorted(es, func(i, j int) bool { return es[i].Number < es[j].Number }) {
					t.Errorf("entries not in number order: %v", es)
				}
				for _, e := range es {
					if e.Number <= 0 {
						t.Errorf("bad entry %+v", e)
					}
				}
			}
		}
		c.ListOne(1)
		c.UIDLOne(1)
		c.TopHeaders([]int{1, 2, 3}, 4096, func(_ int, h io.Reader, _ error) error {
			if h != nil {
				io.Copy(io.Discard, h)
			}
			return nil
		})
		c.RetrRaw(1)
		if r, err := c.Retr(2); err == nil {
			io.CopyN(io.Discard, r, 10)
			r.Close()
		}
		c.Dele(1)
		c.Rset()
		c.Noop()
		c.Quit()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		stacks := make([]byte, 1<<20)
		stacks = stacks[:runtime.Stack(stacks, true)]
		t.Fatalf("the POP3 session hangs although its connection was closed; goroutines:\n%s", stacks)
	}
}

// FuzzPOP3Responses feeds arbitrary server bytes to our POP3 client: greeting, CAPA (also
// before STLS), AUTH continuations, STAT, LIST, UIDL, TOP and RETR answers. Nothing may
// panic or hang, and the parsed listings must be sane.
func FuzzPOP3Responses(f *testing.F) {
	f.Add([]byte("+OK ready\r\n+OK\r\n+OK logged in\r\n+ \r\n-ERR [AUTH] bad token\r\n"+
		"+OK\r\nUIDL\r\nTOP\r\nPIPELINING\r\nSASL XOAUTH2 PLAIN\r\n.\r\n+OK 2 320\r\n+OK\r\n1 120\r\n2 200\r\n.\r\n+OK\r\n1 a1\r\n2 b2\r\n.\r\n"+
		"+OK 1 120\r\n+OK 1 a1\r\n+OK\r\nSubject: x\r\n\r\n.\r\n-ERR no such message\r\n+OK\r\nSubject: y\r\n\r\n.\r\n"+
		"+OK\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\n+OK\r\nline\r\n.\r\n+OK\r\n+OK\r\n+OK\r\n+OK bye\r\n"), false)
	f.Add([]byte("+OK hi\r\n+OK\r\nSTLS\r\n.\r\n+OK begin TLS\r\n\x16\x03\x01\x00"), true)
	f.Add([]byte("+OK hi\r\n-ERR no CAPA\r\n"), true)
	f.Add([]byte("+OK\r\n+OK\r\n+OK\r\n+ eyJzdGF0dXMiOiI0MDEifQ==\r\n-ERR x\r\n+OK\r\n.\r\n+OK -1 -5\r\n+OK\r\n0 1\r\nx y\r\n1\r\n.\r\n"), false)
	f.Add([]byte("-ERR go away\r\n"), false)
	f.Add([]byte("+OK\r\n"+strings.Repeat("x", 70_000)+"\r\n"), false)
	f.Fuzz(func(t *testing.T, script []byte, starttls bool) {
		badInputPOP3Session(t, script, starttls)
	})
}

// TestBadInputPOP3NegativeSize: a LIST answer with a negative size is malformed, as
// STAT's already is; the error quotes the server's line.
func TestBadInputPOP3NegativeSize(t *testing.T) {
	for _, wire := range []string{"+OK\r\n1 -5\r\n.\r\n", "+OK\r\n1 100\r\n2 -5\r\n3 7\r\n.\r\n", "+OK 1 -5\r\n"} {
		c := badInputPOP3Client(wire)
		var err error
		if strings.Count(wire, "\r\n") > 1 {
			_, err = c.List()
		} else {
			_, err = c.ListOne(1)
		}
		if err == nil {
			t.Errorf("%q: a negative size was accepted", wire)
		} else if !strings.Contains(err.Error(), " -5") || !strings.Contains(err.Error(), "negative size") {
			t.Errorf("%q: the error does not name the bad line: %v", wire, err)
		}
		if c.Err() != nil {
			t.Errorf("%q: the session broke on a malformed LIST line: %v", wire, c.Err())
		}
	}
}

// badInputPOP3Client is a client reading wire as the server's answers; what it sends is
// discarded.
func badInputPOP3Client(wire string) *POP3Client {
	cli, srv := net.Pipe()
	go io.Copy(io.Discard, srv)
	return &POP3Client{addr: "wire", conn: &pop3NetConn{Conn: cli, idle: time.Second},
		br: bufio.NewReaderSize(strings.NewReader(wire), pop3BufferSize)}
}

// TestBadInputPOP3SilentServer: a server that stops sending in the middle of a message
// ends the download after the connection's timeout, with no file left.
func TestBadInputPOP3SilentServer(t *testing.T) {
	host, port := badInputIMAPServerScript(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		io.WriteString(c, "+OK ready\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "LIST "):
				io.WriteString(c, "+OK 1 100\r\n")
			case strings.HasPrefix(cmd, "UIDL "):
				io.WriteString(c, "+OK 1 silent\r\n")
			case cmd == "STAT":
				io.WriteString(c, "+OK 1 100\r\n")
			case strings.HasPrefix(cmd, "RETR "):
				io.WriteString(c, "+OK\r\nSubject: half a message\r\n")
				io.Copy(io.Discard, br) // and nothing more, until the connection is closed
				return
			case cmd == "CAPA":
				io.WriteString(c, "-ERR no\r\n")
			default:
				io.WriteString(c, "+OK\r\n")
			}
		}
	})
	te := newTestEnv(t)
	te.mustRun(NewPOP3Open(), map[string]string{"host": host, "port": port, "security": "none", "auth": "password",
		"user": "u", "password": "p", "allow_insecure_auth": "true", "timeout": "1s"})
	dir := filepath.Join(t.TempDir(), "mail")
	began := time.Now()
	err := te.run(context.Background(), NewPOP3Download(), map[string]string{"number": "1", "folder": dir})
	if err == nil {
		t.Fatal("half a message was downloaded")
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("took %v with a 1s timeout", d)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}
