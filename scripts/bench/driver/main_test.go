package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseFlagsDefaults(t *testing.T) {
	c, err := parseFlags([]string{"-bin", "/b", "-work", "/w"})
	if err != nil {
		t.Fatal(err)
	}
	if c.smoke || !c.warmUp || !c.profile || c.verbose {
		t.Errorf("smoke %v warmUp %v profile %v verbose %v, want false true true false", c.smoke, c.warmUp, c.profile, c.verbose)
	}
	if !slices.Equal(c.sizes, []int{10000}) || c.rounds != 5 || c.msmtpN != 200 || c.smtpN != 1000 ||
		c.tokensN != 1000 || c.parseMiB != 50 {
		t.Errorf("full-run defaults changed: %+v", c)
	}
	if !slices.Equal(c.only, []string{"imap", "pop3", "smtp", "parse", "tokens"}) {
		t.Errorf("only = %q", c.only)
	}
	if c.report != filepath.Join("/w", "report.md") {
		t.Errorf("report = %q", c.report)
	}
}

func TestParseFlagsSmoke(t *testing.T) {
	c, err := parseFlags([]string{"-bin", "/b", "-work", "/w", "-smoke"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.smoke || c.warmUp || c.profile || !c.verbose {
		t.Errorf("smoke %v warmUp %v profile %v verbose %v, want true false false true", c.smoke, c.warmUp, c.profile, c.verbose)
	}
	if !slices.Equal(c.sizes, []int{200}) || c.rounds != 1 || c.msmtpN != 3 || c.smtpN != 50 || c.tokensN != 20 || c.parseMiB != 2 {
		t.Errorf("smoke scale: %+v", c)
	}
	if len(c.only) != 5 {
		t.Errorf("smoke must run every comparison, got %q", c.only)
	}
}

// Flags given on the command line win over -smoke's defaults, wherever -smoke is.
func TestParseFlagsSmokeExplicitWins(t *testing.T) {
	c, err := parseFlags([]string{"-sizes", "300, 400", "-bin", "/b", "-work", "/w", "-smoke", "-rounds", "2",
		"-msmtp-n", "7", "-warmup", "-only", " imap , pop3,", "-v=false"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.sizes, []int{300, 400}) || c.rounds != 2 || c.msmtpN != 7 || !c.warmUp || c.verbose {
		t.Errorf("explicit flags lost: %+v", c)
	}
	if c.smtpN != 50 || c.tokensN != 20 || c.parseMiB != 2 || c.profile {
		t.Errorf("smoke defaults not applied to the rest: %+v", c)
	}
	if !slices.Equal(c.only, []string{"imap", "pop3"}) {
		t.Errorf("only = %q, want [imap pop3] (trimmed, empty dropped)", c.only)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-smoke"}, // no -bin, -work
		{"-bin", "/b", "-work", "/w", "-sizes", "0"},
		{"-bin", "/b", "-work", "/w", "-sizes", "10,x"},
		{"-bin", "/b", "-work", "/w", "-smoke", "-tokens-n", "0"},
		{"-bin", "/b", "-work", "/w", "-parse-mib", "-1"},
		{"-bin", "/b", "-work", "/w", "extra"},
		{"-bin", "/b", "-work", "/w", "-no-such-flag"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%s): no error", strings.Join(args, " "))
		}
	}
}

// The smoke's Parse Email message is about 2 MiB.
func TestBigMessageSizes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.eml")
	sizes, err := bigMessage(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	files, size, err := countFiles(dir)
	if err != nil || files != 1 {
		t.Fatalf("countFiles: %d, %v", files, err)
	}
	// base64 in 76-character lines plus CRLF: 78/57 of the decoded bytes, plus headers.
	want := int64(sizes[0]+sizes[1]) * 78 / 57
	if size < want || size > want+2000 || size < 2<<20-(64<<10) || size > 2<<20+(256<<10) {
		t.Errorf("a 2 MiB message is %d bytes (attachments %v)", size, sizes)
	}
}

// A comparison that failed after its first command shows the others as not run, not as
// infinite ratios.
func TestWriteTableNotRun(t *testing.T) {
	mw := &contender{name: "mailwright", samples: []sample{{wall: 2e9, rssKB: 20 << 10}}}
	other := &contender{name: "mbsync"}
	var w strings.Builder
	writeTable(&w, &section{cs: []*contender{mw, other}, items: 200})
	got := w.String()
	if strings.Contains(got, "Inf") || strings.Contains(got, "-9,223") || !strings.Contains(got, "| mbsync | not run |") {
		t.Errorf("table:\n%s", got)
	}
	if n := strings.Count(strings.Split(got, "\n")[3], "|"); n != strings.Count(strings.Split(got, "\n")[0], "|") {
		t.Errorf("not-run row has %d cells' bars, header %d:\n%s", n, strings.Count(strings.Split(got, "\n")[0], "|"), got)
	}
}

// The report of a smoke says so up front; a full run's keeps its heading.
func TestReportHeading(t *testing.T) {
	for _, smoke := range []bool{false, true} {
		b := &bench{work: t.TempDir(), rounds: 1, smoke: smoke, warmUp: !smoke, smtpN: 50, msmtpN: 3, tokensN: 20, parseMiB: 2}
		path := filepath.Join(b.work, "report.md")
		if err := b.writeReport(path, []int{200}, nil); err != nil {
			t.Fatal(err)
		}
		got := readOr(path)
		if smoke != strings.HasPrefix(got, "## Smoke run of the comparison harness") ||
			smoke == strings.HasPrefix(got, "## Against mbsync, fetchmail, curl and msmtp") {
			t.Errorf("smoke %v: heading %q", smoke, strings.SplitN(got, "\n", 2)[0])
		}
		if smoke && !strings.Contains(got, "mean nothing at this scale (mailboxes of 200 messages") {
			t.Errorf("smoke report does not say its numbers mean nothing:\n%s", got)
		}
		if !smoke && !strings.Contains(got, "The IMAP and POP3 comparisons first run one of their commands once untimed") {
			t.Errorf("full report lost its warm-up sentence:\n%s", got)
		}
	}
}
