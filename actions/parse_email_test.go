package actions

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// parseTestFile is the path of a fixture under testdata/parse.
func parseTestFile(name string) string { return filepath.Join("testdata", "parse", name) }

// parseTestRun runs Parse Email and fails the test on error.
func parseTestRun(t *testing.T, te *testEnv, params map[string]string) {
	t.Helper()
	if err := te.run(t.Context(), NewParseEmail(), params); err != nil {
		t.Fatalf("Parse Email %v: %v", params, err)
	}
}

// parseTestPDF is the PDF attached to nested.eml (see the generator's bytes).
func parseTestPDF() []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	for range 4 {
		for i := range 256 {
			b.WriteByte(byte(i))
		}
	}
	b.WriteString("\n%%EOF\n")
	return b.Bytes()
}

// parseTestInner is the message attached to nested.eml as message/rfc822 (the CRLF before
// the next boundary belongs to the boundary).
const parseTestInner = "From: carol@example.test\r\nTo: alice@example.test\r\nSubject: Forwarded: minutes\r\n" +
	"Date: Mon, 6 May 2024 08:00:00 +0000\r\n\r\nThe minutes.\r\n"

func parseTestWant(t *testing.T, te *testEnv, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := te.Var(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestParseEmailSchema(t *testing.T) {
	r := NewRegistry()
	if err := r.Register(NewParseEmail()); err != nil {
		t.Fatal(err)
	}
	s := NewParseEmail().Schema()
	if s.ID != "email.parse" || s.Title != "Parse Email" || s.Group != "Email" || s.IsLoop {
		t.Fatalf("schema: %+v", s)
	}
	for _, p := range s.Params {
		if p.Help == "" {
			t.Errorf("param %s has no help", p.Name)
		}
	}
	if p, _ := s.Param("max_body_bytes"); !p.Advanced || p.Default != "10485760" {
		t.Errorf("max_body_bytes: %+v", p)
	}
}

func TestParseEmailHeaders(t *testing.T) {
	te := newTestEnv(t)
	parseTestRun(t, te, map[string]string{"file": parseTestFile("clean.eml"), "headers": "X-Priority, List-Id; X-Tag, X-Missing"})
	parseTestWant(t, te, map[string]string{
		"EmailFrom":              "Jürgen Müller <juergen@example.org>",
		"EmailTo":                `Alice <alice@example.test>, bob@example.test, "Doe, John" <john@example.test>`,
		"EmailCc":                "Élodée <elodee@example.test>",
		"EmailReplyTo":           "Support <support@example.org>",
		"EmailSubject":           "Quarterly report — Q1",
		"EmailDate":              "2024-05-06T09:30:00+02:00",
		"EmailMessageID":         "<abc.123@example.org>",
		"EmailInReplyTo":         "<prev.1@example.test>",
		"EmailReferences":        "<root.0@example.test> <prev.1@example.test>",
		"EmailHeader_X_Priority": "1 (Highest)",
		"EmailHeader_List_Id":    "Reports <reports.example.org>",
		"EmailHeader_X_Tag":      "first\nsécond",
		"EmailHeader_X_Missing":  "",
		"EmailTextBody":          "Hello Alice,\nthe report is attached in spirit. Grüße!\r\nLine with trailing spaces    \r\n",
		"EmailHTMLBody":          "",
		"EmailAttachmentCount":   "0",
		"EmailWarnings":          "",
	})
}

func TestParseEmailHeaderCharsets(t *testing.T) {
	te := newTestEnv(t)
	parseTestRun(t, te, map[string]string{"file": parseTestFile("header-charsets.eml"), "headers": "X-Greeting"})
	parseTestWant(t, te, map[string]string{
		"EmailFrom":              "Иван Петров <ivan@example.ru>", // KOI8-R, B
		"EmailTo":                "山田太郎 <taro@example.jp>",        // Shift_JIS, B
		"EmailCc":                "佐藤花子 <hanako@example.jp>",      // ISO-2022-JP, B
		"EmailSubject":           "Café“smart” €",                 // ISO-8859-1 Q + Windows-1252 B (adjacent words join)
		"EmailHeader_X_Greeting": "Привет, мир",                   // KOI8-R, Q
		"EmailWarnings":          "",
	})
}

func TestParseEmailBodyCharsets(t *testing.T) {
	cases := []struct{ file, text, html string }{
		{"body-latin1-qp.eml", "Olé, señor! ¿Qué tal?\n", ""},
		{"body-koi8r-8bit.eml", "Здравствуйте!\n", ""},
		{"body-sjis-base64.eml", "こんにちは世界\n", ""},
		{"body-iso2022jp-7bit.eml", "お元気ですか\n", ""},
		{"body-cp1252-html.eml", "", "<p>“Quoted” – €5</p>\n"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			te := newTestEnv(t)
			parseTestRun(t, te, map[string]string{"file": parseTestFile(c.file)})
			parseTestWant(t, te, map[string]string{"EmailTextBody": c.text, "EmailHTMLBody": c.html, "EmailWarnings": ""})
		})
	}
}

func TestParseEmailAlternative(t *testing.T) {
	te := newTestEnv(t)
	parseTestRun(t, te, map[string]string{"file": parseTestFile("alternative.eml")})
	parseTestWant(t, te, map[string]string{
		"EmailTextBody": "Grüße aus Köln", "EmailHTMLBody": "<p>Grüße aus Köln – €</p>",
		"EmailAttachmentCount": "0", "EmailWarnings": "",
	})
}

func TestParseEmailNestedAttachments(t *testing.T) {
	dir := t.TempDir()
	te := newTestEnv(t)
	parseTestRun(t, te, map[string]string{"file": parseTestFile("nested.eml"), "save_attachments": "true", "attachments_folder": dir})
	parseTestWant(t, te, map[string]string{
		"EmailTextBody":        "Plain body", // the later text/plain part is not the body
		"EmailHTMLBody":        `<p>HTML body <img src="cid:logo"></p>`,
		"EmailAttachmentCount": "4", // the inline logo is left out by default
		"EmailAttachmentNames": "Résumé 2024—final.pdf\nnaïve notes.txt\nattachment-3.bin\nForwarded: minutes.eml",
		"EmailWarnings":        "",
	})
	want := map[string]string{
		"Résumé 2024—final.pdf":  string(parseTestPDF()),                     // RFC 2231 continuations + UTF-8
		"naïve notes.txt":        "caf\xe9",                                  // RFC 2047 name; bytes kept in their charset
		"attachment-3.bin":       "\x00\x01\x02\x03\x04",                     // unnamed: extension from the type
		"Forwarded_ minutes.eml": strings.TrimSuffix(parseTestInner, "\r\n"), // message/rfc822 named after its subject
	}
	paths := strings.Split(te.Var("EmailAttachments"), "\n")
	if len(paths) != len(want) {
		t.Fatalf("EmailAttachments = %q", te.Var("EmailAttachments"))
	}
	for _, p := range paths {
		if filepath.Dir(p) != dir {
			t.Errorf("%s is not in %s", p, dir)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[filepath.Base(p)]; !ok || string(b) != w {
			t.Errorf("%s: %d bytes, want %d (known name: %v)", p, len(b), len(w), ok)
		}
	}

	// include_inline adds the inline image that has a file name.
	dir2 := t.TempDir()
	te2 := newTestEnv(t)
	parseTestRun(t, te2, map[string]string{"file": parseTestFile("nested.eml"), "save_attachments": "true", "attachments_folder": dir2, "include_inline": "true"})
	if te2.Var("EmailAttachmentCount") != "5" || !strings.HasPrefix(te2.Var("EmailAttachmentNames"), "logo.png\n") {
		t.Fatalf("with inline: %q", te2.Var("EmailAttachmentNames"))
	}
	png, err := os.ReadFile(filepath.Join(dir2, "logo.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) != 8+512 {
		t.Fatalf("logo.png: %d bytes, %v", len(png), err)
	}

	// Without saving, names and count are still reported and nothing is written.
	te3 := newTestEnv(t)
	parseTestRun(t, te3, map[string]string{"file": parseTestFile("nested.eml")})
	if te3.Var("EmailAttachmentCount") != "4" || te3.Var("EmailAttachments") != "" {
		t.Fatalf("no save: count %q paths %q", te3.Var("EmailAttachmentCount"), te3.Var("EmailAttachments"))
	}
}

func TestParseEmailRFC2231Latin1(t *testing.T) {
	dir := t.TempDir()
	te := newTestEnv(t)
	parseTestRun(t, te, map[string]string{"file": parseTestFile("rfc2231-latin1.eml"), "save_attachments": "true", "attachments_folder": dir})
	parseTestWant(t, te, map[string]string{"EmailAttachmentNames": "déjà vu.txt", "EmailAttachments": filepath.Join(dir, "déjà vu.txt"), "EmailWarnings": ""})
}

// parseTestSafeName checks the rules every saved attachment name must follow.
func parseTestSafeName(t testing.TB, name string) {
	t.Helper()
	if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") ||
		strings.HasPrefix(name, ".") || strings.ContainsFunc(name, unicode.IsControl) || len(name) > 255 {
		t.Errorf("unsafe attachment name %q", name)
	}
}

func TestParseEmailPathTraversal(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "att")
	te := newTestEnv(t)
	parseTestRun(t, te, map[string]string{"file": parseTestFile("traversal.eml"), "save_attachments": "true", "attachments_folder": dir})
	if te.Var("EmailAttachmentCount") != "8" {
		t.Fatalf("count %q, names %q", te.Var("EmailAttachmentCount"), te.Var("EmailAttachmentNames"))
	}
	if names := te.Var("EmailAttachmentNames"); !strings.Contains(names, "../../etc/passwd\n") || strings.ContainsAny(names, "\x00\x07") {
		t.Errorf("names keep the original (decoded) name without control characters: %q", names)
	}
	contents := map[string]bool{}
	for _, p := range strings.Split(te.Var("EmailAttachments"), "\n") {
		if filepath.Dir(p) != dir {
			t.Errorf("%s escaped %s", p, dir)
		}
		parseTestSafeName(t, filepath.Base(p))
		b, _ := os.ReadFile(p)
		contents[string(b)] = true
	}
	for _, c := range []string{"one", "two", "three", "four", "five", "six", "seven", "eight"} {
		if !contents[c] {
			t.Errorf("attachment %q was not saved", c)
		}
	}
	var files []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	for _, f := range files {
		if filepath.Dir(f) != dir {
			t.Errorf("file written outside the folder: %s", f)
		}
	}
	if len(files) != 8 {
		t.Errorf("%d files on disk, want 8: %v", len(files), files)
	}
}

func TestParseEmailCollisions(t *testing.T) {
	dir := t.TempDir()
	run := func(policy string) (*testEnv, error) {
		te := newTestEnv(t)
		err := te.run(t.Context(), NewParseEmail(), map[string]string{"file": parseTestFile("rfc2231-latin1.eml"),
			"save_attachments": "true", "attachments_folder": dir, "collision": policy})
		return te, err
	}
	first := filepath.Join(dir, "déjà vu.txt")
	if te, err := run("rename"); err != nil || te.Var("EmailAttachments") != first {
		t.Fatalf("first: %v %q", err, te.Var("EmailAttachments"))
	}
	if te, err := run("rename"); err != nil || te.Var("EmailAttachments") != filepath.Join(dir, "déjà vu (2).txt") {
		t.Fatalf("rename: %v %q", err, te.Var("EmailAttachments"))
	}
	if te, err := run("skip"); err != nil || te.Var("EmailAttachments") != "" || te.Var("EmailAttachmentCount") != "1" {
		t.Fatalf("skip: %v %q", err, te.Var("EmailAttachments"))
	}
	if _, err := run("fail"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("fail: %v", err)
	}
	os.WriteFile(first, []byte("old"), 0o644)
	if te, err := run("overwrite"); err != nil || te.Var("EmailAttachments") != first {
		t.Fatalf("overwrite: %v", err)
	}
	if b, _ := os.ReadFile(first); string(b) != "x" {
		t.Fatalf("overwritten content %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("files: %v (want the file and its (2) copy, no temporary files)", entries)
	}
}

func TestParseEmailMaxBody(t *testing.T) {
	te := newTestEnv(t)
	parseTestRun(t, te, map[string]string{"file": parseTestFile("body-latin1-qp.eml"), "max_body_bytes": "3"})
	if got := te.Var("EmailTextBody"); got != "Ol" { // "é" would be cut in half: it goes
		t.Fatalf("text %q", got)
	}
	if w := te.Var("EmailWarnings"); !strings.Contains(w, "max_body_bytes") {
		t.Fatalf("warnings %q", w)
	}
	if err := te.run(t.Context(), NewParseEmail(), map[string]string{"file": parseTestFile("clean.eml"), "max_body_bytes": "-1"}); err == nil {
		t.Fatal("negative max_body_bytes accepted")
	}
}

func TestParseEmailBroken(t *testing.T) {
	cases := []struct {
		file, warning string
		check         func(te *testEnv) bool
	}{
		{"broken-boundary.eml", "no part with boundary", func(te *testEnv) bool { return strings.Contains(te.Var("EmailTextBody"), "the text is still here") }},
		{"broken-truncated.eml", "cut off", func(te *testEnv) bool {
			return te.Var("EmailTextBody") == "first part" && te.Var("EmailAttachmentNames") == "cut.pdf"
		}},
		{"broken-charset.eml", `unknown charset "x-klingon-42"`, func(te *testEnv) bool { return te.Var("EmailTextBody") == "qapla\uFFFD batlh\n" }},
		{"broken-base64.eml", "bad base64", func(te *testEnv) bool { return te.Var("EmailTextBody") == "Hello world" }},
		{"broken-noheader.eml", "no header", func(te *testEnv) bool { return strings.HasPrefix(te.Var("EmailTextBody"), "Just a body line") }},
		{"broken-8bit-header.eml", "not UTF-8", func(te *testEnv) bool {
			return te.Var("EmailSubject") == "Caf\uFFFD cr\uFFFDme" && te.Var("EmailFrom") == "Ren\uFFFD <rene@example.test>"
		}},
		{"broken-nul.eml", "NUL", func(te *testEnv) bool {
			return te.Var("EmailSubject") == "nulinside" && te.Var("EmailTextBody") == "bodywith nul\r\n"
		}},
		{"broken-date.eml", "Date header", func(te *testEnv) bool { return te.Var("EmailDate") == "" && te.Var("EmailTextBody") == "body\r\n" }},
		{"broken-headerline.eml", "malformed header line", func(te *testEnv) bool { return te.Var("EmailSubject") == "after the bad line" }},
		{"broken-noclose.eml", "cut off", func(te *testEnv) bool { return te.Var("EmailTextBody") == "complete text" }},
		{"broken-encoding.eml", "Content-Transfer-Encoding", func(te *testEnv) bool { return te.Var("EmailTextBody") == "begin 644 x\r\n" }},
		{"broken-noboundary.eml", "without a boundary", func(te *testEnv) bool { return te.Var("EmailTextBody") == "plain words\r\n" }},
		{"broken-missing.eml", "no From header", func(te *testEnv) bool { return te.Var("EmailSubject") == "only a subject" }},
		{"broken-empty.eml", "the message is empty", func(te *testEnv) bool {
			return te.Var("EmailSubject") == "" && te.Var("EmailTextBody") == "" && te.Var("EmailAttachmentCount") == "0"
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			te := newTestEnv(t)
			parseTestRun(t, te, map[string]string{"file": parseTestFile(c.file), "save_attachments": "true", "attachments_folder": t.TempDir()})
			if w := te.Var("EmailWarnings"); !strings.Contains(w, c.warning) {
				t.Errorf("EmailWarnings = %q, want it to mention %q", w, c.warning)
			}
			if !strings.Contains(te.Logs.String(), "broken mail") {
				t.Errorf("no log line for the warning")
			}
			if !c.check(te) {
				t.Errorf("content not read: %q", te.Vars)
			}
		})
	}
}

// parseFailingReader returns some bytes, then an error (a connection that broke).
type parseFailingReader struct{ r io.Reader }

func (f *parseFailingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("connection reset by peer")
	}
	return n, err
}

func (f *parseFailingReader) Close() error { return nil }

func TestParseEmailLoopMessage(t *testing.T) {
	te := newTestEnv(t)
	// No file and no loop: a clear error.
	err := te.run(t.Context(), NewParseEmail(), map[string]string{})
	if err == nil || !strings.Contains(err.Error(), "no message to parse") {
		t.Fatalf("no source: %v", err)
	}
	// The loop's current message: Open streams a file.
	opened := 0
	te.Sessions.SetCurrent(&CurrentMessage{Protocol: "pop3", Session: "pop3", Number: 3, UIDL: "u3",
		Open: func(context.Context) (io.ReadCloser, error) {
			opened++
			return os.Open(parseTestFile("alternative.eml"))
		}})
	parseTestRun(t, te, map[string]string{})
	if opened != 1 || te.Var("EmailSubject") != "alt" || te.Var("EmailHTMLBody") != "<p>Grüße aus Köln – €</p>" {
		t.Fatalf("opened %d, vars %q", opened, te.Vars)
	}
	// A file given wins over the loop's message.
	parseTestRun(t, te, map[string]string{"file": parseTestFile("clean.eml")})
	if opened != 1 || te.Var("EmailSubject") != "Quarterly report — Q1" {
		t.Fatalf("file: opened %d, subject %q", opened, te.Var("EmailSubject"))
	}
	// A source that fails mid-way is an error (the message was not read), not a warning,
	// and the previous message's variables are not left behind.
	raw, _ := os.ReadFile(parseTestFile("nested.eml"))
	te.Sessions.SetCurrent(&CurrentMessage{Protocol: "imap", UID: 7,
		Open: func(context.Context) (io.ReadCloser, error) {
			return &parseFailingReader{bytes.NewReader(raw[:len(raw)/2])}, nil
		}})
	err = te.run(t.Context(), NewParseEmail(), map[string]string{"save_attachments": "true", "attachments_folder": t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "connection reset") || !strings.Contains(err.Error(), "UID 7") {
		t.Fatalf("failing source: %v", err)
	}
	if te.Var("EmailSubject") != "" {
		t.Fatalf("stale subject %q", te.Var("EmailSubject"))
	}
	// A cancelled context stops the parse.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	te.Sessions.SetCurrent(&CurrentMessage{Protocol: "imap", UID: 8,
		Open: func(context.Context) (io.ReadCloser, error) { return os.Open(parseTestFile("nested.eml")) }})
	if err := te.run(ctx, NewParseEmail(), map[string]string{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	// Saving without a folder is refused before anything is read.
	if err := te.run(t.Context(), NewParseEmail(), map[string]string{"save_attachments": "true"}); err == nil || !strings.Contains(err.Error(), "Attachments folder") {
		t.Fatalf("no folder: %v", err)
	}
	if err := te.run(t.Context(), NewParseEmail(), map[string]string{"file": filepath.Join(t.TempDir(), "missing.eml")}); err == nil || !strings.Contains(err.Error(), "check the file path") {
		t.Fatalf("missing file: %v", err)
	}
}
