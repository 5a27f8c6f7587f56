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
	msmtpN                    int
	tb                        *benchtb.TB
	d                         *testmail.Dovecot
	cert                      string // the harness certificate (for localhost and 127.0.0.1)
	users                     map[int]testmail.User
	r                         *runner
	sections                  []*section
	started                   time.Time
}

func main() {
	bin := flag.String("bin", "", "folder with the built programs: mailwright, imapbare, smtpbare, tokens, mwprof")
	work := flag.String("work", "", "scratch folder for downloads, task files and logs (on disk; emptied first)")
	sizes := flag.String("sizes", "10000", "mailbox sizes for the IMAP and POP3 comparisons, comma-separated")
	rounds := flag.Int("rounds", 5, "timed rounds per comparison (the IMAP and POP3 ones after one untimed warm-up run of their cheapest command)")
	only := flag.String("only", "imap,pop3,smtp,parse,tokens", "comparisons to run, comma-separated")
	report := flag.String("report", "", "Markdown report to write (default <work>/report.md)")
	serve := flag.Bool("serve", false, "only start and seed Dovecot, print how to reach it and wait for Ctrl-C")
	profile := flag.Bool("profile", true, "when a Mailwright wall-time target is missed, profile one more run and add `go tool pprof -top` to the report")
	goCmd := flag.String("go", "go", "the go command (for go tool pprof)")
	rev := flag.String("rev", "", "the measured source revision, for the report (run.sh: git describe --always --dirty)")
	fyneApp := flag.String("fyneapp", "FyneApp.toml", "FyneApp.toml, read by the profiling build (mwprof)")
	verbose := flag.Bool("v", false, "print every run, not only each round's summary")
	diag := flag.Bool("diag", false, "also time Mailwright's IMAP and POP3 downloads into /dev/shm (no fsync cost), as a diagnostic row")
	msmtpN := flag.Int("msmtp-n", 200, "messages msmtp sends per round (one process each; its rate is per message, and 1,000 take about a minute here)")
	flag.Parse()
	if *bin == "" || *work == "" {
		fmt.Fprintln(os.Stderr, "driver: -bin and -work are required (scripts/bench/run.sh sets them)")
		os.Exit(2)
	}
	var ns []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "driver: -sizes: %q is not a positive number\n", f)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	b := &bench{bin: *bin, work: *work, goCmd: *goCmd, rounds: *rounds, profile: *profile,
		diag: *diag, msmtpN: *msmtpN, rev: *rev, started: time.Now()}
	if abs, err := filepath.Abs(*fyneApp); err == nil {
		b.fyneApp = abs
	}
	if *report == "" {
		*report = filepath.Join(*work, "report.md")
	}
	code := b.main(ns, strings.Split(*only, ","), *report, *serve, *verbose)
	os.Exit(code)
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
	b.r = &runner{logDir: filepath.Join(b.work, "logs"), verbose: verbose}
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
		switch strings.TrimSpace(what) {
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
			err = b.smtp(1000)
		case "parse":
			err = b.parse()
		case "tokens":
			err = b.tokens(1000)
		case "":
		default:
			err = fmt.Errorf("-only: unknown comparison %q (want imap, pop3, smtp, parse, tokens)", what)
		}
		if err != nil {
			errs = append(errs, err)
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			break
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
