package testmail

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDovecotIMAPStartTLS(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, DovecotOptions{})
	u := d.Users[0]

	c := dialText(t, d.Addr(d.IMAPPort), nil)
	if g := c.line(); !strings.HasPrefix(g, "* OK") || !strings.Contains(g, "STARTTLS") {
		t.Fatalf("greeting %q does not offer STARTTLS", g)
	}
	c.imapOK("STARTTLS")
	c.startTLS(d.TLSConfig())
	c.imapOK("LOGIN " + imapQuote(u.Name) + " " + imapQuote(u.Password))

	// The auth penalty is off: failures keep coming back quickly (with the penalty the
	// second would take 2 s, the third 4 s). Dovecot 2.3 still answers after about 0.5 s.
	bad := dialText(t, d.Addr(d.IMAPPort), nil)
	bad.line()
	bad.imapOK("STARTTLS")
	bad.startTLS(d.TLSConfig())
	for i := range 3 {
		start := time.Now()
		if _, st := bad.imap("LOGIN " + imapQuote(u.Name) + ` "wrong"`); !strings.HasPrefix(st, "NO") {
			t.Fatalf("LOGIN with a wrong password: %q, want NO\n%s", st, d.Log())
		}
		if el := time.Since(start); el >= time.Second {
			t.Fatalf("failed LOGIN %d took %s; the auth penalty or failure delay is on", i+1, el)
		}
	}
}

func TestDovecotIMAPS(t *testing.T) {
	t.Parallel()
	users := []User{DefaultUser(), {Name: "Bob@Example.test", Password: `p:a"ss w\ord `}}
	d := StartDovecot(t, DovecotOptions{Users: users})
	for _, u := range users {
		c := dialText(t, d.Addr(d.IMAPSPort), d.TLSConfig())
		if g := c.line(); !strings.HasPrefix(g, "* OK") {
			t.Fatalf("greeting %q", g)
		}
		c.imapOK("LOGIN " + imapQuote(u.Name) + " " + imapQuote(u.Password))
		c.imapOK("SELECT INBOX")
	}
}

func TestDovecotPOP3(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, DovecotOptions{})
	u := d.Users[0]
	msgs := d.SeedN(t, u.Name, "INBOX", 2, 1200)
	want := fmt.Sprintf("+OK 2 %d", len(msgs[0])+len(msgs[1]))

	c := dialText(t, d.Addr(d.POP3Port), nil)
	c.popOK("")
	c.popOK("STLS")
	c.startTLS(d.TLSConfig())
	c.popOK("USER " + u.Name)
	c.popOK("PASS " + u.Password)
	if got := c.pop("STAT"); got != want {
		t.Fatalf("STAT after STLS = %q, want %q", got, want)
	}

	s := dialText(t, d.Addr(d.POP3SPort), d.TLSConfig())
	s.popOK("")
	s.popOK("USER " + u.Name)
	s.popOK("PASS " + u.Password)
	if got := s.pop("STAT"); got != want {
		t.Fatalf("STAT over POP3S = %q, want %q", got, want)
	}
}

func TestDovecotSeedNRoundTrip(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, DovecotOptions{})
	u := d.Users[0]
	msgs := d.SeedN(t, u.Name, "INBOX", 3, 5000)

	c := imapsLogin(t, d, u)
	c.imapOK("SELECT INBOX")
	lines, st := c.imap("UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])")
	if !strings.HasPrefix(st, "OK") || len(lines) != 3 {
		t.Fatalf("UID FETCH: %q, %d responses\n%s", st, len(lines), d.Log())
	}
	for i, l := range lines {
		if !strings.Contains(l.text, fmt.Sprintf("UID %d RFC822.SIZE %d ", i+1, len(msgs[i]))) {
			t.Errorf("response %d: %q, want UID %d RFC822.SIZE %d", i, l.text, i+1, len(msgs[i]))
		}
		if len(l.literals) != 1 || !bytes.Equal(l.literals[0], msgs[i]) {
			t.Errorf("message %d over IMAP differs from what SeedN returned", i+1)
		}
	}

	p := dialText(t, d.Addr(d.POP3SPort), d.TLSConfig())
	p.popOK("")
	p.popOK("USER " + u.Name)
	p.popOK("PASS " + u.Password)
	for i, m := range msgs {
		if got := p.retr(i + 1); !bytes.Equal(got, m) {
			t.Errorf("message %d over POP3 differs:\n%q\nwant\n%q", i+1, got, m)
		}
	}
	p.popOK("QUIT")

	// Messages reads back what the server holds, including flags: POP3 marked all three
	// \Seen at QUIT, and IMAP adds \Flagged to the second.
	c.imapOK("NOOP")
	c.imapOK(`UID STORE 2 +FLAGS (\Flagged)`)
	stored := d.Messages(t, u.Name, "INBOX")
	if len(stored) != 3 {
		t.Fatalf("Messages: %d, want 3", len(stored))
	}
	for i, s := range stored {
		if !bytes.Equal(s.Body, msgs[i]) {
			t.Errorf("Messages()[%d] is not message %d", i, i+1)
		}
	}
	if got := stored[0].Flags + " " + stored[1].Flags + " " + stored[2].Flags; got != "S FS S" {
		t.Errorf("flags %q, want \"S FS S\"", got)
	}
}

func TestDovecotSeedFolder(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, DovecotOptions{})
	u := d.Users[0]
	c := imapsLogin(t, d, u)
	c.imapOK(`LIST "" "*"`) // let Dovecot build its mailbox list before the folders appear

	archive := [][]byte{MessageText(1, 800), []byte("Subject: bare LF\n\nbody\n")}
	d.Seed(t, u.Name, "Archive/2024", archive...)
	d.Seed(t, u.Name, "Entwürfe", MessageText(2, 300))

	lines, st := c.imap(`LIST "" "*"`)
	list := joinText(lines)
	if !strings.HasPrefix(st, "OK") || !strings.Contains(list, `"/" Archive/2024`) || !strings.Contains(list, `"/" Entw&APw-rfe`) {
		t.Fatalf("LIST does not show the seeded folders:\n%s", list)
	}
	lines, _ = c.imap(`STATUS "Archive/2024" (MESSAGES UNSEEN)`)
	if got := joinText(lines); !strings.Contains(got, "MESSAGES 2 UNSEEN 2") {
		t.Fatalf("STATUS Archive/2024: %s", got)
	}
	c.imapOK(`SELECT "Archive/2024"`)
	lines, _ = c.imap("FETCH 2 (RFC822.SIZE BODY.PEEK[])")
	want := []byte("Subject: bare LF\r\n\r\nbody\r\n") // IMAP sends CRLF
	if len(lines) != 1 || !strings.Contains(lines[0].text, "RFC822.SIZE 26 ") || !bytes.Equal(lines[0].literals[0], want) {
		t.Fatalf("FETCH of the bare-LF message: %+v", lines)
	}

	stored := d.Messages(t, u.Name, "Archive/2024")
	if len(stored) != 2 || !bytes.Equal(stored[0].Body, archive[0]) || !bytes.Equal(stored[1].Body, archive[1]) {
		t.Fatalf("Messages(Archive/2024) = %d messages, not what was seeded", len(stored))
	}
	if got := d.Messages(t, u.Name, "Never/Created"); len(got) != 0 {
		t.Fatalf("Messages of a missing folder = %d messages", len(got))
	}
}

// TestDovecotSeedDuringIdle seeds in batches while a client IDLEs in the folder (Dovecot
// syncs at once through inotify) and checks that UIDs still follow the delivery order.
func TestDovecotSeedDuringIdle(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, DovecotOptions{})
	u := d.Users[0]
	c := imapsLogin(t, d, u)
	c.imapOK("SELECT INBOX")
	c.send("i IDLE")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	const batches, per = 8, 25
	idled := make(chan error, 1)
	go func() { // reads the IDLE updates while the test goroutine seeds
		for {
			l, err := c.r.ReadString('\n')
			if err != nil {
				idled <- err
				return
			}
			if strings.HasSuffix(strings.TrimRight(l, "\r\n"), fmt.Sprintf(" %d EXISTS", batches*per)) {
				idled <- nil
				return
			}
		}
	}()
	for range batches {
		d.SeedN(t, u.Name, "INBOX", per, 300)
	}
	if err := <-idled; err != nil {
		t.Fatalf("IDLE never reported %d messages: %v\n%s", batches*per, err, d.Log())
	}
	c.send("DONE")
	for l := c.line(); !strings.HasPrefix(l, "i "); l = c.line() {
	}
	lines, _ := c.imap("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	if len(lines) != batches*per {
		t.Fatalf("%d messages, want %d", len(lines), batches*per)
	}
	for i, l := range lines {
		want := fmt.Sprintf("Subject: Test message %d\r\n", i+1)
		if !strings.Contains(l.text, fmt.Sprintf("UID %d ", i+1)) || string(l.literals[0][:len(want)]) != want {
			t.Fatalf("UID %d is %q %q, want %q", i+1, l.text, l.literals[0], want)
		}
	}
}

func TestDovecotSeedTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 10,000 messages")
	}
	t.Parallel()
	d := StartDovecot(t, DovecotOptions{})
	u := d.Users[0]
	start := time.Now()
	d.SeedN(t, u.Name, "INBOX", 10000, 1000)
	seeded := time.Since(start)
	c := imapsLogin(t, d, u)
	lines, _ := c.imap("STATUS INBOX (MESSAGES)")
	if got := joinText(lines); !strings.Contains(got, "MESSAGES 10000") {
		t.Fatalf("STATUS: %s", got)
	}
	t.Logf("seeded 10,000 messages in %s; Dovecot indexed them in %s", seeded.Round(time.Millisecond), (time.Since(start) - seeded).Round(time.Millisecond))
	if seeded > 10*time.Second {
		t.Errorf("seeding 10,000 messages took %s", seeded)
	}
}

// TestDovecotStopsCleanly checks that after a test's cleanups nothing listens on the ports,
// no Dovecot process is left and the private directory is gone.
func TestDovecotStopsCleanly(t *testing.T) {
	t.Parallel()
	var d *Dovecot
	var children []int
	t.Run("run", func(t *testing.T) {
		d = StartDovecot(t, DovecotOptions{})
		imapsLogin(t, d, d.Users[0]).imapOK("SELECT INBOX") // spawn login, auth and imap processes
		children = childPIDs(d.proc.cmd.Process.Pid)
		if len(children) == 0 {
			t.Log("no child processes found (no /proc?)")
		}
	})
	if d == nil {
		t.Fatal("Dovecot did not start")
	}
	if err := d.proc.alive(); err == nil {
		t.Error("the Dovecot master is still running")
	}
	for _, port := range []int{d.IMAPPort, d.IMAPSPort, d.POP3Port, d.POP3SPort, d.SubmissionPort} {
		if c, err := net.DialTimeout("tcp", d.Addr(port), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d still accepts connections", port)
		}
	}
	for _, pid := range children {
		// A zombie has exited; it only waits for init, its new parent, to reap it.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(stat, ')'); err == nil && i+2 < len(stat) && stat[i+2] != 'Z' {
			t.Errorf("Dovecot child %d is still running: %s", pid, stat)
		}
	}
	if _, err := os.Stat(d.dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("private directory %s is still there (%v)", d.dir, err)
	}
}

func TestMessageText(t *testing.T) {
	t.Parallel()
	for _, size := range []int{100, 500, 1000, 5000, 5001, 5002, 100000} {
		m := MessageText(7, size)
		if size >= 400 && len(m) != size {
			t.Errorf("MessageText(7, %d) has %d bytes", size, len(m))
		}
		if bytes.Count(m, []byte("\n")) != bytes.Count(m, []byte("\r\n")) || !bytes.HasSuffix(m, []byte("\r\n")) {
			t.Errorf("size %d: not all lines end in CRLF", size)
		}
		for _, l := range bytes.Split(m, []byte("\r\n")) {
			if len(l) > 998 {
				t.Errorf("size %d: line of %d bytes", size, len(l))
			}
		}
		if !bytes.Contains(m, []byte("\r\nSubject: Test message 7\r\n")) {
			t.Errorf("size %d: no Subject", size)
		}
	}
	if bytes.Equal(MessageText(1, 900), MessageText(2, 900)) {
		t.Error("messages 1 and 2 are equal")
	}
}

// textConn is a line-based client connection for IMAP, POP3 and SMTP in these tests.
type textConn struct {
	t   testing.TB
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func dialText(t testing.TB, addr string, cfg *tls.Config) *textConn {
	t.Helper()
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	} else {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &textConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *textConn) startTLS(cfg *tls.Config) {
	c.t.Helper()
	tc := tls.Client(c.c, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
}

func (c *textConn) send(line string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads one line without its CRLF.
func (c *textConn) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// imapResp is an untagged IMAP response with its literals taken out.
type imapResp struct {
	text     string
	literals [][]byte
}

// imap sends a tagged command and returns the untagged responses and the tagged status
// ("OK …", "NO …"). A continuation request is answered with an empty line, which is what
// a failed SASL exchange asks for.
func (c *textConn) imap(cmd string) ([]imapResp, string) {
	c.t.Helper()
	c.tag++
	tag := "t" + strconv.Itoa(c.tag)
	c.send(tag + " " + cmd)
	var resps []imapResp
	for {
		l := c.line()
		switch {
		case strings.HasPrefix(l, tag+" "):
			return resps, strings.TrimPrefix(l, tag+" ")
		case strings.HasPrefix(l, "+"):
			c.send("")
			continue
		}
		resp := imapResp{text: l}
		for strings.HasSuffix(l, "}") && strings.LastIndexByte(l, '{') >= 0 {
			n, err := strconv.Atoi(l[strings.LastIndexByte(l, '{')+1 : len(l)-1])
			if err != nil {
				c.t.Fatalf("bad literal in %q", l)
			}
			lit := make([]byte, n)
			if _, err := io.ReadFull(c.r, lit); err != nil {
				c.t.Fatalf("read literal: %v", err)
			}
			resp.literals = append(resp.literals, lit)
			l = c.line()
			resp.text += " " + l
		}
		resps = append(resps, resp)
	}
}

func (c *textConn) imapOK(cmd string) []imapResp {
	c.t.Helper()
	resps, st := c.imap(cmd)
	if !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("%s: %s", cmd, st)
	}
	return resps
}

func imapsLogin(t testing.TB, d *Dovecot, u User) *textConn {
	t.Helper()
	c := dialText(t, d.Addr(d.IMAPSPort), d.TLSConfig())
	c.line()
	c.imapOK("LOGIN " + imapQuote(u.Name) + " " + imapQuote(u.Password))
	return c
}

func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func joinText(resps []imapResp) string {
	var b strings.Builder
	for _, r := range resps {
		b.WriteString(r.text + "\n")
	}
	return b.String()
}

// pop sends a POP3 command ("" reads the greeting) and returns the status line.
func (c *textConn) pop(cmd string) string {
	c.t.Helper()
	if cmd != "" {
		c.send(cmd)
	}
	return c.line()
}

func (c *textConn) popOK(cmd string) {
	c.t.Helper()
	if l := c.pop(cmd); !strings.HasPrefix(l, "+OK") {
		c.t.Fatalf("POP3 %q: %s", cmd, l)
	}
}

// retr fetches message n and undoes the dot-stuffing.
func (c *textConn) retr(n int) []byte {
	c.t.Helper()
	c.popOK("RETR " + strconv.Itoa(n))
	var b bytes.Buffer
	for {
		l := c.line()
		if l == "." {
			return b.Bytes()
		}
		b.WriteString(strings.TrimPrefix(l, ".") + "\r\n")
	}
}

// childPIDs lists the processes whose parent is pid (Linux /proc; empty elsewhere).
func childPIDs(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may contain spaces, so cut after the last ')'.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			if k, err := strconv.Atoi(filepath.Base(filepath.Dir(path))); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}
