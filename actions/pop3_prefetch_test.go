package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mailwright/mailwright/internal/testmail"
)

// pop3PrefetchLogLine is logged (at debug level) for each window of RETRs sent ahead.
const pop3PrefetchLogLine = `msg="pop3 mail loop: fetching messages ahead"`

// pop3PrefetchDownload is a loop body that downloads the current message as
// <number>.eml (collision fail: a second download of one message is an error).
func pop3PrefetchDownload(ctx context.Context, te *testEnv, dir string) error {
	return te.run(ctx, NewPOP3Download(), map[string]string{"folder": dir, "file_name": te.Var("MessageNumber") + ".eml", "collision": "fail"})
}

// pop3PrefetchCheckFiles checks that dir holds exactly <number>.eml for each message of
// want (by number), byte-identical.
func pop3PrefetchCheckFiles(t *testing.T, dir string, want map[int][]byte) {
	t.Helper()
	byUID := map[uint32][]byte{}
	for n, b := range want {
		byUID[uint32(n)] = b
	}
	imapPrefetchCheckFiles(t, dir, byUID)
}

// pop3PrefetchVars are the variables a POP3 Mail Loop sets from a message's header.
var pop3PrefetchVars = []string{"MessageUIDL", "MessageID", "MessageFrom", "MessageTo", "MessageCc", "MessageSubject", "MessageDate", "MessageSize"}

// TestPOP3PrefetchIntegrity downloads every message through the loop while RETRs are
// pipelined ahead in windows: every file is byte-identical (dot-stuffed lines, long lines,
// 8-bit and binary parts, one message too large to be fetched ahead), and the header
// variables read from the spooled messages equal those read with TOP.
func TestPOP3PrefetchIntegrity(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	msgs := imapPrefetchMail(230)
	dc.Seed(t, user, "INBOX", msgs...)
	want := map[int][]byte{}
	for i, m := range msgs {
		want[i+1] = m
	}
	collect := func(read bool) (map[string]map[string]string, string) {
		te, _ := pop3Run(t, dc, nil)
		dir := t.TempDir()
		vars := map[string]map[string]string{}
		ctx := context.Background()
		n, err := te.loop(ctx, NewPOP3MailLoop(), nil, true, func(int) error {
			v := map[string]string{}
			for _, name := range pop3PrefetchVars {
				v[name] = te.Var(name)
			}
			vars[te.Var("MessageNumber")] = v
			if !read {
				return nil
			}
			return pop3PrefetchDownload(ctx, te, dir)
		})
		if err != nil || n != len(msgs) {
			t.Fatalf("loop: %d messages, %v", n, err)
		}
		if read {
			pop3PrefetchCheckFiles(t, dir, want)
		}
		return vars, te.Logs.String()
	}
	withTop, logs := collect(false)
	if strings.Contains(logs, pop3PrefetchLogLine) {
		t.Fatal("messages were fetched ahead for steps that read none")
	}
	withRetr, logs := collect(true)
	if n := strings.Count(logs, pop3PrefetchLogLine); n < 3 {
		t.Fatalf("%d windows fetched ahead, want 3", n)
	}
	if !maps.EqualFunc(withTop, withRetr, maps.Equal) {
		for k, v := range withTop {
			if !maps.Equal(v, withRetr[k]) {
				t.Errorf("message %s: variables from TOP %v, from the prefetched message %v", k, v, withRetr[k])
			}
		}
	}
}

// TestPOP3PrefetchDownloadDelete: the download-and-delete task with RETRs pipelined
// ahead: DELE (sent when a message's steps succeeded) waits for the pipelined answers,
// every file is intact, and exactly the messages whose steps succeeded are deleted.
func TestPOP3PrefetchDownloadDelete(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	msgs := dc.SeedN(t, user, "INBOX", 150, 1800)
	te, s := pop3Run(t, dc, nil)
	dir := t.TempDir()
	ctx := context.Background()
	_, err := te.loop(ctx, NewPOP3MailLoop(), nil, false, func(i int) error {
		if err := pop3PrefetchDownload(ctx, te, dir); err != nil {
			return err
		}
		if err := te.run(ctx, NewPOP3Delete(), nil); err != nil {
			return err
		}
		if i%50 == 7 {
			return errors.New("a later step failed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.DeletedCount() != 147 {
		t.Fatalf("%d marked for deletion, want 147", s.DeletedCount())
	}
	want := map[int][]byte{}
	for i, m := range msgs {
		want[i+1] = m
	}
	pop3PrefetchCheckFiles(t, dir, want)
	te.mustRun(NewPOP3Close(), nil)
	left := dc.Messages(t, user, "INBOX")
	if len(left) != 3 || !bytes.Equal(left[0].Body, msgs[7]) || !bytes.Equal(left[2].Body, msgs[107]) {
		t.Fatalf("%d messages left, want messages 8, 58 and 108", len(left))
	}
}

// TestPOP3PrefetchConnectionCut drops the connection in the middle of the pipelined
// answers: the loop stops with an error at the first message that did not arrive, every
// file written is complete, and the next run (only new) downloads exactly the others.
func TestPOP3PrefetchConnectionCut(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	msgs := dc.SeedN(t, user, "INBOX", 150, 3000)
	want := map[int][]byte{}
	for i, m := range msgs {
		want[i+1] = m
	}
	proxy := startPrefetchProxy(t, dc.Addr(dc.POP3SPort))
	_, port, _ := net.SplitHostPort(proxy.addr)
	state := &memState{m: map[string]string{}}
	dir := t.TempDir()
	ctx := context.Background()
	open := func() *testEnv {
		te := newTestEnv(t)
		te.State = state
		pop3MustOpen(t, te, pop3Params(dc, mustAtoi(t, port), SecurityTLS, nil))
		return te
	}
	te := open()
	proxy.cutAfter(150_000) // in the middle of the first window's answers
	n, err := te.loop(ctx, NewPOP3MailLoop(), map[string]string{"only_new": "true"}, true, func(int) error {
		return pop3PrefetchDownload(ctx, te, dir)
	})
	if err == nil || proxy.cuts.Load() == 0 {
		t.Fatalf("loop over a cut connection: %d messages, %v", n, err)
	}
	t.Logf("first run: %d messages, then %v", n, err)
	done := map[int][]byte{}
	for _, e := range mustReadDir(t, dir) {
		k, _ := strconv.Atoi(strings.TrimSuffix(e.Name(), ".eml"))
		done[k] = want[k]
	}
	pop3PrefetchCheckFiles(t, dir, done)
	if len(done) == 0 || len(done) >= 150 {
		t.Fatalf("%d files after the cut", len(done))
	}

	proxy.cutAfter(-1)
	te = open()
	n, err = te.loop(ctx, NewPOP3MailLoop(), map[string]string{"only_new": "true"}, true, func(int) error {
		k, _ := strconv.Atoi(te.Var("MessageNumber"))
		if done[k] != nil {
			return fmt.Errorf("message %d was handled by the first run already", k)
		}
		return pop3PrefetchDownload(ctx, te, dir)
	})
	if err != nil || n+len(done) != 150 {
		t.Fatalf("second run: %d messages, %v; first run %d", n, err, len(done))
	}
	pop3PrefetchCheckFiles(t, dir, want)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPOP3PrefetchCancel cancels the run in a body step while answers are still arriving:
// the loop returns context.Canceled at once.
func TestPOP3PrefetchCancel(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	dc.SeedN(t, testmail.DefaultUser().Name, "INBOX", 150, 40_000)
	te, _ := pop3Run(t, dc, nil)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := te.loop(ctx, NewPOP3MailLoop(), nil, true, func(i int) error {
		if err := pop3PrefetchDownload(ctx, te, dir); err != nil {
			return err
		}
		if i == 4 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 5 {
		t.Fatalf("loop = %d items, %v; want 5 and context.Canceled", n, err)
	}
	if files := mustReadDir(t, dir); len(files) != 5 {
		t.Fatalf("%d files, want 5", len(files))
	}
}

// TestPOP3PrefetchMemory: messages fetched ahead go to disk, so what the loop allocates
// does not grow with their size.
func TestPOP3PrefetchMemory(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{
		Users: []testmail.User{{Name: "small@example.test", Password: "pw-small"}, {Name: "large@example.test", Password: "pw-large"}}})
	dc.SeedN(t, "small@example.test", "INBOX", 40, 2_000)
	dc.SeedN(t, "large@example.test", "INBOX", 40, 200_000)
	alloc := func(user, pass string) (uint64, int64) {
		te := newTestEnv(t)
		pop3MustOpen(t, te, pop3Params(dc, dc.POP3SPort, SecurityTLS, map[string]string{"user": user, "password": pass}))
		var read int64
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := te.loop(context.Background(), NewPOP3MailLoop(), nil, true, func(int) error {
			r, err := te.Sessions.Current().Open(context.Background())
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, r)
			read += n
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			return err
		})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(te.Logs.String(), pop3PrefetchLogLine) {
			t.Fatalf("%s: nothing was fetched ahead", user)
		}
		return after.TotalAlloc - before.TotalAlloc, read
	}
	small, _ := alloc("small@example.test", "pw-small")
	large, read := alloc("large@example.test", "pw-large")
	t.Logf("allocated %d KB for 40 × 2 KB, %d KB for 40 × 200 KB (%d KB read)", small>>10, large>>10, read>>10)
	if read != 40*200_000 {
		t.Fatalf("read %d bytes", read)
	}
	if large > small+(2<<20) {
		t.Fatalf("looping over 8 MB of larger messages allocated %d KB more than over small ones", (large-small)>>10)
	}
}

// TestPOP3PrefetchSpoolGone: a reader of a message fetched ahead fails, rather than
// returning other bytes, once the loop has let go of its spool.
func TestPOP3PrefetchSpoolGone(t *testing.T) {
	s, err := newPrefetchSpool(nil)
	if err != nil {
		t.Fatal(err)
	}
	sp, ok, err := s.write(strings.NewReader("hello"), -1)
	if err != nil || !ok || s.flush() != nil {
		t.Fatalf("write: %v %v", ok, err)
	}
	r := s.reader(sp)
	s.close()
	if _, err := io.ReadAll(r); err == nil {
		t.Fatal("read a closed spool without an error")
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), filepath.Base(s.name))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spool file left behind: %v", err)
	}
}

// TestPOP3PrefetchDiskFails: when the temporary file cannot be written, every message is
// fetched with its own RETR when it is read, and its variables come from TOP.
func TestPOP3PrefetchDiskFails(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	msgs := imapPrefetchMail(40)
	dc.Seed(t, testmail.DefaultUser().Name, "INBOX", msgs...)
	want := map[int][]byte{}
	for i, m := range msgs {
		want[i+1] = m
	}
	te, _ := pop3Run(t, dc, nil)
	prefetchBrokenDisk(t, te)
	dir := t.TempDir()
	ctx := context.Background()
	n, err := te.loop(ctx, NewPOP3MailLoop(), nil, true, func(i int) error {
		if s := te.Var("MessageSubject"); s == "" {
			return fmt.Errorf("message %d: no subject", i+1)
		}
		return pop3PrefetchDownload(ctx, te, dir)
	})
	if err != nil || n != 40 {
		t.Fatalf("loop: %d, %v", n, err)
	}
	pop3PrefetchCheckFiles(t, dir, want)
}
