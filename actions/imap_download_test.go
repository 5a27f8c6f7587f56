package actions

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailwright/mailwright/internal/testmail"
)

// imapMsgsHardMail returns messages that break naive clients: lines starting with ".",
// a line over 4,096 bytes, 8-bit text, a base64 attachment next to a raw 8-bit part,
// encoded headers. Line endings are CRLF, as IMAP serves them.
func imapMsgsHardMail() [][]byte {
	var raw8 bytes.Buffer // every byte value except NUL, CR and LF, in CRLF lines
	for i := 0; i < 3; i++ {
		for c := 1; c < 256; c++ {
			if c != '\r' && c != '\n' {
				raw8.WriteByte(byte(c))
			}
			if c%64 == 0 {
				raw8.WriteString("\r\n")
			}
		}
		raw8.WriteString("\r\n")
	}
	bin := make([]byte, 3000)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	b64 := base64.StdEncoding.EncodeToString(bin)
	var att strings.Builder
	for len(b64) > 76 {
		att.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	att.WriteString(b64 + "\r\n")
	return [][]byte{
		[]byte("From: Dot Tester <dots@example.test>\r\nTo: a@example.test\r\nSubject: dots\r\nMessage-ID: <dots@example.test>\r\n\r\n" +
			".\r\n..two dots\r\n. space\r\n.\r\n.end\r\nlast\r\n"),
		[]byte("From: long@example.test\r\nTo: a@example.test\r\nSubject: long line\r\n\r\n" + strings.Repeat("0123456789", 1000) + "\r\nshort\r\n"),
		[]byte("From: =?ISO-8859-1?Q?J=FCrgen_M=FCller?= <juergen@example.test>\r\nTo: \"Doe, John\" <john@example.test>, =?KOI8-R?B?8NLJ18XU?= <ivan@example.test>\r\n" +
			"Cc: c1@example.test, Carla <c2@example.test>\r\nSubject: =?UTF-8?B?R3LDvMOfZSDinJM=?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
			"Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln — 日本語\r\n\xe9t\xe9 latin-1 bytes\r\n"),
		[]byte("From: bin@example.test\r\nTo: a@example.test\r\nSubject: attachment\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
			"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n" +
			"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + raw8.String() +
			"--b1\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			att.String() + "--b1--\r\n"),
	}
}

func TestIMAPMsgsIntegrity(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.Seed(t, user, "Hard", imapMsgsHardMail()...)
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "Hard")
	dir := t.TempDir()
	stored := dc.Messages(t, user, "Hard")

	vars := map[uint32]map[string]string{}
	got := imapMsgsMustLoop(t, te, nil, func(uid uint32) error {
		vars[uid] = map[string]string{}
		for _, o := range imapLoopOutputs {
			vars[uid][o.Name] = te.Var(o.Name)
		}
		// The current message streams the same bytes the download saves.
		r, err := te.Sessions.Current().Open(context.Background())
		if err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		if err := r.Close(); err != nil {
			return err
		}
		if want := sha256.Sum256(stored[uid-1].Body); !bytes.Equal(h.Sum(nil), want[:]) {
			t.Errorf("UID %d: CurrentMessage.Open streamed other bytes than the server holds", uid)
		}
		return te.run(context.Background(), NewIMAPDownload(), map[string]string{"folder": dir})
	})
	if len(got) != len(stored) {
		t.Fatalf("loop yielded %v for %d messages", got, len(stored))
	}
	for i, m := range dc.Messages(t, user, "Hard") {
		saved, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i+1)+".eml"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(saved, m.Body) {
			t.Errorf("UID %d: the downloaded file (%d bytes) differs from the stored message (%d bytes)", i+1, len(saved), len(m.Body))
		}
		if strings.Contains(m.Flags, "S") {
			t.Errorf("UID %d got \\Seen (Maildir flags %q) from looping or downloading", i+1, m.Flags)
		}
	}
	if te.Var("DownloadedSize") != strconv.Itoa(len(stored[3].Body)) || te.Var("DownloadedFile") != filepath.Join(dir, "4.eml") {
		t.Errorf("outputs: DownloadedFile %q, DownloadedSize %q", te.Var("DownloadedFile"), te.Var("DownloadedSize"))
	}
	for name, want := range map[string]string{
		"MessageFrom": "Jürgen Müller <juergen@example.test>", "MessageTo": `"Doe, John" <john@example.test>, Привет <ivan@example.test>`,
		"MessageCc": "c1@example.test, Carla <c2@example.test>", "MessageSubject": "Grüße ✓", "MessageHasAttachments": "false",
	} {
		if vars[3][name] != want {
			t.Errorf("UID 3 %s = %q, want %q", name, vars[3][name], want)
		}
	}
	if vars[4]["MessageHasAttachments"] != "true" || vars[1]["MessageID"] != "<dots@example.test>" || vars[4]["MessageSize"] != strconv.Itoa(len(stored[3].Body)) {
		t.Errorf("UID 4 attachments %q, size %q; UID 1 id %q", vars[4]["MessageHasAttachments"], vars[4]["MessageSize"], vars[1]["MessageID"])
	}

	// By UID, with a file name from variables (already expanded) that needs cleaning.
	te.mustRun(NewIMAPDownload(), map[string]string{"uid": "2", "folder": dir, "file_name": "../long: line?.eml"})
	if saved, _ := os.ReadFile(te.Var("DownloadedFile")); !bytes.Equal(saved, stored[1].Body) || filepath.Dir(te.Var("DownloadedFile")) != dir {
		t.Errorf("download by UID saved %q wrongly", te.Var("DownloadedFile"))
	}
	te.mustRun(NewIMAPDownload(), map[string]string{"uid": "2", "folder": dir, "file_name": "../long: line?.eml"})
	if !strings.HasSuffix(te.Var("DownloadedFile"), " (2).eml") {
		t.Errorf("collision rename: %q", te.Var("DownloadedFile"))
	}
	// Outside a loop, without a UID, or with a UID the folder lacks: clear errors, no file.
	for raw, want := range map[string]string{"": "IMAP Mail Loop", "99": "no message with UID 99"} {
		err := te.run(context.Background(), NewIMAPDownload(), map[string]string{"uid": raw, "folder": dir})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("uid %q: %v", raw, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "99.eml")); err == nil {
		t.Error("a failed download left a file")
	}
	for _, m := range dc.Messages(t, user, "Hard") {
		if strings.Contains(m.Flags, "S") {
			t.Errorf("%s got \\Seen", m.File)
		}
	}
}

func TestIMAPMsgsLoopCancel(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "Many", 30, 200_000)
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "Many")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var took time.Duration
	n, err := te.loop(ctx, NewIMAPMailLoop(), map[string]string{"batch_size": "5"}, true, func(i int) error {
		if i < 2 {
			return nil
		}
		r, err := te.Sessions.Current().Open(ctx)
		if err != nil {
			return err
		}
		defer r.Close()
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		cancel() // mid-body: the rest of the message is still on the wire
		start := time.Now()
		_, err = io.Copy(io.Discard, r)
		took = time.Since(start)
		return err
	})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("loop after cancel: %d items, error %v; want context.Canceled", n, err)
	}
	if n != 3 || took > 2*time.Second {
		t.Fatalf("cancel: %d items, the read took %s after the cancel", n, took)
	}
}

func TestIMAPMsgsLoopExpungedMidLoop(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "Busy", 6, 300)
	te := newTestEnv(t)
	imapMsgsSession(t, te, dc, "Busy")
	other := imapMsgsOther(t, dc, "Busy")
	bodyErr := map[uint32]error{}
	got, err := imapMsgsLoop(t, te, map[string]string{"batch_size": "2"}, func(uid uint32) error {
		if uid == 1 {
			// Another mail program removes UID 2 (in the batch already fetched) and UID 4 (not yet fetched).
			if err := other.Store(imap.UIDSetNum(2, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return err
			}
			if _, err := other.UIDExpunge(imap.UIDSetNum(2, 4)).Collect(); err != nil {
				return err
			}
		}
		r, err := te.Sessions.Current().Open(context.Background())
		if err == nil {
			_, err = io.Copy(io.Discard, r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
		}
		bodyErr[uid] = err
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[1 2 3 5 6]" {
		t.Fatalf("yielded %v, want [1 2 3 5 6]: UID 4 skipped, UID 2 yielded from its summary", got)
	}
	for uid, err := range bodyErr {
		if (err != nil) != (uid == 2) {
			t.Errorf("UID %d: body error %v", uid, err)
		}
	}
	t.Logf("UID 2's body: %v", bodyErr[2])
	if !strings.Contains(te.Logs.String(), "gone") || !strings.Contains(te.Logs.String(), "uid=4") {
		t.Errorf("no warning about the vanished UID 4:\n%s", te.Logs.String())
	}
	// The session is still usable.
	if got := imapMsgsMustLoop(t, te, nil, nil); fmt.Sprint(got) != "[1 3 5 6]" {
		t.Fatalf("next loop: %v", got)
	}
}

// TestIMAPMsgsDownloadTruncated: a message that arrives short is an error, never a file.
func TestIMAPMsgsDownloadTruncated(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	dc.SeedN(t, testmail.DefaultUser().Name, "Short", 2, 50_000)
	sizeRe := regexp.MustCompile(`RFC822\.SIZE (\d+)`)
	for name, rewrite := range map[string]func(string) (string, int64){
		// The server announces one byte more than it sends.
		"size mismatch": func(line string) (string, int64) {
			return sizeRe.ReplaceAllStringFunc(line, func(m string) string {
				n, _ := strconv.Atoi(strings.TrimPrefix(m, "RFC822.SIZE "))
				return "RFC822.SIZE " + strconv.Itoa(n+1)
			}), -1
		},
		// The connection breaks in the middle of the message.
		"cut connection": func(line string) (string, int64) {
			if strings.Contains(line, "BODY[] {") {
				return line, 20_000
			}
			return line, -1
		},
	} {
		t.Run(name, func(t *testing.T) {
			te := newTestEnv(t)
			imapMsgsSessionAt(t, te, imapMsgsProxy(t, dc, rewrite), dc.TLSConfig(), "Short", false)
			dir := t.TempDir()
			err := te.run(context.Background(), NewIMAPDownload(), map[string]string{"uid": "1", "folder": dir})
			if err == nil || !strings.Contains(err.Error(), "truncated") {
				t.Fatalf("download: %v, want a truncation error", err)
			}
			if files, _ := os.ReadDir(dir); len(files) != 0 {
				t.Fatalf("a failed download left %d files behind", len(files))
			}
		})
	}
}
