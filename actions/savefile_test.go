package actions

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSanitizeFileName(t *testing.T) {
	cases := map[string]string{
		"report.pdf":                      "report.pdf",
		"../../etc/passwd":                "____etc_passwd",
		"a/b\\c.txt":                      "a_b_c.txt",
		"..":                              "_",
		"evil\x00name\r\n.txt":            "evil_name__.txt",
		"  .hidden ":                      "hidden",
		"CON.txt":                         "_CON.txt",
		"":                                "x",
		"what?<>|\":*.doc":                "what_______.doc",
		strings.Repeat("é", 300) + ".pdf": "",
	}
	for in, want := range cases {
		got := SanitizeFileName(in, "x")
		if want == "" {
			if len(got) > maxFileNameBytes || !strings.HasSuffix(got, ".pdf") {
				t.Errorf("long name: got %d bytes %q", len(got), got)
			}
			continue
		}
		if got != want {
			t.Errorf("SanitizeFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSaveStreamCollisions(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	save := func(policy, content string) (SavedFile, error) {
		return SaveStream(ctx, dir, "m.eml", policy, strings.NewReader(content))
	}
	if f, err := save(CollisionRename, "one"); err != nil || f.Path != filepath.Join(dir, "m.eml") || f.Size != 3 {
		t.Fatalf("first: %+v %v", f, err)
	}
	if f, err := save(CollisionRename, "two"); err != nil || f.Path != filepath.Join(dir, "m (2).eml") {
		t.Fatalf("rename: %+v %v", f, err)
	}
	if f, err := save(CollisionSkip, "three"); err != nil || !f.Skipped {
		t.Fatalf("skip: %+v %v", f, err)
	}
	if _, err := save(CollisionFail, "four"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("fail: %v", err)
	}
	if _, err := save(CollisionOverwrite, "five"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "m.eml"))
	if string(b) != "five" {
		t.Fatalf("overwrite: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := SaveStream(cctx, dir, "c.eml", CollisionRename, strings.NewReader("x")); err == nil {
		t.Fatal("cancelled save succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("cancelled save left files: %v", entries)
	}
}
