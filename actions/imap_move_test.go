package actions

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailwright/mailwright/internal/testmail"
)

// imapMsgsCapProxy is a TLS relay in front of the harness Dovecot that deletes the named
// capabilities from every CAPABILITY the server announces: Dovecot itself, seen as a
// server without MOVE or UIDPLUS. (The in-memory go-imap server announces IMAP4rev2,
// which implies both, so it cannot play that part.) It returns the relay's address.
func imapMsgsCapProxy(t *testing.T, dc *testmail.Dovecot, strip ...string) string {
	t.Helper()
	capRe := regexp.MustCompile(`(?i) (` + strings.Join(strip, "|") + `)([ \]\r])`)
	return imapMsgsProxy(t, dc, func(line string) (string, int64) {
		if strings.HasPrefix(line, "* CAPABILITY ") || strings.Contains(line, "[CAPABILITY ") {
			for capRe.MatchString(line) {
				line = capRe.ReplaceAllString(line, "$2")
			}
		}
		return line, -1
	})
}

// imapMsgsProxy relays TLS connections to the harness Dovecot, passing each server line
// through rewrite. A line announcing a literal is followed by the literal, copied
// untouched, or only its first cut bytes before the connection is dropped (cut ≥ 0).
func imapMsgsProxy(t *testing.T, dc *testmail.Dovecot, rewrite func(line string) (string, int64)) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", dc.Certs.ServerTLS())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	litRe := regexp.MustCompile(`\{(\d+)\}\r\n$`)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := tls.Dial("tcp", dc.Addr(dc.IMAPSPort), dc.TLSConfig())
			if err != nil {
				down.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, down, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, down); up.Close() }()
			go func() {
				defer wg.Done()
				defer down.Close()
				br := bufio.NewReader(up)
				for {
					line, err := br.ReadString('\n')
					line, cut := rewrite(line)
					if _, werr := io.WriteString(down, line); werr != nil || err != nil {
						return
					}
					if m := litRe.FindStringSubmatch(line); m != nil {
						n, _ := strconv.ParseInt(m[1], 10, 64)
						if cut >= 0 && cut < n {
							io.CopyN(down, br, cut)
							return
						}
						if _, err := io.CopyN(down, br, n); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// imapMsgsFolderBodies returns the bodies of folder's messages.
func imapMsgsFolderBodies(t *testing.T, dc *testmail.Dovecot, folder string) []string {
	t.Helper()
	var out []string
	for _, m := range dc.Messages(t, testmail.DefaultUser().Name, folder) {
		out = append(out, string(m.Body))
	}
	return out
}

func TestIMAPMsgsMove(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	seeded := dc.SeedN(t, user, "Src", 5, 300)
	other := imapMsgsOther(t, dc, "Src")
	// Another program marked UID 1 \Deleted: no move may expunge it.
	if err := other.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	checkSrc := func(t *testing.T, wantIdx ...int) {
		t.Helper()
		got := imapMsgsFolderBodies(t, dc, "Src")
		var want []string
		for _, i := range wantIdx {
			want = append(want, string(seeded[i]))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("source folder holds %d messages, want the seeded ones %v", len(got), wantIdx)
		}
	}

	te := newTestEnv(t)
	s := imapMsgsSession(t, te, dc, "Src")
	if !s.Caps().Has(imap.CapMove) || !s.Caps().Has(imap.CapUIDPlus) {
		t.Fatal("the harness Dovecot should offer MOVE and UIDPLUS")
	}
	err := te.run(context.Background(), NewIMAPMove(), map[string]string{"uid": "2", "target_folder": "Archive/2024"})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "create_folder") {
		t.Fatalf("missing target: %v", err)
	}
	checkSrc(t, 0, 1, 2, 3, 4)
	te.mustRun(NewIMAPMove(), map[string]string{"uid": "2", "target_folder": "Archive/2024", "create_folder": "true"})
	if te.Var("MovedUID") != "1" || te.Var("MoveComplete") != "true" {
		t.Fatalf("MOVE: MovedUID %q, MoveComplete %q", te.Var("MovedUID"), te.Var("MoveComplete"))
	}
	checkSrc(t, 0, 2, 3, 4)
	if got := imapMsgsFolderBodies(t, dc, "Archive/2024"); len(got) != 1 || got[0] != string(seeded[1]) {
		t.Fatalf("target holds %d messages", len(got))
	}
	for raw, want := range map[string]string{"2": "no message with UID 2", "": "IMAP Mail Loop"} {
		err := te.run(context.Background(), NewIMAPMove(), map[string]string{"uid": raw, "target_folder": "Archive/2024"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("move uid %q: %v", raw, err)
		}
	}
	if err := te.run(context.Background(), NewIMAPMove(), map[string]string{"uid": "3", "target_folder": "Src"}); err == nil || !strings.Contains(err.Error(), "already in") {
		t.Errorf("move into its own folder: %v", err)
	}

	// Without MOVE (but with UIDPLUS): copy, mark, UID EXPUNGE of that UID only.
	t.Run("no MOVE", func(t *testing.T) {
		te := newTestEnv(t)
		s := imapMsgsSessionAt(t, te, imapMsgsCapProxy(t, dc, "MOVE"), dc.TLSConfig(), "Src", false)
		if s.Caps().Has(imap.CapMove) || !s.Caps().Has(imap.CapUIDPlus) {
			t.Fatalf("proxy caps: %v", s.Caps())
		}
		// From inside a loop: the current message (mark_seen then finds it gone, which is fine).
		imapMsgsMustLoop(t, te, map[string]string{"search": "UID 3", "mark_seen": "true"}, func(uint32) error {
			return te.run(context.Background(), NewIMAPMove(), map[string]string{"target_folder": "Archive/2024"})
		})
		if te.Var("MovedUID") != "2" || te.Var("MoveComplete") != "true" {
			t.Fatalf("COPY fallback: MovedUID %q, MoveComplete %q", te.Var("MovedUID"), te.Var("MoveComplete"))
		}
		checkSrc(t, 0, 3, 4)
		if got := imapMsgsFolderBodies(t, dc, "Archive/2024"); len(got) != 2 || got[1] != string(seeded[2]) {
			t.Fatalf("target holds %d messages", len(got))
		}
	})

	// Without MOVE and UIDPLUS: copied and marked, the original stays, nothing else is touched.
	t.Run("no MOVE, no UIDPLUS", func(t *testing.T) {
		te := newTestEnv(t)
		s := imapMsgsSessionAt(t, te, imapMsgsCapProxy(t, dc, "MOVE", "UIDPLUS"), dc.TLSConfig(), "Src", false)
		if s.Caps().Has(imap.CapMove) || s.Caps().Has(imap.CapUIDPlus) {
			t.Fatalf("proxy caps: %v", s.Caps())
		}
		te.mustRun(NewIMAPMove(), map[string]string{"uid": "4", "target_folder": "Archive/2024"})
		if te.Var("MoveComplete") != "false" || !strings.Contains(te.Logs.String(), "neither MOVE nor UIDPLUS") {
			t.Fatalf("MoveComplete %q; log:\n%s", te.Var("MoveComplete"), te.Logs.String())
		}
		checkSrc(t, 0, 3, 4)
		flags := imapMsgsMaildirFlags(t, dc, "Src")
		if !strings.Contains(flags[0], "T") || !strings.Contains(flags[1], "T") || strings.Contains(flags[2], "T") {
			t.Fatalf("Maildir flags %q: UID 1 (other program) and UID 4 (copied) marked, UID 5 not", flags)
		}
		if got := imapMsgsFolderBodies(t, dc, "Archive/2024"); len(got) != 3 || got[2] != string(seeded[3]) {
			t.Fatalf("target holds %d messages", len(got))
		}

		// Delete Marked refuses a plain EXPUNGE unless allowed, then removes every marked one.
		err := te.run(context.Background(), NewIMAPDeleteMarked(), map[string]string{"uids": "4"})
		if err == nil || !strings.Contains(err.Error(), "UIDPLUS") || !strings.Contains(err.Error(), "allow_plain_expunge") {
			t.Fatalf("delete marked without UIDPLUS: %v", err)
		}
		checkSrc(t, 0, 3, 4)
		te.mustRun(NewIMAPDeleteMarked(), map[string]string{"allow_plain_expunge": "true"})
		if te.Var("DeletedCount") != "2" {
			t.Fatalf("plain EXPUNGE: DeletedCount %q", te.Var("DeletedCount"))
		}
		checkSrc(t, 4)
	})
}
