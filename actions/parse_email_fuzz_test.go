package actions

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseEmail runs Parse Email on arbitrary bytes, saving attachments, and checks that
// it never fails on readable input, never writes outside the folder, only writes safe
// names, and only sets valid UTF-8 variables. Seeds: testdata/parse/*.eml (crashers the
// fuzzer found are kept under testdata/fuzz/FuzzParseEmail).
func FuzzParseEmail(f *testing.F) {
	files, err := filepath.Glob(parseTestFile("*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		folder := filepath.Join(root, "att")
		te := newTestEnv(t)
		te.Sessions.SetCurrent(&CurrentMessage{Protocol: "imap", UID: 1,
			Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }})
		err := te.run(t.Context(), NewParseEmail(), map[string]string{"save_attachments": "true", "attachments_folder": folder,
			"include_inline": "true", "headers": "X-Priority, List-Id, Content-Type", "max_body_bytes": "65536"})
		if err != nil {
			t.Fatalf("Parse Email failed on readable input: %v", err)
		}
		for name, v := range te.Vars {
			if !utf8.ValidString(v) {
				t.Errorf("%s is not valid UTF-8: %q", name, v)
			}
		}
		names := te.Var("EmailAttachmentNames")
		count, _ := strconv.Atoi(te.Var("EmailAttachmentCount"))
		if (names == "") != (count == 0) || names != "" && len(strings.Split(names, "\n")) != count {
			t.Errorf("count %d does not match names %q", count, names)
		}
		listed := map[string]bool{}
		if paths := te.Var("EmailAttachments"); paths != "" {
			for _, p := range strings.Split(paths, "\n") {
				listed[p] = true
				if filepath.Dir(p) != folder {
					t.Errorf("attachment path %q is not in the folder", p)
				}
			}
		}
		onDisk := 0
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			onDisk++
			if filepath.Dir(p) != folder {
				t.Errorf("file written outside the folder: %s", p)
			}
			parseTestSafeName(t, d.Name())
			if !listed[p] {
				t.Errorf("file %s is on disk but not in EmailAttachments", p)
			}
			return nil
		})
		if onDisk != len(listed) {
			t.Errorf("%d files on disk, %d listed", onDisk, len(listed))
		}
	})
}
