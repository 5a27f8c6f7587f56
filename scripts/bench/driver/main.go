// Command driver is the performance comparison harness of issue 7; scripts/bench/run.sh
// (`make bench`) builds it and the programs it times, then runs it.
//
// It starts the test harness's Dovecot (internal/testmail) on 127.0.0.1, seeds one mailbox
// per size with messages of 5,000 bytes, and times, alternating A B C, A B C over -rounds
// rounds after one untimed warm-up run of each command, every command under
// /usr/bin/time -v (for its peak RSS):
//
//   - IMAP: `mailwright task run` of an IMAP Mail Loop + Download (STARTTLS, password)
//     against mbsync and a bare go-imap UID FETCH loop (imapbare);
//   - POP3: a POP3 Mail Loop + Download against fetchmail and curl;
//   - SMTP: 1,000 × Send Email against a bare go-smtp loop (smtpbare) and msmtp, all
//     sending to one local sink (a go-smtp server in this process that discards the data);
//   - Parse Email of a 50 MiB message with attachments against a tiny one (idle RSS);
//   - token-endpoint requests over 1,000 OAuth IMAP logins (the tokens program).
//
// It writes a Markdown report (medians, ratios, peak RSS, targets, exact commands, tool
// versions, date) and exits 0 when every target is met, 1 when one is missed and 2 when
// the harness itself failed. With -serve it only starts and seeds Dovecot and says how to
// reach it, for trying commands by hand.
//
// With -smoke (BENCH_SMOKE=1 scripts/bench/run.sh, part of `make test`) it runs every
// comparison at a tiny scale (200 messages, one round, no warm-up, 50 SMTP messages, 3 by
// msmtp, 20 OAuth logins, a 2 MiB message to parse, no profiling) with every run's output
// still checked, to notice a broken harness in seconds. The report says that its numbers and
// targets mean nothing; the exit status is 0 when the harness worked, met targets or not,
// and 2 when it failed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/scripts/bench/internal/benchtb"
)

// msgSize is the size of every seeded message (the "~5 KB").
const msgSize = 5000

// bench is one run of the harness.
type bench struct {
	bin, work, goCmd, fyneApp string
	rev                       string
	rounds                    int
	profile, diag             bool
	msmtpN, smtpN, tokensN    int
	parseMiB                  int  // size of the Parse Email comparison's big message
	warmUp                    bool // one untimed run before the IMAP and POP3 rounds
	smoke                     bool // -smoke: targets are reported but do not set the exit status
	tb                        *benchtb.TB
	d                         *testmail.Dovecot
	cert                      string // the harness certificate (for localhost and 127.0.0.1)
	users                     map[int]testmail.User
	r                         *runner
	sections                  []*section
	started                   time.Time
}

// config is the driver's command line.
type config struct {
	bin, work, report, goCmd, rev, fyneApp string
	sizes                                  []int
	only                                   []string
	rounds, msmtpN, smtpN, tokensN         int
	parseMiB                               int
	serve, profile, warmUp, verbose, diag  bool
	smoke                                  bool
}

// smokeDefaults are the settings -smoke gives every flag not set on the command line: the
// whole harness at a scale that takes seconds (a check that it works, not a measurement).
var smokeDefaults = map[string]string{
	"sizes":     "200",
	"rounds":    "1",
	"msmtp-n":   "3",
	"smtp-n":    "50",
	"tokens-n":  "20",
	"parse-mib": "2",
	"warmup":    "false",
	"profile":   "false",
	"v":         "true", // one line per run, with what was checked
}

// parseFlags parses the driver's arguments (without the program name).
func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("driver", flag.ContinueOnError)
	fs.StringVar(&c.bin, "bin", "", "folder with the built programs: mailwright, imapbare, smtpbare, tokens, mwprof")
	fs.StringVar(&c.work, "work", "", "scratch folder for downloads, task files and logs (on disk; emptied first)")
	sizes := fs.String("sizes", "10000", "mailbox sizes for the IMAP and POP3 comparisons, comma-separated")
	fs.IntVar(&c.rounds, "rounds", 5, "timed rounds per comparison (the IMAP and POP3 ones after one untimed warm-up run of their cheapest command)")
	only := fs.String("only", "imap,pop3,smtp,parse,tokens", "comparisons to run, comma-separated")
	fs.StringVar(&c.report, "report", "", "Markdown report to write (default <work>/report.md)")
	fs.BoolVar(&c.serve, "serve", false, "only start and seed Dovecot, print how to reach it and wait for Ctrl-C")
	fs.BoolVar(&c.profile, "profile", true, "when a Mailwright wall-time target is missed, profile one more run and add `go tool pprof -top` to the report")
	fs.StringVar(&c.goCmd, "go", "go", "the go command (for go tool pprof)")
	fs.StringVar(&c.rev, "rev", "", "the measured source revision, for the report (run.sh: git describe --always --dirty)")
	fs.StringVar(&c.fyneApp, "fyneapp", "FyneApp.toml", "FyneApp.toml, read by the profiling build (mwprof)")
	fs.BoolVar(&c.verbose, "v", false, "print every run, not only each round's summary")
	fs.BoolVar(&c.diag, "diag", false, "also time Mailwright's IMAP and POP3 downloads into /dev/shm (no fsync cost), as a diagnostic row")
	fs.IntVar(&c.msmtpN, "msmtp-n", 200, "messages msmtp sends per round (one process each; its rate is per message, and 1,000 take about a minute here)")
	fs.IntVar(&c.smtpN, "smtp-n", 1000, "messages Mailwright and the go-smtp loop send per round")
	fs.IntVar(&c.tokensN, "tokens-n", 1000, "OAuth IMAP logins of the token comparison")
	fs.IntVar(&c.parseMiB, "parse-mib", 50, "size in MiB of the message Parse Email parses")
	fs.BoolVar(&c.warmUp, "warmup", true, "run the IMAP and POP3 comparisons' cheapest command once untimed before the rounds")
	fs.BoolVar(&c.smoke, "smoke", false, "check that the harness works, quickly: every comparison at a tiny scale (-sizes 200 -rounds 1 "+
		"-msmtp-n 3 -smtp-n 50 -tokens-n 20 -parse-mib 2 -warmup=false -profile=false -v unless set), every run's output still "+
		"checked; exit 0 when the harness worked, whether or not targets were met (they mean nothing at this scale), 2 when it failed")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.smoke {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range smokeDefaults {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return nil, fmt.Errorf("-smoke: -%s %s: %w", name, v, err)
				}
			}
		}
	}
	if c.bin == "" || c.work == "" {
		return nil, errors.New("-bin and -work are required (scripts/bench/run.sh sets them)")
	}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-sizes: %q is not a positive number", f)
		}
		c.sizes = append(c.sizes, n)
	}
	for _, f := range strings.Split(*only, ",") {
		if f = strings.TrimSpace(f); f != "" {
			c.only = append(c.only, f)
		}
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"rounds", c.rounds}, {"msmtp-n", c.msmtpN}, {"smtp-n", c.smtpN}, {"tokens-n", c.tokensN}, {"parse-mib", c.parseMiB}} {
		if v.n <= 0 {
			return nil, fmt.Errorf("-%s: %d is not a positive number", v.name, v.n)
		}
	}
	if c.report == "" {
		c.report = filepath.Join(c.work, "report.md")
	}
	if abs, err := filepath.Abs(c.fyneApp); err == nil {
		c.fyneApp = abs
	}
	return c, nil
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "driver: %v\n", err)
		os.Exit(2)
	}
	b := &bench{bin: c.bin, work: c.work, goCmd: c.goCmd, fyneApp: c.fyneApp, rounds: c.rounds, profile: c.profile,
		diag: c.diag, msmtpN: c.msmtpN, smtpN: c.smtpN, tokensN: c.tokensN, parseMiB: c.parseMiB, warmUp: c.warmUp,
		smoke: c.smoke, rev: c.rev, started: time.Now()}
	os.Exit(b.main(c.sizes, c.only, c.report, c.serve, c.verbose))
}

func (b *bench) main(sizes []int, only []string, report string, serve, verbose bool) int {
	b.tb = benchtb.New("bench", os.Stderr)
	defer b.tb.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "bench: %v: stopping Dovecot\n", s)
		b.tb.Close()
		os.Exit(2)
	}()
	for _, sub := range []string{"logs", "out", "data", "conf", "tasks"} {
		if err := resetDir(filepath.Join(b.work, sub)); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 2
		}
	}
	b.r = &runner{logDir: filepath.Join(b.work, "logs"), verbose: verbose, noWarmUp: !b.warmUp}
	needMail := slices.Contains(only, "imap") || slices.Contains(only, "pop3") || serve
	if needMail {
		b.startDovecot(sizes)
	}
	if serve {
		for _, n := range sizes {
			u := b.users[n]
			fmt.Printf("user %s password %s: %d messages of %d bytes in INBOX\n", u.Name, u.Password, n, msgSize)
		}
		fmt.Printf("IMAP (STARTTLS) localhost:%d  POP3 (STLS) localhost:%d  IMAPS %d  POP3S %d\ncertificate %s\nCtrl-C stops Dovecot.\n",
			b.d.IMAPPort, b.d.POP3Port, b.d.IMAPSPort, b.d.POP3SPort, b.cert)
		select {}
	}

	var errs []error
	for _, what := range only {
		var err error
		switch what {
		case "imap":
			for _, n := range sizes {
				if err = b.imap(n); err != nil {
					break
				}
			}
			if err == nil && len(sizes) > 1 {
				b.imapScaling(sizes)
			}
		case "pop3":
			for _, n := range sizes {
				if err = b.pop3(n); err != nil {
					break
				}
			}
		case "smtp":
			err = b.smtp(b.smtpN)
		case "parse":
			err = b.parse()
		case "tokens":
			err = b.tokens(b.tokensN)
		default:
			err = fmt.Errorf("-only: unknown comparison %q (want imap, pop3, smtp, parse, tokens)", what)
		}
		if err != nil {
			errs = append(errs, err)
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			if !b.smoke { // a smoke goes on, to show every broken comparison at once
				break
			}
		}
	}
	missed := b.misses()
	if err := b.writeReport(report, sizes, errors.Join(errs...)); err != nil {
		fmt.Fprintf(os.Stderr, "bench: write report: %v\n", err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "bench: report written to %s\n", report)
	if len(errs) > 0 {
		return 2
	}
	if missed > 0 && b.smoke {
		fmt.Fprintf(os.Stderr, "bench: smoke run: the harness worked; %d target(s) missed at smoke scale, which means nothing\n", missed)
		return 0
	}
	if missed > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d target(s) missed: %v\n", missed, errTarget)
		return 1
	}
	return 0
}

// startDovecot starts the harness's Dovecot with one user per size and seeds each INBOX.
func (b *bench) startDovecot(sizes []int) {
	b.users = map[int]testmail.User{}
	var users []testmail.User
	for _, n := range sizes {
		u := testmail.User{Name: fmt.Sprintf("bench%d@example.test", n), Password: "bench-password"}
		b.users[n] = u
		users = append(users, u)
	}
	b.d = testmail.StartDovecot(b.tb, testmail.DovecotOptions{Users: users})
	b.cert = b.d.Certs.CertFile
	for _, n := range sizes {
		start := time.Now()
		const batch = 5000
		for first := 1; first <= n; first += batch {
			msgs := make([][]byte, 0, batch)
			for i := first; i < first+batch && i <= n; i++ {
				msgs = append(msgs, testmail.MessageText(i, msgSize))
			}
			b.d.Seed(b.tb, b.users[n].Name, "INBOX", msgs...)
		}
		fmt.Fprintf(os.Stderr, "bench: seeded %d messages of %d bytes for %s in %s\n", n, msgSize, b.users[n].Name,
			time.Since(start).Round(time.Millisecond))
	}
	runtime.GC()
	debug.FreeOSMemory()
}

// path joins elements under the work folder.
func (b *bench) path(elem ...string) string {
	return filepath.Join(append([]string{b.work}, elem...)...)
}

// exe is a built program in the bin folder.
func (b *bench) exe(name string) string { return filepath.Join(b.bin, name) }

// writeFile writes a file under the work folder and returns its path.
func (b *bench) writeFile(rel string, data []byte, mode os.FileMode) (string, error) {
	p := b.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, data, mode)
}
