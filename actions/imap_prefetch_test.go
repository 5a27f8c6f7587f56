package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailwright/mailwright/internal/testmail"
)

// prefetchProxy relays TCP connections to a harness server (TLS passes through) and can
// cut them after a number of bytes sent to the client, like a network that drops.
type prefetchProxy struct {
	addr   string
	budget atomic.Int64 // bytes server→client still relayed; < 0: no limit
	cuts   atomic.Int32
}

func startPrefetchProxy(t *testing.T, target string) *prefetchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &prefetchProxy{addr: ln.Addr().String()}
	p.budget.Store(-1)
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
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
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
				defer up.Close()
				buf := make([]byte, 4096)
				for {
					n, err := up.Read(buf)
					if b := p.budget.Load(); b >= 0 && int64(n) > b {
						down.Write(buf[:b])
						p.cuts.Add(1)
						return
					} else if b >= 0 {
						p.budget.Add(-int64(n))
					}
					if _, werr := down.Write(buf[:n]); werr != nil || err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// cutAfter makes the proxy drop the connection once n more bytes reached the client.
func (p *prefetchProxy) cutAfter(n int64) { p.budget.Store(n) }

// imapPrefetchLogLine is logged (at debug level) for each window whose bodies were fetched ahead.
const imapPrefetchLogLine = `msg="imap loop: messages fetched ahead"`

// imapPrefetchSeed stores msgs in folder and returns them by UID (UIDs follow delivery order
// in a new folder).
func imapPrefetchSeed(t *testing.T, dc *testmail.Dovecot, folder string, msgs [][]byte) map[uint32][]byte {
	t.Helper()
	dc.Seed(t, testmail.DefaultUser().Name, folder, msgs...)
	byUID := map[uint32][]byte{}
	for i, m := range msgs {
		byUID[uint32(i+1)] = m
	}
	return byUID
}

// imapPrefetchDownload is a loop body that downloads the current message as <UID>.eml
// (collision fail: a second download of one message is an error).
func imapPrefetchDownload(ctx context.Context, te *testEnv, dir string) error {
	return te.run(ctx, NewIMAPDownload(), map[string]string{"folder": dir, "file_name": te.Var("MessageUID") + ".eml", "collision": "fail"})
}

// imapPrefetchCheckFiles checks that dir holds exactly the files <UID>.eml of want, each
// byte-identical to the message.
func imapPrefetchCheckFiles(t *testing.T, dir string, want map[uint32][]byte) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("%d files in %s, want %d: %v", len(entries), dir, len(want), names)
	}
	for uid, body := range want {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(uid)+".eml"))
		if err != nil {
			t.Fatalf("UID %d: %v", uid, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("UID %d: the file (%d bytes) is not byte-identical to the message (%d bytes)", uid, len(got), len(body))
		}
	}
}

// imapPrefetchMail is a mix of hard messages, one too large to be fetched ahead and plain
// ones, n in all.
func imapPrefetchMail(n int) [][]byte {
	hard := imapMsgsHardMail()
	var msgs [][]byte
	for i := 0; len(msgs) < n; i++ {
		switch {
		case i == 9:
			msgs = append(msgs, testmail.MessageText(1000+i, imapPrefetchMaxMessage+50_000))
		case i%3 == 0:
			msgs = append(msgs, hard[(i/3)%len(hard)])
		default:
			msgs = append(msgs, testmail.MessageText(1000+i, 1500+i*37))
		}
	}
	return msgs
}

// TestIMAPPrefetchIntegrity downloads every message through the loop while bodies are
// fetched ahead in windows: each file is byte-identical (dot lines, long lines, 8-bit and
// binary parts, one message too large to be fetched ahead), in both orders, and the
// summaries' variables belong to the right message.
func TestIMAPPrefetchIntegrity(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	byUID := imapPrefetchSeed(t, dc, "Mix", imapPrefetchMail(26))
	for _, order := range []string{"oldest", "newest"} {
		t.Run(order, func(t *testing.T) {
			te := newTestEnv(t)
			imapMsgsSession(t, te, dc, "Mix")
			dir := t.TempDir()
			ctx := context.Background()
			got, err := imapMsgsLoop(t, te, map[string]string{"batch_size": "6", "order": order}, func(uid uint32) error {
				if id := te.Var("MessageID"); id != "" && !bytes.Contains(byUID[uid], []byte("Message-ID: "+id)) {
					return fmt.Errorf("UID %d: MessageID %s is another message's", uid, id)
				}
				return imapPrefetchDownload(ctx, te, dir)
			})
			if err != nil {
				t.Fatal(err)
			}
			want := imapMsgsUIDs(1, 26)
			if order == "newest" {
				slices.Reverse(want)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("yielded %v, want %v", got, want)
			}
			imapPrefetchCheckFiles(t, dir, byUID)
			if n := strings.Count(te.Logs.String(), imapPrefetchLogLine); n < 3 {
				t.Fatalf("the bodies were fetched ahead %d times, want every window after the first message:\n%s", n, te.Logs.String())
			}
		})
	}
}

// TestIMAPPrefetchStepsChangeMessages: body steps move the current message, flag it, and
// flag a message of the NEXT window by UID while that window is being fetched ahead; every
// message is yielded once with its own variables and downloaded intact, and every change
// reaches the server.
func TestIMAPPrefetchStepsChangeMessages(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	var msgs [][]byte
	for i := 1; i <= 30; i++ {
		msgs = append(msgs, testmail.MessageText(i, 1200+i*10))
	}
	byUID := imapPrefetchSeed(t, dc, "INBOX", msgs)
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "INBOX")
	dir := t.TempDir()
	ctx := context.Background()
	got, err := imapMsgsLoop(t, te, map[string]string{"batch_size": "7", "mark_seen": "true"}, func(uid uint32) error {
		if want := fmt.Sprintf("Test message %d", uid); te.Var("MessageSubject") != want {
			return fmt.Errorf("UID %d: subject %q, want %q", uid, te.Var("MessageSubject"), want)
		}
		if err := imapPrefetchDownload(ctx, te, dir); err != nil {
			return err
		}
		if uid%5 == 2 && uid+7 <= 30 { // a message of the next window, by UID
			if err := te.run(ctx, NewIMAPSetFlags(), map[string]string{"uid": fmt.Sprint(uid + 7), "flags": "$Ahead"}); err != nil {
				return err
			}
		}
		switch uid % 3 {
		case 0:
			return te.run(ctx, NewIMAPMove(), map[string]string{"target_folder": "Archive", "create_folder": "true"})
		case 1:
			return te.run(ctx, NewIMAPSetFlags(), map[string]string{"flags": `\Flagged`})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, imapMsgsUIDs(1, 30)) {
		t.Fatalf("yielded %v", got)
	}
	imapPrefetchCheckFiles(t, dir, byUID)
	if n := len(dc.Messages(t, user, "Archive")); n != 10 {
		t.Fatalf("%d messages in Archive, want 10", n)
	}
	c := imapMsgsOther(t, dc, "INBOX")
	fetched, err := c.Fetch(imap.UIDSetNum(imapMsgsUIDsSet(1, 30)...), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(fetched) != 20 {
		t.Fatalf("%d messages left in INBOX, want 20", len(fetched))
	}
	for _, m := range fetched {
		flags := imapMsgsFlagText(m.Flags)
		u := uint32(m.UID)
		if !strings.Contains(flags, `\Seen`) || (u%3 == 1) != strings.Contains(flags, `\Flagged`) ||
			(u > 7 && (u-7)%5 == 2) != strings.Contains(flags, "$Ahead") {
			t.Errorf("UID %d has flags %q", u, flags)
		}
	}
}

func imapMsgsUIDsSet(from, to uint32) []imap.UID {
	var l []imap.UID
	for u := from; u <= to; u++ {
		l = append(l, imap.UID(u))
	}
	return l
}

// TestIMAPPrefetchConnectionCut drops the connection while the next window is being
// fetched ahead: the loop stops with an error, every file written is complete, nothing
// else is on disk, and the next run (only new) downloads exactly the messages the first
// did not; none is skipped or downloaded twice.
func TestIMAPPrefetchConnectionCut(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	var msgs [][]byte
	for i := 1; i <= 40; i++ {
		msgs = append(msgs, testmail.MessageText(i, 3000))
	}
	byUID := imapPrefetchSeed(t, dc, "Cut", msgs)
	proxy := startPrefetchProxy(t, dc.Addr(dc.IMAPSPort))
	state := &memState{m: map[string]string{}}
	dir := t.TempDir()
	ctx := context.Background()
	te := newTestEnv(t)
	te.State = state
	imapMsgsSessionAt(t, te, proxy.addr, dc.TLSConfig(), "Cut", false)
	first, err := imapMsgsLoop(t, te, map[string]string{"batch_size": "10", "only_new": "true"}, func(uid uint32) error {
		if uid == 12 { // window 2 is served from the spool; window 3 is on the wire
			proxy.cutAfter(12_000)
		}
		return imapPrefetchDownload(ctx, te, dir)
	})
	if err == nil || proxy.cuts.Load() == 0 {
		t.Fatalf("loop over a cut connection: %v (cuts %d)", err, proxy.cuts.Load())
	}
	t.Logf("first run: %d messages, then %v", len(first), err)
	done := map[uint32][]byte{}
	for _, e := range mustReadDir(t, dir) {
		uid, _ := strconv.ParseUint(strings.TrimSuffix(e.Name(), ".eml"), 10, 32)
		done[uint32(uid)] = byUID[uint32(uid)]
	}
	imapPrefetchCheckFiles(t, dir, done) // only whole files, and only the loop's names
	if len(done) == 0 || len(done) >= 40 {
		t.Fatalf("%d files after the cut", len(done))
	}

	proxy.cutAfter(-1) // the network is back: the same server address, so the same checkpoint
	te2 := newTestEnv(t)
	te2.State = state
	imapMsgsSessionAt(t, te2, proxy.addr, dc.TLSConfig(), "Cut", false)
	second := imapMsgsMustLoop(t, te2, map[string]string{"batch_size": "10", "only_new": "true"}, func(uid uint32) error {
		if done[uid] != nil {
			return fmt.Errorf("UID %d was handled by the first run already", uid)
		}
		return imapPrefetchDownload(ctx, te2, dir)
	})
	if len(second)+len(done) != 40 {
		t.Fatalf("second run handled %d, first %d: want 40 in all", len(second), len(done))
	}
	imapPrefetchCheckFiles(t, dir, byUID)
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestIMAPPrefetchCancel cancels the run in a body step while the next window is being
// fetched ahead: the loop returns context.Canceled at once and lets go of everything.
func TestIMAPPrefetchCancel(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	dc.SeedN(t, testmail.DefaultUser().Name, "Many", 60, 40_000)
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "Many")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := te.loop(ctx, NewIMAPMailLoop(), map[string]string{"batch_size": "20"}, true, func(i int) error {
		if err := imapPrefetchDownload(ctx, te, dir); err != nil {
			return err
		}
		if i == 24 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 25 {
		t.Fatalf("loop = %d items, %v; want 25 and context.Canceled", n, err)
	}
	if files := mustReadDir(t, dir); len(files) != 25 {
		t.Fatalf("%d files, want 25", len(files))
	}
}

// TestIMAPPrefetchMemory: bodies fetched ahead go to disk, so what the loop allocates does
// not grow with the size of the messages.
func TestIMAPPrefetchMemory(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "Small", 48, 2_000)
	dc.SeedN(t, user, "Large", 48, 200_000)
	alloc := func(folder string) (uint64, int64) {
		te := newTestEnv(t)
		imapMsgsSession(t, te, dc, folder)
		var bytesRead int64
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		imapMsgsMustLoop(t, te, map[string]string{"batch_size": "24"}, func(uint32) error {
			r, err := te.Sessions.Current().Open(context.Background())
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, r)
			bytesRead += n
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			return err
		})
		runtime.ReadMemStats(&after)
		if !strings.Contains(te.Logs.String(), imapPrefetchLogLine) {
			t.Fatalf("%s: nothing was fetched ahead", folder)
		}
		return after.TotalAlloc - before.TotalAlloc, bytesRead
	}
	small, _ := alloc("Small")
	large, read := alloc("Large")
	t.Logf("allocated %d KB for 48 × 2 KB, %d KB for 48 × 200 KB (%d KB read)", small>>10, large>>10, read>>10)
	if read != 48*200_000 {
		t.Fatalf("read %d bytes", read)
	}
	if large > small+(2<<20) {
		t.Fatalf("looping over 9.6 MB of larger messages allocated %d KB more than over small ones", (large-small)>>10)
	}
}

// TestIMAPPrefetchOnlyWhenRead: a loop whose steps never read bodies fetches none ahead;
// one whose steps stop reading them stops fetching them.
func TestIMAPPrefetchOnlyWhenRead(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	dc.SeedN(t, testmail.DefaultUser().Name, "INBOX", 40, 1_000)
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "INBOX")
	imapMsgsMustLoop(t, te, map[string]string{"batch_size": "5"}, nil)
	if strings.Contains(te.Logs.String(), "fetched ahead") {
		t.Fatalf("bodies were fetched ahead for steps that read none:\n%s", te.Logs.String())
	}
	imapMsgsMustLoop(t, te, map[string]string{"batch_size": "5"}, func(uid uint32) error {
		if uid > 3 {
			return nil
		}
		r, err := te.Sessions.Current().Open(context.Background())
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(io.Discard, r)
		return err
	})
	logs := te.Logs.String()
	if !strings.Contains(logs, imapPrefetchLogLine) || !strings.Contains(logs, "fetching bodies only on demand again") {
		t.Fatalf("prefetch did not start and stop:\n%s", logs)
	}
	if n := strings.Count(logs, imapPrefetchLogLine); n > 3 {
		t.Fatalf("%d windows fetched ahead for 3 messages read:\n%s", n, logs)
	}
}

// prefetchBrokenDisk makes the spool files of te's steps unwritable (a full or failing
// disk): the loops must then fetch each message from the server.
func prefetchBrokenDisk(t *testing.T, te *testEnv) {
	te.createTemp = func() (*os.File, error) {
		f, err := os.CreateTemp(t.TempDir(), "spool-*")
		if err != nil {
			return nil, err
		}
		f.Close()
		return os.Open(f.Name()) // read-only: every write fails
	}
}

// TestIMAPPrefetchDiskFails: when the temporary file cannot be written, every message is
// fetched from the server when it is read, and downloads are still whole.
func TestIMAPPrefetchDiskFails(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	byUID := imapPrefetchSeed(t, dc, "Mix", imapPrefetchMail(14))
	te := newTestEnv(t)
	prefetchBrokenDisk(t, te)
	imapMsgsSession(t, te, dc, "Mix")
	dir := t.TempDir()
	imapMsgsMustLoop(t, te, map[string]string{"batch_size": "4"}, func(uint32) error {
		return imapPrefetchDownload(context.Background(), te, dir)
	})
	imapPrefetchCheckFiles(t, dir, byUID)
	if !strings.Contains(te.Logs.String(), "cannot keep messages fetched ahead") {
		t.Fatalf("the failing disk was not noticed:\n%s", te.Logs.String())
	}
}
