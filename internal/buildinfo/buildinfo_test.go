package buildinfo

import (
	"os"
	"strings"
	"testing"
)

func TestParseRepositoryFyneApp(t *testing.T) {
	b, err := os.ReadFile("../../FyneApp.toml")
	if err != nil {
		t.Fatal(err)
	}
	info, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "Mailwright" || info.ID == "" || info.Build < 1 {
		t.Fatalf("unexpected info %+v", info)
	}
	parts := strings.Split(info.Version, ".")
	if len(parts) != 3 {
		t.Fatalf("version %q is not MAJOR.MINOR.PATCH", info.Version)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"missing version": "[Details]\nName = \"X\"\n",
		"unquoted":        "[Details]\nName = X\nVersion = \"1\"\n",
		"bad build":       "[Details]\nName = \"X\"\nVersion = \"1\"\nBuild = one\n",
		"no equals":       "[Details]\nName\n",
	}
	for name, in := range cases {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	// Keys outside [Details] are ignored.
	info, err := Parse([]byte("Version = \"9\"\n[Details]\nName = \"X\"\nVersion = \"1.2.3\"\n[Other]\nVersion = \"7\"\n"))
	if err != nil || info.Version != "1.2.3" {
		t.Fatalf("got %+v, %v", info, err)
	}
}
