package actions

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// badInputParse runs Parse Email on raw (written to a file) and returns the test env.
func badInputParse(t *testing.T, raw string, params map[string]string) *testEnv {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(f, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	p := map[string]string{"file": f}
	for k, v := range params {
		p[k] = v
	}
	te := newTestEnv(t)
	parseTestRun(t, te, p)
	return te
}

// TestBadInputParseEmailHugeTrees: 10,000 nested multiparts (with distinct and with one
// shared boundary), 10,000 nested attached messages and 10,000 sibling parts. Parse Email
// must neither blow the stack nor take quadratic time: multiparts deeper than
// parseMaxDepth are skipped with a warning, attached messages are not opened, siblings
// are each read once. Without the depth limit the nested case copies every byte through
// one reader per level (10,000 levels: gigabytes) and does not finish in time.
func TestBadInputParseEmailHugeTrees(t *testing.T) {
	const n = 10_000
	nested := func(boundary func(i int) string) string {
		var b strings.Builder
		b.WriteString("From: a@example.test\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=\"" + boundary(0) + "\"\r\n\r\n")
		for i := 0; i < n; i++ {
			b.WriteString("--" + boundary(i) + "\r\nContent-Type: multipart/mixed; boundary=\"" + boundary(i+1) + "\"\r\n\r\n")
		}
		b.WriteString("--" + boundary(n) + "\r\nContent-Type: text/plain\r\n\r\ndeepest text\r\n--" + boundary(n) + "--\r\n")
		for i := n - 1; i >= 0; i-- {
			b.WriteString("--" + boundary(i) + "--\r\n")
		}
		return b.String()
	}
	var rfc822 strings.Builder
	rfc822.WriteString("From: a@example.test\r\nSubject: outer\r\n")
	for range n {
		rfc822.WriteString("Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n")
	}
	rfc822.WriteString("\r\nbody\r\n")
	var siblings strings.Builder
	siblings.WriteString("From: a@example.test\r\nSubject: wide\r\nContent-Type: multipart/mixed; boundary=S\r\n\r\n--S\r\nContent-Type: text/plain\r\n\r\nthe text\r\n")
	for i := range n {
		fmt.Fprintf(&siblings, "--S\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f%d.bin\"\r\n\r\nx\r\n", i)
	}
	siblings.WriteString("--S--\r\n")

	cases := []struct {
		name, raw string
		check     func(te *testEnv) error
	}{
		{"nested multiparts", nested(func(i int) string { return "b" + strconv.Itoa(i) }), func(te *testEnv) error {
			if w := te.Var("EmailWarnings"); !strings.Contains(w, fmt.Sprintf("nested deeper than %d levels are skipped", parseMaxDepth)) {
				return fmt.Errorf("warnings %q", w)
			}
			return nil
		}},
		{"nested multiparts, one boundary", nested(func(int) string { return "same" }), nil},
		{"nested attached messages", rfc822.String(), func(te *testEnv) error {
			if te.Var("EmailAttachmentCount") != "1" {
				return fmt.Errorf("attachments %q", te.Var("EmailAttachmentNames"))
			}
			return nil
		}},
		{"10,000 sibling parts", siblings.String(), func(te *testEnv) error {
			if te.Var("EmailAttachmentCount") != strconv.Itoa(n) || te.Var("EmailTextBody") != "the text" {
				return fmt.Errorf("count %s, text %q", te.Var("EmailAttachmentCount"), te.Var("EmailTextBody"))
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			te := badInputParse(t, tc.raw, nil)
			if d := time.Since(began); d > 20*time.Second {
				t.Errorf("took %v for %d bytes", d, len(tc.raw))
			}
			if tc.check != nil {
				if err := tc.check(te); err != nil {
					t.Error(err)
				}
			}
			if len(te.Var("EmailWarnings")) > 20_000 {
				t.Errorf("%d bytes of warnings: they must stay bounded", len(te.Var("EmailWarnings")))
			}
		})
	}
}

// TestBadInputAttachmentNames saves attachments with hostile names (sent as RFC 2231
// UTF-8, so any byte can be in them): every file lands directly in the folder, under a
// name that is safe on Linux, macOS and Windows, and no two attachments overwrite each
// other.
func TestBadInputAttachmentNames(t *testing.T) {
	cases := []struct{ name, want string }{
		{"../../etc/passwd", "____etc_passwd"},
		{"/etc/shadow", "_etc_shadow"},
		{`..\..\Windows\win.ini`, "____Windows_win.ini"},
		{`C:\Windows\sys.dll`, "C__Windows_sys.dll"},
		{"..", "_"},
		{".", ""},
		{"...", "_ (2)"}, // "..." and ".." both become "_": renamed, not overwritten
		{".hidden", "hidden"},
		{"CON", "_CON"},
		{"con.txt", "_con.txt"},
		{"Con .txt", "_Con .txt"},
		{"aux.tar.gz", "_aux.tar.gz"},
		{"NUL", "_NUL"},
		{"COM9.log", "_COM9.log"},
		{"lpt4", "_lpt4"},
		{"COM10.txt", "COM10.txt"},
		{"CONSOLE.txt", "CONSOLE.txt"},
		{"nul\x00byte.pdf", "nul_byte.pdf"},
		{"\x00", "_ (3)"},
		{"tab\tand\r\nbreak.txt", "tab_and__break.txt"},
		{"esc\x1b[2J.txt", "esc_[2J.txt"},
		{"invoice\u202Efdp.exe", "invoice_fdp.exe"},
		{"what?<>|\":*.doc", "what_______.doc"},
		{strings.Repeat("x", 300) + ".pdf", strings.Repeat("x", maxFileNameBytes-4) + ".pdf"},
		{strings.Repeat("é", 300), strings.Repeat("é", maxFileNameBytes/2)},
		{"trailing dots...", "trailing dots_"},
		{"  spaced  ", "spaced"},
	}
	var b strings.Builder
	b.WriteString("From: a@example.test\r\nSubject: names\r\nContent-Type: multipart/mixed; boundary=N\r\n\r\n")
	for i, c := range cases {
		fmt.Fprintf(&b, "--N\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''%s\r\n\r\ncontent %d\r\n",
			strings.ReplaceAll(url.PathEscape(c.name), "+", "%2B"), i)
	}
	b.WriteString("--N--\r\n")
	root := t.TempDir()
	dir := filepath.Join(root, "att")
	te := badInputParse(t, b.String(), map[string]string{"save_attachments": "true", "attachments_folder": dir})
	paths := strings.Split(te.Var("EmailAttachments"), "\n")
	if len(paths) != len(cases) {
		t.Fatalf("%d attachments saved, want %d: %q", len(paths), len(cases), paths)
	}
	for i, c := range cases {
		p := paths[i]
		if filepath.Dir(p) != dir {
			t.Errorf("%q saved outside the folder: %s", c.name, p)
			continue
		}
		got := filepath.Base(p)
		parseTestSafeName(t, got)
		if saveReservedName(got) || strings.ContainsFunc(got, saveBidiControl) {
			t.Errorf("%q saved as %q: a reserved or direction-changing name", c.name, got)
		}
		want := c.want
		if want == "" {
			want = fmt.Sprintf("attachment-%d.bin", i+1)
		}
		if got != want {
			t.Errorf("%q saved as %q, want %q", c.name, got, want)
		}
		if data, err := os.ReadFile(p); err != nil || string(data) != "content "+strconv.Itoa(i) {
			t.Errorf("%q: file %s holds %q, %v", c.name, p, data, err)
		}
	}
	var files int
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
			if filepath.Dir(p) != dir {
				t.Errorf("file written outside the folder: %s", p)
			}
		}
		return err
	})
	if files != len(cases) {
		t.Errorf("%d files on disk, want %d", files, len(cases))
	}
}
