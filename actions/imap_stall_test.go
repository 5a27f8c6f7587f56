package actions

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// imapStallTimeout is the "Timeout" of the stall tests' connections.
const imapStallTimeout = 500 * time.Millisecond

// imapStallOpen opens the default connection to dc's IMAPS port through port (a fault
// proxy's, or dc's own) with imapStallTimeout, and selects INBOX.
func imapStallOpen(t *testing.T, te *testEnv, dc *testmail.Dovecot, port int) *IMAPSession {
	t.Helper()
	params := imapTestPasswordParams(dc, port, "tls")
	params["timeout"] = imapStallTimeout.String()
	s := imapTestOpen(t, te, params)
	te.mustRun(NewIMAPSelect(), map[string]string{"folder": "INBOX"})
	return s
}

// imapStallCheck fails the test unless err is the stall error of a step that ran for took:
// it names the timeout and the advice, wraps os.ErrDeadlineExceeded, is temporary, and came
// no sooner than the timeout and not much later.
func imapStallCheck(t *testing.T, err error, took time.Duration, prefix string) {
	t.Helper()
	want := prefix + `: the server sent nothing for 500ms (the connection's "Timeout"); the connection was closed: open it again, or raise "Timeout" on IMAP Open`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || !Temporary(err) {
		t.Fatalf("not a temporary timeout: %v", err)
	}
	if took < imapStallTimeout-50*time.Millisecond || took > imapStallTimeout+3*time.Second {
		t.Fatalf("failed after %s, want about %s", took, imapStallTimeout)
	}
}

// TestIMAPStallFailsSilentServer: a server that stops answering after the login fails the
// waiting step within the connection's timeout, whether nothing of the answer came (a
// command) or it stopped in the middle of a message. The session stays failed with the
// same explanation, a later IMAP Close returns at once, and no partial file is left.
func TestIMAPStallFailsSilentServer(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	dc.SeedN(t, u.Name, "INBOX", 1, 2000)
	dc.SeedN(t, u.Name, "INBOX", 1, 2<<20)
	proxy := testmail.StartFaultProxy(t, dc.Addr(dc.IMAPSPort))

	t.Run("no answer", func(t *testing.T) {
		proxy.Pass()
		te := newTestEnv(t)
		s := imapStallOpen(t, te, dc, proxy.Port)
		// The reader has been blocked in Read since the login; idle time outside a step
		// must not count towards the timeout once a step starts.
		time.Sleep(2 * imapStallTimeout)
		proxy.Set(testmail.Fault{Kind: testmail.FaultStall})
		dir := t.TempDir()
		start := time.Now()
		err := te.run(context.Background(), NewIMAPDownload(), map[string]string{"uid": "1", "folder": dir})
		imapStallCheck(t, err, time.Since(start), `imap fetch UID 1 from "INBOX" on `+s.Server)
		imapStallNoFiles(t, dir)

		// The next step on the dead session says the same at once (imapCtxErr's path).
		start = time.Now()
		err = te.run(context.Background(), NewIMAPFolderInfo(), map[string]string{"folder": "INBOX"})
		if err == nil || !strings.Contains(err.Error(), `imap folder info "INBOX" on `+s.Server+`: the server sent nothing for 500ms`) || time.Since(start) > time.Second {
			t.Fatalf("after %s: %v", time.Since(start), err)
		}
		start = time.Now()
		if err := te.run(context.Background(), NewIMAPClose(), nil); err != nil || time.Since(start) > time.Second {
			t.Fatalf("IMAP Close after %s: %v", time.Since(start), err)
		}
	})

	t.Run("mid message", func(t *testing.T) {
		proxy.Pass()
		te := newTestEnv(t)
		s := imapStallOpen(t, te, dc, proxy.Port)
		proxy.Set(testmail.Fault{Kind: testmail.FaultStall, Dir: testmail.ToClient, After: 300_000})
		dir := t.TempDir()
		start := time.Now()
		err := te.run(context.Background(), NewIMAPDownload(), map[string]string{"uid": "2", "folder": dir})
		// The stream broke off in SaveStream's copy, which names the file it was saving.
		imapStallCheck(t, err, time.Since(start), `download UID 2 from "INBOX": save `+filepath.Join(dir, "2.eml")+`: imap fetch UID 2 from "INBOX" on `+s.Server)
		imapStallNoFiles(t, dir)
	})

	t.Run("nested and concurrent watches", func(t *testing.T) {
		proxy.Pass()
		te := newTestEnv(t)
		s := imapStallOpen(t, te, dc, proxy.Port)
		outer := s.Watch(context.Background())
		defer outer()
		// Watches that start and stop meanwhile (the loop's look-ahead) neither stop the
		// guard nor restart its clock.
		done := make(chan struct{})
		go func() {
			defer close(done)
			inner := s.Watch(context.Background())
			if err := s.Client.Noop().Wait(); err != nil {
				t.Errorf("noop: %v", err)
			}
			inner()
		}()
		<-done
		// A watched session whose server answers goes on for longer than the timeout.
		for end := time.Now().Add(2 * imapStallTimeout); time.Now().Before(end); {
			if err := s.Client.Noop().Wait(); err != nil {
				t.Fatalf("noop while the server answers: %v", err)
			}
		}
		proxy.Set(testmail.Fault{Kind: testmail.FaultStall})
		start := time.Now()
		err := s.Client.Noop().Wait()
		took := time.Since(start)
		if err == nil {
			t.Fatal("NOOP succeeded against a silent server")
		}
		imapStallCheck(t, imapMsgsErr(context.Background(), s, "noop", err), took, "imap noop on "+s.Server)
	})
}

// imapStallNoFiles fails the test when dir holds a file (a partial download).
func imapStallNoFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("files left in %s: %v", dir, entries)
	}
}

// TestIMAPStallSlowConsumer: when our side is slow — a step that pauses longer than the
// timeout in the middle of a message it streams, or the mail loop's steps taking longer
// than the timeout per message while the loop fetches the next ones ahead in the
// background — the guard does not fire: the server is not at fault. Every byte arrives.
func TestIMAPStallSlowConsumer(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()

	t.Run("paused stream", func(t *testing.T) {
		seeded := dc.SeedN(t, u.Name, "Big", 1, 3<<20)
		te := newTestEnv(t)
		s := imapStallOpen(t, te, dc, dc.IMAPSPort)
		te.mustRun(NewIMAPSelect(), map[string]string{"folder": "Big"})
		body, err := imapMsgsOpenBody(context.Background(), s, "Big", 1)
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		var got bytes.Buffer
		if _, err := io.CopyN(&got, body, 64<<10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * imapStallTimeout) // writing or fsyncing a file, say
		// Then a writer that takes a pause of more than the timeout every 1 MiB.
		if _, err := io.Copy(&imapStallSlowWriter{w: &got, every: 1 << 20, pause: imapStallTimeout + 200*time.Millisecond}, body); err != nil {
			t.Fatalf("slow consumer failed: %v", err)
		}
		if !bytes.Equal(got.Bytes(), seeded[0]) {
			t.Fatalf("got %d bytes, want the %d seeded", got.Len(), len(seeded[0]))
		}
		if err := s.stallErr(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("loop with look-ahead", func(t *testing.T) {
		seeded := dc.SeedN(t, u.Name, "Loop", 6, 40_000)
		te := newTestEnv(t)
		s := imapStallOpen(t, te, dc, dc.IMAPSPort)
		te.mustRun(NewIMAPSelect(), map[string]string{"folder": "Loop"})
		n, err := te.loop(context.Background(), NewIMAPMailLoop(), map[string]string{"batch_size": "2"}, true, func(i int) error {
			r, err := te.Sessions.Current().Open(context.Background())
			if err != nil {
				return err
			}
			defer r.Close()
			half := make([]byte, 20_000)
			if _, err := io.ReadFull(r, half); err != nil {
				return err
			}
			time.Sleep(imapStallTimeout + 200*time.Millisecond)
			rest, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			uid, _ := strconv.Atoi(te.Var("MessageUID"))
			if want := seeded[uid-1]; !bytes.Equal(append(half, rest...), want) {
				t.Errorf("UID %d: %d+%d bytes differ from the %d seeded", uid, len(half), len(rest), len(want))
			}
			return nil
		})
		if err != nil || n != 6 {
			t.Fatalf("loop handled %d of 6: %v", n, err)
		}
		if err := s.stallErr(); err != nil {
			t.Fatal(err)
		}
	})
}

// imapStallSlowWriter writes to w and sleeps for pause after each every bytes.
type imapStallSlowWriter struct {
	w      io.Writer
	every  int
	pause  time.Duration
	behind int
}

func (s *imapStallSlowWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if s.behind += n; s.behind >= s.every {
		s.behind = 0
		time.Sleep(s.pause)
	}
	return n, err
}

// TestIMAPStallIdleSession: a session left idle longer than the timeout between steps (no
// step waits for the server), or waiting in IDLE without a Watch as the mail watcher does,
// is not closed: the next step works.
func TestIMAPStallIdleSession(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	dc.SeedN(t, testmail.DefaultUser().Name, "INBOX", 2, 1000)
	te := newTestEnv(t)
	s := imapStallOpen(t, te, dc, dc.IMAPSPort)
	time.Sleep(3 * imapStallTimeout)
	te.mustRun(NewIMAPFolderInfo(), map[string]string{"folder": "INBOX"})
	if got := te.Var("FolderMessages"); got != "2" {
		t.Fatalf("FolderMessages = %q", got)
	}
	idle, err := s.Client.Idle()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * imapStallTimeout)
	if err := idle.Close(); err != nil {
		t.Fatalf("end IDLE: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	dir := t.TempDir()
	te.mustRun(NewIMAPDownload(), map[string]string{"uid": "2", "folder": dir})
	if err := s.stallErr(); err != nil {
		t.Fatal(err)
	}
}

// TestIMAPStallCheckEmail: Check for Email's connection has the guard too: a server that
// falls silent right after the login fails the step within its timeout, with advice that
// fits a step that connects by itself.
func TestIMAPStallCheckEmail(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	dc.SeedN(t, testmail.DefaultUser().Name, "INBOX", 2, 1000)
	proxy := testmail.StartFaultProxy(t, dc.Addr(dc.IMAPPort))
	params := imapTestPasswordParams(dc, proxy.Port, "none")
	params["allow_insecure_auth"] = "true"
	params["timeout"] = imapStallTimeout.String()
	// The bytes of the greeting and the login, measured on a first connection (plaintext:
	// the same on every connection), pass; the answer to the first command does not.
	c, err := ParseConn("imap", imapStallResolve(t, NewIMAPOpen(), params))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := OpenIMAP(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	opening := proxy.Relayed(testmail.ToClient)
	cl.Close()
	proxy.Set(testmail.Fault{Kind: testmail.FaultStall, Dir: testmail.ToClient, After: opening})
	params["count"] = CheckAll
	te := newTestEnv(t)
	start := time.Now()
	err = te.run(context.Background(), NewCheckEmail(), params)
	took := time.Since(start)
	want := `check for email in "INBOX" on ` + c.Addr() + `: the server sent nothing for 500ms (the connection's "Timeout"); the connection was closed: try again later, or raise "Timeout"`
	if err == nil || err.Error() != want || !Temporary(err) || took > imapStallTimeout+3*time.Second {
		t.Fatalf("after %s:\n got: %v\nwant: %s", took, err, want)
	}
}

// imapStallResolve resolves raw against a's schema (defaults filled in).
func imapStallResolve(t *testing.T, a Action, raw map[string]string) Values {
	t.Helper()
	v, err := a.Schema().Resolve(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
