package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// section is one comparison in the report.
type section struct {
	key, title string
	about      []string
	cs         []*contender // cs[0] is Mailwright: ratios are cs[0] against each other one
	items      int          // messages per run, for messages/s
	throughput bool         // the ratio column compares throughput rather than wall time
	unit       string       // what items are: "messages" when empty
	noRatio    bool         // no ratio column (the contenders are not rivals)
	files      map[string]string
	checks     []check
	prof       *contender // the Mailwright command to profile if a wall target is missed
	profile    string     // go tool pprof -top output
	diagProf   *contender // with -diag: a variant profiled as well (downloads in /dev/shm)
}

// check is one target of the issue.
type check struct {
	what, target, got string
	pass              bool
	wall              bool // a wall-time (or throughput) target: a miss gets a profile
}

// ratio is median wall of a over that of b.
func ratio(a, b *contender) float64 {
	return a.median().wall.Seconds() / b.median().wall.Seconds()
}

// rate is c's messages per second at its median wall time.
func (s *section) rate(c *contender) float64 {
	n := s.items
	if c.items > 0 {
		n = c.items
	}
	return float64(n) / c.median().wall.Seconds()
}

// wallCheck: a's median wall ≤ limit × b's.
func (s *section) wallCheck(a, b *contender, limit float64, who string) {
	r := ratio(a, b)
	s.checks = append(s.checks, check{
		what:   fmt.Sprintf("%s wall time ≤ %g × %s", s.cs[0].name, limit, who),
		target: fmt.Sprintf("≤ %g ×", limit),
		got:    fmt.Sprintf("%.3f s / %.3f s = %.2f ×", a.median().wall.Seconds(), b.median().wall.Seconds(), r),
		pass:   r <= limit, wall: true,
	})
}

// throughputCheck: a's throughput ≥ limit × b's (messages / median wall).
func (s *section) throughputCheck(a, b *contender, limit float64, who string) {
	r := s.rate(a) / s.rate(b)
	s.checks = append(s.checks, check{
		what:   fmt.Sprintf("%s throughput ≥ %g × %s's", s.cs[0].name, limit, who),
		target: fmt.Sprintf("≥ %g ×", limit),
		got:    fmt.Sprintf("%.1f/s / %.1f/s = %.2f ×", s.rate(a), s.rate(b), r),
		pass:   r >= limit, wall: true,
	})
}

// rssCheck: every round's peak RSS of a ≤ limit MiB.
func (s *section) rssCheck(a *contender, limitMiB int64) {
	_, hi := a.rssRange()
	s.checks = append(s.checks, check{
		what:   fmt.Sprintf("%s peak RSS ≤ %d MiB (largest of the rounds)", a.name, limitMiB),
		target: fmt.Sprintf("≤ %d MiB", limitMiB),
		got:    mib(hi),
		pass:   hi <= limitMiB<<10,
	})
}

// misses returns the number of missed targets.
func (b *bench) misses() int {
	missed := 0
	for _, s := range b.sections {
		for _, c := range s.checks {
			if !c.pass {
				missed++
			}
		}
	}
	return missed
}

// profileIfMissed profiles Mailwright once (s.prof) when s missed a wall-time target.
// It runs right after the rounds, while the servers are still up.
func (b *bench) profileIfMissed(s *section) {
	if !b.profile || s.prof == nil {
		return
	}
	for _, c := range s.checks {
		if !c.pass && c.wall {
			s.profile = b.cpuProfile(s.key, s.prof)
			if s.diagProf != nil {
				s.profile += "\n--- the same with the files in /dev/shm ---\n" + b.cpuProfile(s.key+"-shm", s.diagProf)
			}
			return
		}
	}
}

// cpuProfile runs c once more with mwprof (the same CLI with a CPU profile) in place of
// the mailwright binary and returns the head of `go tool pprof -top`.
func (b *bench) cpuProfile(key string, c *contender) string {
	prof := b.path("logs", key+".cpu.pprof")
	pc := *c
	pc.name = c.name + " (profiled)"
	pc.argv = append([]string{b.exe("mwprof")}, c.argv[1:]...)
	pc.env = append(slices.Clone(c.env), "MWPROF_CPU="+prof, "MWPROF_FYNEAPP="+b.fyneApp)
	pc.samples = nil
	fmt.Fprintf(os.Stderr, "bench: %s: a target was missed; profiling one more run of %s\n", key, c.name)
	if err := b.r.run(key, &pc, true); err != nil {
		return "profiling failed: " + err.Error()
	}
	var w strings.Builder
	fmt.Fprintf(&w, "profiled run: %.3f s wall, peak RSS %s (%s)\n", pc.samples[0].wall.Seconds(), mib(pc.samples[0].rssKB), pc.checked)
	for _, args := range [][]string{{"-top", "-nodecount=12"}, {"-top", "-cum", "-nodecount=40"}} {
		cmd := append(append([]string{"tool", "pprof"}, args...), b.exe("mwprof"), prof)
		out, err := exec.Command(b.goCmd, cmd...).CombinedOutput()
		fmt.Fprintf(&w, "\n$ go tool pprof %s mwprof %s\n", strings.Join(args, " "), filepath.Base(prof))
		if err != nil {
			fmt.Fprintf(&w, "go tool pprof: %v\n%s", err, out)
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Type:") ||
				strings.HasPrefix(line, "Time:") || strings.HasPrefix(line, "Dropped ") || strings.TrimSpace(line) == "" {
				continue
			}
			w.WriteString(line + "\n")
		}
	}
	return w.String()
}

// writeReport writes the Markdown report: a section for BENCHMARKS.md.
func (b *bench) writeReport(path string, sizes []int, runErr error) error {
	var w strings.Builder
	now := time.Now().UTC()
	if b.smoke {
		fmt.Fprintf(&w, "## Smoke run of the comparison harness (%s): not a measurement\n\n", now.Format("2006-01-02"))
		w.WriteString("**`BENCH_SMOKE=1` (`driver -smoke`): every comparison at a tiny scale, to check that the harness " +
			"works (its servers start, every command runs, every run's output is checked). The numbers below and the " +
			"targets mean nothing at this scale (" + smokeScale(b, sizes) + "); the exit status ignores them: 0 when the " +
			"harness worked, 2 when it failed. Run `make bench` for the measurement.**\n\n")
	} else {
		fmt.Fprintf(&w, "## Against mbsync, fetchmail, curl and msmtp (%s)\n\n", now.Format("2006-01-02"))
	}
	rev := ""
	if b.rev != "" {
		rev = " of `" + b.rev + "`"
	}
	how := "`make bench` (`scripts/bench/run.sh`"
	if b.smoke {
		how = "`BENCH_SMOKE=1 scripts/bench/run.sh` (`make test`"
	}
	fmt.Fprintf(&w, "%s, which builds the programs below and runs "+
		"`scripts/bench/driver`)%s, started %s UTC, %s. %s\n\n",
		how, rev, b.started.UTC().Format("2006-01-02 15:04"), time.Since(b.started).Round(time.Second), machine())
	w.WriteString("Method: the harness's Dovecot (`internal/testmail`, mail in /dev/shm) on 127.0.0.1 with one " +
		"mailbox per size of messages of exactly 5,000 bytes; downloads go to a folder on disk (`$WORK`). " +
		warmUpText(b.warmUp) + "every comparison alternates its commands A B C, A B C … for " +
		strconv.Itoa(b.rounds) + " timed rounds. " +
		"Wall time is measured around the whole command (process start to exit), peak RSS is `/usr/bin/time -v`'s " +
		"\"Maximum resident set size\" (for a shell loop: its largest process). Every run is checked afterwards: " +
		"the number of files (or messages) and bytes must be exactly right. Ratios are Mailwright's median over the " +
		"other command's median; MiB = 2^20 bytes. Mailwright is the static headless build " +
		"(`CGO_ENABLED=0 go build -tags nogui`).\n\n")
	w.WriteString(versions())
	if runErr != nil {
		if b.smoke {
			fmt.Fprintf(&w, "**The harness failed:**\n\n```\n%v\n```\n\n", runErr)
		} else {
			fmt.Fprintf(&w, "**The run failed before finishing:**\n\n```\n%v\n```\n\n", runErr)
		}
	}

	// Summary of targets.
	var all []check
	for _, s := range b.sections {
		all = append(all, s.checks...)
	}
	if len(all) > 0 {
		w.WriteString("| target | measured | |\n|---|---|---|\n")
		for _, c := range all {
			fmt.Fprintf(&w, "| %s | %s | %s |\n", c.what, c.got, passFail(c.pass))
		}
		w.WriteString("\n")
	}
	for _, s := range b.sections {
		fmt.Fprintf(&w, "### %s\n\n", s.title)
		for _, p := range s.about {
			w.WriteString(p + "\n\n")
		}
		if len(s.cs) > 0 && len(s.cs[0].samples) > 0 {
			writeTable(&w, s)
		}
		if s.profile != "" {
			fmt.Fprintf(&w, "CPU profile of Mailwright for the missed target (%s):\n\n```\n%s\n```\n\n", s.key, s.profile)
		}
		if len(s.cs) > 0 {
			w.WriteString("Commands (`$WORK` is the scratch folder, `$BIN` the built programs, `$DOVECOT` the harness's " +
				"folder with its certificate; ports are picked free per run):\n\n```sh\n")
			for _, c := range s.cs {
				fmt.Fprintf(&w, "%s%s\n", b.envPrefix(c.env), b.display(c.argv, c.stdin))
			}
			w.WriteString("```\n\n")
		}
		names := make([]string, 0, len(s.files))
		for name := range s.files {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			fmt.Fprintf(&w, "<details><summary>%s</summary>\n\n```\n%s\n```\n\n</details>\n\n", name,
				strings.TrimRight(b.scrub(s.files[name]), "\n"))
		}
	}
	return os.WriteFile(path, []byte(w.String()), 0o644)
}

// warmUpText describes the warm-up runs in the report's method paragraph.
func warmUpText(warmUp bool) string {
	if !warmUp {
		return "No untimed warm-up run; "
	}
	return "The IMAP and POP3 comparisons first run one of their commands once untimed (the go-imap loop, fetchmail: " +
		"Dovecot builds its indexes of the fresh Maildir); then "
}

// smokeScale describes a smoke run's scale for the report.
func smokeScale(b *bench, sizes []int) string {
	var ns []string
	for _, n := range sizes {
		ns = append(ns, thousands(n))
	}
	return fmt.Sprintf("mailboxes of %s messages, %d round(s), %s SMTP messages (%s by msmtp), %s OAuth logins, a %d MiB message to parse",
		strings.Join(ns, ", "), b.rounds, thousands(b.smtpN), thousands(b.msmtpN), thousands(b.tokensN), b.parseMiB)
}

func writeTable(w *strings.Builder, s *section) {
	unit := s.unit
	if unit == "" {
		unit = "messages"
	}
	head := "| command | median wall | " + unit + "/s | peak RSS (median; min–max) |"
	sep := "|---|---|---|---|"
	if !s.noRatio {
		if s.throughput {
			head += " Mailwright's throughput ÷ this |"
		} else {
			head += " Mailwright's wall ÷ this |"
		}
		sep += "---|"
	}
	head += " rounds (s) |"
	sep += "---|"
	w.WriteString(head + "\n" + sep + "\n")
	for i, c := range s.cs {
		if len(c.samples) == 0 { // the comparison failed before this command's first timed run
			row := "| " + c.name + " | not run | — | — |"
			if !s.noRatio {
				row += " — |"
			}
			w.WriteString(row + "  |\n")
			continue
		}
		m := c.median()
		lo, hi := c.rssRange()
		rate := "—"
		if s.items > 1 {
			rate = thousands(int(s.rate(c)))
		}
		row := fmt.Sprintf("| %s | %.3f s | %s | %s; %s–%s |", c.name, m.wall.Seconds(), rate, mib(m.rssKB), mibShort(lo), mibShort(hi))
		if !s.noRatio {
			switch {
			case i == 0:
				row += " — |"
			case s.throughput:
				row += fmt.Sprintf(" %.2f × |", s.rate(s.cs[0])/s.rate(c))
			default:
				row += fmt.Sprintf(" %.2f × |", ratio(s.cs[0], c))
			}
		}
		var rs []string
		for _, smp := range c.samples {
			rs = append(rs, fmt.Sprintf("%.2f", smp.wall.Seconds()))
		}
		row += " " + strings.Join(rs, " ") + " |"
		w.WriteString(row + "\n")
	}
	w.WriteString("\n")
	var notes []string
	for _, c := range s.cs {
		if c.checked != "" {
			notes = append(notes, c.name+": "+c.checked)
		}
	}
	if len(notes) > 0 {
		w.WriteString("Checked after each run (last one shown): " + strings.Join(notes, "; ") + ".\n\n")
	}
}

// display renders argv as a shell command with the scratch paths abbreviated.
func (b *bench) display(argv []string, stdin string) string {
	var parts []string
	for _, a := range argv {
		parts = append(parts, b.quote(a))
	}
	cmd := strings.Join(parts, " ")
	if stdin != "" {
		cmd += " < " + b.scrub(stdin)
	}
	return cmd
}

// quote quotes one argument for the shell, with the scratch paths abbreviated: in double
// quotes when it holds an abbreviation (so that $WORK still expands), else in single quotes.
func (b *bench) quote(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\"'$;&|<>()[]*?#!\\`") {
		return b.scrub(a)
	}
	if sc := b.scrub(a); sc != a && !strings.ContainsAny(a, "\"$\\`") {
		return `"` + sc + `"`
	}
	return "'" + strings.ReplaceAll(b.scrub(a), "'", `'\''`) + "'"
}

// scrub abbreviates the scratch, program and Dovecot folders.
func (b *bench) scrub(s string) string {
	s = strings.ReplaceAll(s, b.bin+"/", "$BIN/")
	s = strings.ReplaceAll(s, b.work, "$WORK")
	if b.cert != "" {
		s = strings.ReplaceAll(s, filepath.Dir(b.cert), "$DOVECOT")
	}
	return s
}

func (b *bench) envPrefix(env []string) string {
	var parts []string
	for _, e := range env {
		parts = append(parts, b.quote(e))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, " ") + " "
}

func passFail(ok bool) string {
	if ok {
		return "**pass**"
	}
	return "**FAIL**"
}

// mib formats KiB as MiB.
func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

func mibShort(kb int64) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }

// thousands formats n with commas: 10000 → "10,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	out = append([]string{s}, out...)
	if neg {
		return "-" + strings.Join(out, ",")
	}
	return strings.Join(out, ",")
}

// machine describes this machine in one sentence.
func machine() string {
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	debian := strings.TrimSpace(readOr("/etc/debian_version"))
	kernel := strings.TrimSpace(commandLine("uname", "-r"))
	load := strings.Fields(readOr("/proc/loadavg"))
	load = load[:min(3, len(load))]
	return fmt.Sprintf("Machine: %d cores%s, Debian %s, Linux %s, %s; load average %s when the report was written "+
		"(other work ran on the machine at the same time).", runtime.NumCPU(), mem, debian, kernel, runtime.Version(), strings.Join(load, " "))
}

// versions lists the versions of every program compared.
func versions() string {
	var w strings.Builder
	w.WriteString("Versions: ")
	var parts []string
	if out := commandLine("dpkg-query", "-W", "-f", "${Package} ${Version}, ", "dovecot-core", "isync", "fetchmail",
		"curl", "msmtp", "time"); out != "" {
		parts = append(parts, "Debian packages "+strings.TrimSuffix(strings.TrimSpace(out), ","))
	}
	if bi := goModules(); bi != "" {
		parts = append(parts, bi)
	}
	w.WriteString(strings.Join(parts, "; ") + ".\n\n")
	return w.String()
}

// goModules names the versions of the Go mail libraries this driver was built with (the
// same go.mod as Mailwright and the baselines).
func goModules() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var mods []string
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/emersion/go-imap/v2", "github.com/emersion/go-smtp":
			mods = append(mods, d.Path+" "+d.Version)
		}
	}
	return strings.Join(mods, ", ")
}

// commandLine runs a command and returns its output ("" on error).
func commandLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return string(out)
}
