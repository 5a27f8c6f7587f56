package actions

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// smtpTestPart is one leaf of a parsed message: its media type, disposition file name,
// transfer encoding and decoded body.
type smtpTestPart struct {
	Path     string // e.g. "multipart/mixed>multipart/alternative>text/plain"
	Type     string
	Params   map[string]string
	Filename string
	CTE      string
	Body     []byte
}

// smtpTestParse parses raw with go-message and returns its header and leaves in order.
func smtpTestParse(t *testing.T, raw []byte) (mail.Header, []smtpTestPart) {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse the composed message: %v", err)
	}
	var parts []smtpTestPart
	var walk func(e *message.Entity, path string)
	walk = func(e *message.Entity, path string) {
		typ, params, _ := e.Header.ContentType()
		path = strings.TrimPrefix(path+">"+typ, ">")
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatalf("next part of %s: %v", path, err)
				}
				walk(p, path)
			}
		}
		body, err := io.ReadAll(e.Body)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		_, dp, _ := e.Header.ContentDisposition()
		parts = append(parts, smtpTestPart{Path: path, Type: typ, Params: params, Filename: dp["filename"], CTE: e.Header.Get("Content-Transfer-Encoding"), Body: body})
	}
	walk(e, "")
	return mail.Header{Header: e.Header}, parts
}

// smtpTestCheckWire checks that raw is a well-formed 7-bit message: CRLF line endings only,
// no line longer than 998 bytes, no byte above 127 (headers RFC 2047, bodies encoded).
func smtpTestCheckWire(t *testing.T, raw []byte) {
	t.Helper()
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d bytes long", i+1, len(line))
		}
		for _, b := range line {
			if b > 127 {
				t.Fatalf("line %d holds 8-bit data: %q", i+1, line)
			}
		}
	}
}

func smtpTestFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func smtpTestCompose(t *testing.T, m *smtpMessage) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := smtpCompose(context.Background(), &b, m); err != nil {
		t.Fatalf("compose: %v", err)
	}
	return b.Bytes()
}

func smtpTestAddr(t *testing.T, s string) *mail.Address {
	t.Helper()
	a, err := mail.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// pngMagic starts a PNG file; a file without extension holding it is sniffed as image/png.
var pngMagic = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

func TestSMTPComposeAlternativeWithAttachments(t *testing.T) {
	dir := t.TempDir()
	pdf := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte{0, 1, 2, 0xff, '\r', '\n', '.'}, 5000)...)
	png := append(append([]byte{}, pngMagic...), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 300)...)
	note := []byte("Grüße\nline two\n")
	atts, err := smtpExpandAttachments([]string{
		smtpTestFile(t, dir, "report.pdf", pdf),
		smtpTestFile(t, dir, "picture", png),
		smtpTestFile(t, dir, "Notiz März.txt", note),
	})
	if err != nil {
		t.Fatal(err)
	}
	subject := "Grüße aus Köln – 你好, a subject long enough that it has to be folded over more than one header line"
	extra, err := smtpParseHeaders("X-Campaign: spring 2025\nX-Note: café\n  continued", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &smtpMessage{
		From:        smtpTestAddr(t, `"Jürgen Müller" <juergen@example.test>`),
		To:          []*mail.Address{smtpTestAddr(t, "bob@example.test")},
		Cc:          []*mail.Address{smtpTestAddr(t, `"Doe, Carol" <carol@example.test>`)},
		ReplyTo:     []*mail.Address{smtpTestAddr(t, "replies@example.test")},
		Subject:     subject,
		Text:        "Hello Bob,\n.\nthis line has a very long tail " + strings.Repeat("x", 200) + "\nBye — Jürgen\n",
		HTML:        "<p>Hello <b>Bob</b></p>\n<p>Grüße</p>",
		Attachments: atts,
		Extra:       extra,
		Priority:    "high",
		Date:        time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
		MessageID:   smtpNewMessageID(smtpTestAddr(t, "juergen@example.test")),
	}
	raw := smtpTestCompose(t, m)
	smtpTestCheckWire(t, raw)
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		if len(line) > 76 {
			t.Errorf("header line of %d characters, want folded to 76 (RFC 2047): %q", len(line), line)
		}
	}
	h, parts := smtpTestParse(t, raw)

	if got, err := h.Subject(); err != nil || got != subject {
		t.Fatalf("subject decoded back = %q, %v; want %q", got, err, subject)
	}
	from, _ := h.AddressList("From")
	if len(from) != 1 || from[0].Name != "Jürgen Müller" || from[0].Address != "juergen@example.test" {
		t.Fatalf("From = %v", from)
	}
	cc, _ := h.AddressList("Cc")
	if len(cc) != 1 || cc[0].Name != "Doe, Carol" {
		t.Fatalf("Cc = %v", cc)
	}
	if id, _ := h.MessageID(); id != m.MessageID || !regexp.MustCompile(`^[0-9a-f]{32}@example\.test$`).MatchString(id) {
		t.Fatalf("Message-ID = %q, want %q in the From domain", id, m.MessageID)
	}
	if d, err := h.Date(); err != nil || !d.Equal(m.Date) {
		t.Fatalf("Date = %v, %v", d, err)
	}
	for k, want := range map[string]string{"X-Priority": "1 (Highest)", "Importance": "high", "X-Campaign": "spring 2025", "Reply-To": "<replies@example.test>", "Mime-Version": "1.0"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got, _ := h.Text("X-Note"); got != "café continued" {
		t.Errorf("X-Note decoded = %q", got)
	}
	if h.Has("Bcc") {
		t.Error("a Bcc header was written")
	}

	want := []struct{ path, cte, filename string }{
		{"multipart/mixed>multipart/alternative>text/plain", "quoted-printable", ""},
		{"multipart/mixed>multipart/alternative>text/html", "quoted-printable", ""},
		{"multipart/mixed>application/pdf", "base64", "report.pdf"},
		{"multipart/mixed>image/png", "base64", "picture"},
		{"multipart/mixed>text/plain", "base64", "Notiz März.txt"},
	}
	if len(parts) != len(want) {
		t.Fatalf("got %d parts, want %d: %+v", len(parts), len(want), parts)
	}
	for i, w := range want {
		p := parts[i]
		if p.Path != w.path || p.CTE != w.cte || p.Filename != w.filename {
			t.Errorf("part %d = %s %s %q, want %s %s %q", i, p.Path, p.CTE, p.Filename, w.path, w.cte, w.filename)
		}
	}
	if got := string(parts[0].Body); got != strings.ReplaceAll(m.Text, "\n", "\r\n") {
		t.Errorf("text body decoded = %q", got)
	}
	if parts[0].Params["charset"] != "utf-8" || parts[1].Params["charset"] != "utf-8" {
		t.Errorf("text parts lack charset=utf-8: %v %v", parts[0].Params, parts[1].Params)
	}
	for i, data := range [][]byte{pdf, png, note} {
		if !bytes.Equal(parts[2+i].Body, data) {
			t.Errorf("attachment %d is not byte-identical after decoding (%d bytes, want %d)", i, len(parts[2+i].Body), len(data))
		}
	}
}

func TestSMTPComposeSinglePart(t *testing.T) {
	base := smtpMessage{From: smtpTestAddr(t, "a@example.test"), To: []*mail.Address{smtpTestAddr(t, "b@example.test")},
		Subject: "plain", Date: time.Now(), MessageID: "x@example.test"}
	for _, tc := range []struct {
		name, text, html, wantType, wantBody string
	}{
		{"text", "héllo\n", "", "text/plain", "héllo\r\n"},
		{"html", "", "<p>hé</p>", "text/html", "<p>hé</p>\r\n"},
		{"empty", "", "", "text/plain", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			m.Text, m.HTML = tc.text, tc.html
			raw := smtpTestCompose(t, &m)
			smtpTestCheckWire(t, raw)
			h, parts := smtpTestParse(t, raw)
			if len(parts) != 1 || parts[0].Path != tc.wantType || string(parts[0].Body) != tc.wantBody {
				t.Fatalf("parts = %+v", parts)
			}
			if h.Get("Content-Transfer-Encoding") != "quoted-printable" {
				t.Fatalf("Content-Transfer-Encoding = %q", h.Get("Content-Transfer-Encoding"))
			}
		})
	}
	t.Run("alternative", func(t *testing.T) {
		m := base
		m.Text, m.HTML = "t", "<p>h</p>"
		_, parts := smtpTestParse(t, smtpTestCompose(t, &m))
		if len(parts) != 2 || parts[0].Path != "multipart/alternative>text/plain" || parts[1].Path != "multipart/alternative>text/html" {
			t.Fatalf("parts = %+v", parts)
		}
	})
}

func TestSMTPComposeHeadersParameter(t *testing.T) {
	for _, bad := range []string{"From: x@y", "bcc: x@y", "To: a", "CC: a", "Date: now", "Message-ID: <a@b>", "MIME-Version: 1.0", "content-type: text/html", "Content-Transfer-Encoding: 8bit"} {
		if _, err := smtpParseHeaders(bad, nil); err == nil || !strings.Contains(err.Error(), "cannot be set here") {
			t.Errorf("%q: err = %v, want a refusal", bad, err)
		}
	}
	for _, bad := range []string{"no colon here", ": empty name", "Bad Name: x", "Ümlaut: x", "  continues nothing"} {
		if _, err := smtpParseHeaders(bad, nil); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	if _, err := smtpParseHeaders("Subject: x", map[string]string{"Subject": "Subject"}); err == nil || !strings.Contains(err.Error(), `parameter "Subject"`) {
		t.Errorf("a header set by a parameter too: err = %v", err)
	}
	got, err := smtpParseHeaders("X-A: 1\r\n\r\nX-B:two  \n\tthree\nList-Unsubscribe: <mailto:u@example.test>", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []smtpHeaderField{{"X-A", "1"}, {"X-B", "two three"}, {"List-Unsubscribe", "<mailto:u@example.test>"}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestSMTPComposeAttachmentsExpand(t *testing.T) {
	dir := t.TempDir()
	smtpTestFile(t, dir, "b.csv", []byte("a,b\n"))
	smtpTestFile(t, dir, "a.csv", []byte("c,d\n"))
	smtpTestFile(t, dir, "x.json", []byte("{}"))
	if err := os.Mkdir(filepath.Join(dir, "sub.csv"), 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := smtpExpandAttachments([]string{filepath.Join(dir, "*.csv"), filepath.Join(dir, "x.json"), filepath.Join(dir, "a.csv")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range got {
		names = append(names, a.Name+"="+a.ContentType)
	}
	if len(got) != 3 || got[0].Name != "a.csv" || got[1].Name != "b.csv" || got[2].Name != "x.json" || got[2].ContentType != "application/json" {
		t.Fatalf("attachments = %v (a folder matching the glob is skipped, a repeated file attached once)", names)
	}
	bracket := smtpTestFile(t, dir, "Report [2024].txt", []byte("x"))
	if got, err := smtpExpandAttachments([]string{bracket}); err != nil || len(got) != 1 || got[0].Path != bracket {
		t.Fatalf("a file whose name holds glob characters: %v, %v", got, err)
	}
	pattern := filepath.Join(dir, "*.pdf")
	if _, err := smtpExpandAttachments([]string{pattern}); err == nil || !strings.Contains(err.Error(), pattern) || !strings.Contains(err.Error(), "matches no file") {
		t.Fatalf("a glob matching nothing: err = %v", err)
	}
	missing := filepath.Join(dir, "missing.txt")
	if _, err := smtpExpandAttachments([]string{missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("a missing file: err = %v", err)
	}
	if _, err := smtpExpandAttachments([]string{filepath.Join(dir, "sub.csv")}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a folder: err = %v", err)
	}
}

func TestSMTPComposeAddresses(t *testing.T) {
	got := smtpSplitAddresses("\"Doe, John\" <j@x.test>, b@y.test; c@z.test\n<d@w.test>,,\r\n \"Semi; Colon\" <e@v.test>")
	want := []string{`"Doe, John" <j@x.test>`, "b@y.test", "c@z.test", "<d@w.test>", `"Semi; Colon" <e@v.test>`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("split = %q, want %q", got, want)
	}
	if _, err := smtpParseAddresses("To", "ok@x.test, not an address"); err == nil || !strings.Contains(err.Error(), `"not an address"`) || !strings.Contains(err.Error(), `"To"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestSMTPComposeReplyHeaders(t *testing.T) {
	parent := "Message-ID: <p3@example.test>\r\nReferences: <p1@example.test>\r\n <p2@example.test>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nbody\r\n"
	id, refs, subject, err := smtpReplyHeaders(strings.NewReader(parent))
	if err != nil || id != "p3@example.test" || strings.Join(refs, " ") != "p1@example.test p2@example.test p3@example.test" || subject != "Grüße" {
		t.Fatalf("got %q %q %q %v", id, refs, subject, err)
	}
	_, refs, _, _ = smtpReplyHeaders(strings.NewReader("Message-ID: <c@x>\r\nIn-Reply-To: <b@x>\r\n\r\n"))
	if strings.Join(refs, " ") != "b@x c@x" {
		t.Fatalf("refs from In-Reply-To = %q", refs)
	}
	for in, want := range map[string]string{"Hello": "Re: Hello", "Re: Hello": "Re: Hello", "RE:Hi": "RE:Hi", "": "Re: "} {
		if got := smtpReplySubject(in); got != want {
			t.Errorf("smtpReplySubject(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSMTPComposeMessage: a small message stays in memory; one with a large attachment
// spills into a temporary file (mode 0600) that remove deletes. Both read back the same
// bytes as composing in memory, twice (DATA, then APPEND to Sent).
func TestSMTPComposeMessage(t *testing.T) {
	m := &smtpMessage{From: smtpTestAddr(t, "a@example.test"), To: []*mail.Address{smtpTestAddr(t, "b@example.test")},
		Subject: "file", Text: "body", Date: time.Now(), MessageID: "x@example.test"}
	small, err := smtpComposeMessage(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	// A single-part message has no random boundary: composing again gives the same bytes.
	want := smtpTestCompose(t, m)
	if small.path != "" || small.size != int64(len(want)) || !bytes.Equal(smtpTestReadComposed(t, small), want) {
		t.Fatalf("small message: file %q, size %d, same bytes: %v", small.path, small.size, bytes.Equal(smtpTestReadComposed(t, small), want))
	}

	dir := t.TempDir()
	atts, err := smtpExpandAttachments([]string{smtpTestFile(t, dir, "a.bin", bytes.Repeat([]byte("attachment "), 200_000))})
	if err != nil {
		t.Fatal(err)
	}
	m.Attachments = atts
	big, err := smtpComposeMessage(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(big.path)
	if err != nil {
		t.Fatalf("a %d-byte message is not in a file: %v", big.size, err)
	}
	first := smtpTestReadComposed(t, big)
	if fi.Mode().Perm() != 0o600 || fi.Size() != big.size || int64(len(first)) != big.size || !bytes.Equal(first, smtpTestReadComposed(t, big)) {
		t.Fatalf("mode %v, size %d (reported %d, read %d)", fi.Mode().Perm(), fi.Size(), big.size, len(first))
	}
	if !bytes.Contains(first, []byte("Subject: file")) || big.size <= smtpComposedMemMax {
		t.Fatalf("spilled message: %d bytes, headers kept: %v", big.size, bytes.Contains(first, []byte("Subject: file")))
	}
	big.remove()
	if _, err := os.Stat(big.path); !os.IsNotExist(err) {
		t.Fatalf("the temporary file is still there: %v", err)
	}
}

// smtpTestReadComposed reads a composed message whole.
func smtpTestReadComposed(t *testing.T, m *smtpComposed) []byte {
	t.Helper()
	r, err := m.open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSMTPComposeCancelled(t *testing.T) {
	dir := t.TempDir()
	atts, err := smtpExpandAttachments([]string{smtpTestFile(t, dir, "a.bin", bytes.Repeat([]byte{1}, 1<<20))})
	if err != nil {
		t.Fatal(err)
	}
	m := &smtpMessage{From: smtpTestAddr(t, "a@example.test"), To: []*mail.Address{smtpTestAddr(t, "b@example.test")},
		Attachments: atts, Date: time.Now(), MessageID: "x@example.test"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "mailwright-send-*.eml"))
	if _, err := smtpComposeMessage(ctx, m); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if after, _ := filepath.Glob(filepath.Join(os.TempDir(), "mailwright-send-*.eml")); len(after) > len(before) {
		t.Fatalf("the temporary file was left behind: %v", after)
	}
}
