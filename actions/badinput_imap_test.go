package actions

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailwright/mailwright/internal/testmail"
)

// badInputFetchProxy relays IMAP between a client and target until the client sends a
// UID FETCH; that command is not passed on: the proxy answers it with hostile instead
// (which may use {TAG} for the command's tag) and closes the connection.
type badInputFetchProxy struct {
	ln      net.Listener
	target  string
	hostile func(tag string) []byte
	wg      sync.WaitGroup
}

func startBadInputFetchProxy(t *testing.T, target string, hostile func(tag string) []byte) *badInputFetchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &badInputFetchProxy{ln: ln, target: target, hostile: hostile}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.relay(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

var badInputFetchLine = regexp.MustCompile(`(?i)^(\S+) UID FETCH `)

func (p *badInputFetchProxy) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	var wmu sync.Mutex // writes to client
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				wmu.Lock()
				_, werr := client.Write(buf[:n])
				wmu.Unlock()
				if werr != nil {
					return
				}
			}
			if err != nil {
				client.Close()
				return
			}
		}
	}()
	br := bufio.NewReader(client)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if m := badInputFetchLine.FindStringSubmatch(line); m != nil {
			wmu.Lock()
			client.Write(p.hostile(m[1]))
			wmu.Unlock()
			return // closes both connections
		}
		if _, err := server.Write([]byte(line)); err != nil {
			return
		}
	}
}

// TestBadInputIMAPHugeLiteral: a server answers the download's FETCH with a literal that
// announces 1 GiB, sends 3 MiB of it and closes. IMAP Download Message must fail with a
// clear "truncated" error, without allocating anything near the announced size (the body
// streams), and leave no file (not even a temporary one) in the folder.
func TestBadInputIMAPHugeLiteral(t *testing.T) {
	const announced = 1 << 30
	srv := testmail.StartIMAPMemServer(t, testmail.IMAPMemOptions{Security: "none", Users: map[string]string{"bob": "bob-pw"}})
	sent := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 3<<20/64)
	proxy := startBadInputFetchProxy(t, srv.Addr(), func(string) []byte {
		return []byte(fmt.Sprintf("* 1 FETCH (UID 1 RFC822.SIZE %d BODY[] {%d}\r\n%s", announced, announced, sent))
	})
	host, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
	te := newTestEnv(t)
	te.mustRun(NewIMAPOpen(), map[string]string{"host": host, "port": port, "security": "none", "auth": "password",
		"user": "bob", "password": "bob-pw", "allow_insecure_auth": "true"})
	te.mustRun(NewIMAPSelect(), map[string]string{"folder": "INBOX"})
	dir := filepath.Join(t.TempDir(), "mail")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	began := time.Now()
	err := te.run(context.Background(), NewIMAPDownload(), map[string]string{"uid": "1", "folder": dir})
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("the download of a cut literal succeeded")
	}
	if !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), strconv.Itoa(announced)) {
		t.Errorf("error does not say the message was cut short: %v", err)
	}
	if d := time.Since(began); d > 15*time.Second {
		t.Errorf("took %v", d)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
		t.Errorf("allocated %d MiB for a message of which 3 MiB arrived", alloc>>20)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("files left in the folder: %v", entries)
	}
}

// badInputIMAPServerScript starts a TCP server that runs script on every connection
// (script reads what the client sends, or discards it with badInputDiscard), and closes
// the connections when the test ends.
func badInputIMAPServerScript(t *testing.T, script func(c net.Conn)) (host, port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); script(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	host, port, _ = net.SplitHostPort(ln.Addr().String())
	return host, port
}

// badInputDiscard reads and drops what the client sends on c, in the background.
func badInputDiscard(c net.Conn) { go io.Copy(io.Discard, c) }

// badInputOpenWithin runs IMAP Open against host:port and fails the test unless it ends
// with an error containing want within limit.
func badInputOpenWithin(t *testing.T, host, port, want string, limit time.Duration) {
	t.Helper()
	te := newTestEnv(t)
	done := make(chan error, 1)
	go func() {
		done <- te.run(context.Background(), NewIMAPOpen(), map[string]string{"host": host, "port": port, "security": "none",
			"auth": "password", "user": "bob", "password": "bob-pw", "allow_insecure_auth": "true", "timeout": "3s"})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "imap open "+net.JoinHostPort(host, port)+": ") {
			t.Fatalf("IMAP Open: %v, want an error saying %q", err, want)
		}
	case <-time.After(limit):
		t.Fatalf("IMAP Open still running after %v", limit)
	}
}

// TestBadInputIMAPCapabilityLoop: a "(" in a CAPABILITY list makes go-imap's reader loop
// forever at full CPU, and its Close waits for that loop, so without imapGuard the step
// never ends, whatever its timeout. With it, IMAP Open fails at once, saying why.
func TestBadInputIMAPCapabilityLoop(t *testing.T) {
	for _, greeting := range []string{"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN (] hi\r\n", "* OK hi\r\n* CAPABILITY IMAP4rev1 (x\r\n"} {
		host, port := badInputIMAPServerScript(t, func(c net.Conn) { badInputDiscard(c); io.WriteString(c, greeting) })
		badInputOpenWithin(t, host, port, "malformed CAPABILITY list", 10*time.Second)
	}
}

// TestBadInputIMAPClosedAfterGreeting: a server that greets and hangs up (or answers the
// login with nothing) gives an error, not an open connection that fails at the next step.
func TestBadInputIMAPClosedAfterGreeting(t *testing.T) {
	host, port := badInputIMAPServerScript(t, func(c net.Conn) {
		badInputDiscard(c)
		io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n")
		c.Close()
	})
	// Depending on when the hang-up is noticed: "read greeting: connection closed before
	// greeting", "login: the server closed the connection before (or during) the login".
	badInputOpenWithin(t, host, port, "closed", 10*time.Second)
}

// TestBadInputIMAPEndlessLine: a server that never ends its greeting line is cut off once
// the line exceeds the limit (imapMaxResponseLine, lowered here to 1 MiB through the
// connection's settings), instead of go-imap collecting it in memory until the machine
// runs out.
func TestBadInputIMAPEndlessLine(t *testing.T) {
	var sent atomic.Int64
	host, port := badInputIMAPServerScript(t, func(w net.Conn) {
		badInputDiscard(w)
		chunk := []byte(strings.Repeat("a", 64<<10))
		io.WriteString(w, "* OK ")
		for sent.Load() < 64<<20 {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	vals, err := NewIMAPOpen().Schema().Resolve(map[string]string{"host": host, "port": port, "security": "none",
		"auth": "password", "user": "bob", "password": "bob-pw", "allow_insecure_auth": "true", "timeout": "3s"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConn("imap", vals)
	if err != nil {
		t.Fatal(err)
	}
	c.imapMaxLine = 1 << 20
	done := make(chan error, 1)
	go func() {
		cl, err := OpenIMAP(context.Background(), c, nil)
		if err == nil {
			cl.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "longer than 1 MiB") || !strings.HasPrefix(err.Error(), "imap open "+net.JoinHostPort(host, port)+": ") {
			t.Fatalf("IMAP Open: %v, want an error saying the line is longer than 1 MiB", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("IMAP Open still running after 30s")
	}
	if n := sent.Load(); n >= 64<<20 {
		t.Fatalf("the client read %d MiB of one line", n>>20)
	}
}

// TestBadInputIMAPGuardSkipsLiterals: imapGuard judges only the protocol's own lines. A
// message (a literal) may hold anything — "[CAPABILITY (" text, lines longer than the line
// limit — and must pass, however the bytes are split into reads; the same text outside a
// literal is refused.
func TestBadInputIMAPGuardSkipsLiterals(t *testing.T) {
	body := "Subject: [CAPABILITY IMAP4rev1 (]\r\n\r\n* CAPABILITY IMAP4rev1 (x\r\n" + strings.Repeat("y", 5000) + "\r\n"
	ok := "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n* CAPABILITY IMAP4rev1 MOVE\r\n" +
		fmt.Sprintf("* 1 FETCH (UID 7 BODY[] {%d}\r\n%s BODY[HEADER] {%d+}\r\n%s)\r\nT1 OK [CAPABILITY IMAP4rev1] done\r\n", len(body), body, len(body), body)
	for _, step := range []int{1, 7, 4096, len(ok)} {
		g := imapGuard{maxLine: 1000}
		for i := 0; i < len(ok); i += step {
			if n, err := g.scan([]byte(ok[i:min(i+step, len(ok))])); err != nil {
				t.Fatalf("reads of %d bytes: refused at %d: %v", step, i+n, err)
			}
		}
	}
	for _, bad := range []string{"* CAPABILITY IMAP4rev1 (x\r\n", "T3 NO [capability a(] x\r\n", "* OK " + strings.Repeat("z", 2000)} {
		g := imapGuard{maxLine: 1000}
		n, err := g.scan([]byte(bad))
		if err == nil {
			t.Errorf("%.40q accepted", bad)
		} else if strings.Contains(bad, "(") && bad[n] != '(' {
			t.Errorf("%q: refused at byte %d (%q), want at the \"(\"", bad, n, bad[n])
		}
	}
}

// TestBadInputIMAPSearchDeepNesting: a raw SEARCH expression of the IMAP Mail Loop with a
// million nested NOTs (or parentheses) — a 4 MB task parameter — must be refused with an
// error, not crash the process.
func TestBadInputIMAPSearchDeepNesting(t *testing.T) {
	for _, expr := range []string{strings.Repeat("NOT ", 4_000_000) + "ALL", strings.Repeat("(", 4_000_000) + "ALL" + strings.Repeat(")", 4_000_000)} {
		if _, err := imapLoopParseSearch(expr); err == nil {
			t.Errorf("a search nested %d deep was accepted", 4_000_000)
		}
	}
}

// FuzzIMAPSearchExpr parses arbitrary raw SEARCH expressions (the IMAP Mail Loop's
// "search" parameter): no panic, and the same result every time.
func FuzzIMAPSearchExpr(f *testing.F) {
	for _, s := range []string{`OR FROM "anna" FROM "ben" NOT SUBJECT "newsletter" SINCE 1-Jan-2024`,
		`(UNSEEN LARGER 1000) UID 1:*,4`, `HEADER "X-Spam" "yes" KEYWORD $Junk`, `"unclosed`, `{5}`, `((`, `NOT`, `OR A`, `1,2:*`, `SENTON 31-Feb-2024`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		c1, err1 := imapLoopParseSearch(expr)
		c2, err2 := imapLoopParseSearch(expr)
		if (err1 == nil) != (err2 == nil) || fmt.Sprint(c1) != fmt.Sprint(c2) {
			t.Fatalf("two parses of %q differ", expr)
		}
		if err1 != nil && len(err1.Error()) > 1000+4*len(expr) { // it may quote the input (invalid bytes as U+FFFD)
			t.Fatalf("error of %d bytes", len(err1.Error()))
		}
	})
}

// badInputPipeConn is a client end of net.Pipe whose deadlines go-imap cannot move: the
// fuzz target bounds each session itself by closing the pipe.
type badInputPipeConn struct{ net.Conn }

func (badInputPipeConn) SetDeadline(time.Time) error      { return nil }
func (badInputPipeConn) SetReadDeadline(time.Time) error  { return nil }
func (badInputPipeConn) SetWriteDeadline(time.Time) error { return nil }

var badInputTagLine = regexp.MustCompile(`^((?:T|mw)\d+) `)

// badInputIMAPServer writes script to conn as a server would and then closes it. A line
// that starts with a command tag ("T3 OK ...", "mw1 OK ...") is held back until the
// client has sent that tag (or for at most a short while), so responses arrive after
// their commands, as they would from a real server. Everything the client sends is read.
func badInputIMAPServer(conn net.Conn, script []byte) {
	tags := make(chan string, 256)
	go func() {
		defer close(tags)
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if m := badInputTagLine.FindStringSubmatch(line); m != nil {
				select {
				case tags <- m[1]:
				default:
				}
			}
		}
	}()
	seen := map[string]bool{}
	budget := time.NewTimer(300 * time.Millisecond) // all waiting for tags, together
	defer budget.Stop()
	waiting := true
	for len(script) > 0 {
		line := script
		if i := strings.IndexByte(string(script), '\n'); i >= 0 {
			line = script[:i+1]
		}
		script = script[len(line):]
		if m := badInputTagLine.FindSubmatch(line); m != nil && waiting {
			for !seen[string(m[1])] && waiting {
				select {
				case tag, ok := <-tags:
					if !ok {
						waiting = false
					}
					seen[tag] = true
				case <-budget.C:
					waiting = false
				}
			}
		}
		if _, err := conn.Write(line); err != nil {
			break
		}
	}
	conn.Close()
}

// badInputIMAPSession runs against script what Mailwright's IMAP actions do with a
// connection: the STARTTLS preamble (greeting, CAPABILITY, STARTTLS, handshake) in our own
// parser, or go-imap's client (over imapConn, with its guard) through login, select, status, list, search, fetch of
// headers and of a whole body, store, move and logout.
func badInputIMAPSession(t *testing.T, script []byte, starttls bool) {
	cli, srv := net.Pipe()
	go badInputIMAPServer(srv, script)
	stop := time.AfterFunc(300*time.Millisecond, func() { cli.Close(); srv.Close() }) // bounds a stuck session
	defer stop.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cli.Close()
		if starttls {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if tc, err := imapStartTLS(ctx, cli, &tls.Config{ServerName: "imap.example.test"}); err == nil {
				tc.Close()
			}
			return
		}
		c := imapclient.New(&imapConn{Conn: badInputPipeConn{cli}, fixSASL: true}, nil) // as IMAP Open connects
		defer c.Close()
		if err := c.WaitGreeting(); err != nil {
			return
		}
		c.Capability().Wait()
		c.Login("alice", "pw").Wait()
		c.Select("INBOX", nil).Wait()
		c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true}).Wait()
		c.List("", "*", nil).Collect()
		c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
		all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
		c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, Envelope: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}}}).Collect()
		fetch := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for msg := fetch.Next(); msg != nil; msg = fetch.Next() {
			for it := msg.Next(); it != nil; it = msg.Next() {
				if b, ok := it.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
					io.Copy(io.Discard, b.Literal)
				}
			}
		}
		fetch.Close()
		c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close()
		c.Move(imap.UIDSetNum(1), "Archive").Wait()
		c.Logout().Wait()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		stacks := make([]byte, 1<<20)
		stacks = stacks[:runtime.Stack(stacks, true)]
		t.Fatalf("the IMAP session hangs although its connection was closed (starttls=%v); goroutines:\n%s", starttls, stacks)
	}
}

// FuzzIMAPResponses feeds arbitrary server bytes to the IMAP code that parses them: our
// STARTTLS preamble (greeting, CAPABILITY response code and lines, the STARTTLS answer)
// and go-imap's client through a whole session. Nothing may panic or hang: every broken
// answer must end as an error.
func FuzzIMAPResponses(f *testing.F) {
	session := "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN MOVE UIDPLUS] ready\r\n" +
		"* CAPABILITY IMAP4rev1 AUTH=PLAIN MOVE UIDPLUS\r\nT1 OK done\r\n" +
		"T2 OK [CAPABILITY IMAP4rev1 MOVE] logged in\r\n" +
		"* 2 EXISTS\r\n* FLAGS (\\Seen \\Answered $Junk)\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 9] x\r\nT3 OK [READ-WRITE] selected\r\n" +
		"* STATUS INBOX (MESSAGES 2 UIDNEXT 9 UIDVALIDITY 7 UNSEEN 1)\r\nT4 OK done\r\n" +
		"* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\Archive) \"/\" \"Archive\"\r\n* LIST () \"/\" {5}\r\nabc\"d\r\nT5 OK done\r\n" +
		"* SEARCH 1 4 8\r\nT6 OK done\r\n" +
		"* 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE 42 INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" ENVELOPE (\"Mon, 1 Jan 2024 10:00:00 +0000\" \"subj\" ((\"A\" NIL \"a\" \"example.test\")) NIL NIL NIL NIL NIL NIL \"<id@x>\") BODY[HEADER] {12}\r\nSubject: x\r\n)\r\n" +
		"T7 OK done\r\n" +
		"* 1 FETCH (UID 1 RFC822.SIZE 5 BODY[] {5}\r\nhello)\r\nT8 OK done\r\n" +
		"T9 OK stored\r\n" +
		"* OK [COPYUID 7 1 3] moved\r\n* 1 EXPUNGE\r\nT10 OK done\r\n" +
		"* BYE bye\r\nT11 OK done\r\n"
	f.Add([]byte(session), false)
	f.Add([]byte("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\nmw1 OK begin TLS\r\n\x16\x03\x01"), true)
	f.Add([]byte("* OK hi\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\nmw0 OK done\r\nmw1 OK go\r\n"), true)
	f.Add([]byte("* PREAUTH hi\r\n"), true)
	f.Add([]byte("* OK hi\r\n* 1 FETCH (BODY[] {1073741824}\r\nabc"), false)
	f.Add([]byte("* OK hi\r\n+ \r\n* 1 FETCH (UID 4294967296 FLAGS (\\Seen ENVELOPE (NIL NIL (NIL) ((NIL NIL NIL NIL))))\r\nT1 BAD [PARSE] x\r\n"), false)
	f.Add([]byte("* BYE go away\r\n"), false)
	f.Add([]byte("* OK hi\r\n* CAPABILITY IMAP4rev1 (x\r\nT1 OK done\r\n"), false) // go-imap looped forever on it (imapGuard)
	f.Fuzz(func(t *testing.T, script []byte, starttls bool) {
		badInputIMAPSession(t, script, starttls)
	})
}
