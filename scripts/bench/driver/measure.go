package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// timeBin is GNU time, whose -v report gives every command's peak RSS.
const timeBin = "/usr/bin/time"

// sample is one timed run of one command.
type sample struct {
	wall  time.Duration
	rssKB int64 // "Maximum resident set size" from /usr/bin/time -v
}

// contender is one command of a comparison: prepare resets its output (not timed), argv is
// what is timed, verify checks that it really did the work (not timed).
type contender struct {
	name    string
	argv    []string
	stdin   string   // file fed to standard input, if any
	env     []string // extra environment variables, NAME=VALUE
	prepare func() error
	verify  func() (string, error) // a short note on what was checked, e.g. "10000 files, 50000000 bytes"
	after   func()                 // optional, after verify (e.g. clean up a big output)
	warmUp  bool                   // run once untimed before the rounds
	items   int                    // messages per run when not the section's number

	samples []sample
	checked string
}

func (c *contender) median() sample {
	if len(c.samples) == 0 {
		return sample{}
	}
	walls := make([]time.Duration, len(c.samples))
	rss := make([]int64, len(c.samples))
	for i, s := range c.samples {
		walls[i], rss[i] = s.wall, s.rssKB
	}
	slices.Sort(walls)
	slices.Sort(rss)
	n := len(walls)
	if n%2 == 1 {
		return sample{walls[n/2], rss[n/2]}
	}
	return sample{(walls[n/2-1] + walls[n/2]) / 2, (rss[n/2-1] + rss[n/2]) / 2}
}

// rssRange returns the smallest and largest peak RSS over the rounds.
func (c *contender) rssRange() (lo, hi int64) {
	for i, s := range c.samples {
		if i == 0 || s.rssKB < lo {
			lo = s.rssKB
		}
		if s.rssKB > hi {
			hi = s.rssKB
		}
	}
	return lo, hi
}

// runner runs commands under /usr/bin/time -v and keeps their output in logDir.
type runner struct {
	logDir   string
	verbose  bool
	noWarmUp bool // skip the untimed warm-up runs (-warmup=false, -smoke)
}

// run runs c once: prepare, the timed command, verify. timed says whether the sample counts.
func (r *runner) run(scenario string, c *contender, timed bool) error {
	if c.prepare != nil {
		if err := c.prepare(); err != nil {
			return fmt.Errorf("%s / %s: prepare: %w", scenario, c.name, err)
		}
	}
	s, err := r.measure(scenario+"-"+c.name, c.argv, c.stdin, c.env)
	if err != nil {
		return fmt.Errorf("%s / %s: %w", scenario, c.name, err)
	}
	if c.verify != nil {
		note, err := c.verify()
		if err != nil {
			return fmt.Errorf("%s / %s: the command exited 0 but did not do the work: %w", scenario, c.name, err)
		}
		c.checked = note
	}
	if c.after != nil {
		c.after()
	}
	if timed {
		c.samples = append(c.samples, s)
	}
	if r.verbose || !timed {
		what := "round"
		if !timed {
			what = "warm-up"
		}
		fmt.Fprintf(os.Stderr, "bench:   %-28s %-8s %8.3f s  %7.1f MB  %s\n", scenario+" / "+c.name, what,
			s.wall.Seconds(), float64(s.rssKB)/1024, c.checked)
	}
	return nil
}

// measure runs argv under /usr/bin/time -v with its output in a log file, and returns the
// wall time (measured here, around the whole command) and the peak RSS.
func (r *runner) measure(label string, argv []string, stdin string, env []string) (sample, error) {
	safe := strings.Map(func(c rune) rune {
		if c == '/' || c == ' ' {
			return '_'
		}
		return c
	}, label)
	logPath := filepath.Join(r.logDir, safe+".log")
	timePath := filepath.Join(r.logDir, safe+".time")
	logf, err := os.Create(logPath)
	if err != nil {
		return sample{}, err
	}
	defer logf.Close()
	cmd := exec.Command(timeBin, append([]string{"-v", "-o", timePath}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if stdin != "" {
		in, err := os.Open(stdin)
		if err != nil {
			return sample{}, err
		}
		defer in.Close()
		cmd.Stdin = in
	}
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %v\n--- last lines of %s ---\n%s", strings.Join(argv, " "), err, logPath, tail(logPath, 25))
	}
	rss, err := maxRSS(timePath)
	if err != nil {
		return sample{}, err
	}
	return sample{wall: wall, rssKB: rss}, nil
}

// maxRSS reads "Maximum resident set size (kbytes): N" from a /usr/bin/time -v report.
func maxRSS(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Maximum resident set size (kbytes):"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no peak RSS in the /usr/bin/time report:\n%s", path, b)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// rounds runs the contenders alternating (A B C, A B C, …): first one untimed warm-up run
// of those marked warmUp (so that Dovecot has built its indexes and the page cache holds
// the mail before the first timed run), then n timed rounds.
func (r *runner) rounds(scenario string, n int, cs []*contender) error {
	for _, c := range cs {
		if !c.warmUp || r.noWarmUp {
			continue
		}
		if err := r.run(scenario, c, false); err != nil {
			return err
		}
	}
	for i := 1; i <= n; i++ {
		for _, c := range cs {
			if err := r.run(scenario, c, true); err != nil {
				return err
			}
		}
		var b strings.Builder
		for _, c := range cs {
			s := c.samples[len(c.samples)-1]
			fmt.Fprintf(&b, "  %s %.3f s %.1f MB", c.name, s.wall.Seconds(), float64(s.rssKB)/1024)
		}
		fmt.Fprintf(os.Stderr, "bench: %s round %d/%d:%s\n", scenario, i, n, b.String())
	}
	return nil
}

// countFiles counts the regular files under dir and their bytes.
func countFiles(dirs ...string) (files int, size int64, err error) {
	for _, dir := range dirs {
		err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				fi, err := d.Info()
				if err != nil {
					return err
				}
				files++
				size += fi.Size()
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return files, size, nil
}

// expectFiles checks that the .eml-style files under dirs (names matching keep) are n
// files of want bytes in all.
func expectFiles(n int, want int64, dirs ...string) (string, error) {
	files, size, err := countFiles(dirs...)
	if err != nil {
		return "", err
	}
	note := fmt.Sprintf("%d files, %d bytes", files, size)
	if files != n || size != want {
		return note, fmt.Errorf("got %s, want %d files, %d bytes", note, n, want)
	}
	return note, nil
}

// bsmtpMessages counts the messages in a fetchmail BSMTP file (one DATA line each) and
// the bytes of the file.
func bsmtpMessages(path string) (int, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		if line := bytes.TrimRight(sc.Bytes(), "\r"); string(line) == "DATA" {
			n++
		}
	}
	return n, fi.Size(), sc.Err()
}

// resetDir removes dir and creates it again, empty.
func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o755)
}

// errTarget marks a run whose numbers miss a target (exit status 1, not 2).
var errTarget = errors.New("a performance target was missed")
