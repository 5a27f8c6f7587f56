package main

import (
	"bufio"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// serveLog collects the lines `mailwright serve` writes to stderr and lets a test wait for
// lines matching a pattern.
type serveLog struct {
	t     *testing.T
	lines chan string
	all   []string
}

func (l *serveLog) text() string { return strings.Join(l.all, "\n") }

// wait returns the next line matching re, reading (and keeping) the lines before it.
func (l *serveLog) wait(re *regexp.Regexp, timeout time.Duration) string {
	l.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-l.lines:
			if !ok {
				l.t.Fatalf("serve exited while waiting for %q:\n%s", re, l.text())
			}
			l.all = append(l.all, line)
			if re.MatchString(line) {
				return line
			}
		case <-deadline:
			l.t.Fatalf("no line matching %q within %s:\n%s", re, timeout, l.text())
		}
	}
}

// TestFaultServeIdleDovecotRestart restarts Dovecot (really: the process stops and starts
// again on the same ports) while `mailwright serve` waits on a new_mail (IMAP IDLE)
// trigger. The outage appears in serve's log, with the reconnection waits doubling (1s,
// 2s: backoff); once Dovecot is back the trigger reconnects by itself, fires for the mail
// that arrived during the outage, and again for the next new message.
func TestFaultServeIdleDovecotRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := buildBinary(t, []string{"CGO_ENABLED=0"}, "-tags", "nogui")
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	u := testmail.DefaultUser()
	dc.SeedN(t, u.Name, "INBOX", 1, 500)
	env := headlessEnv("MAILWRIGHT_DATA_DIR=" + t.TempDir())
	login := map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.IMAPSPort), "auth": "password",
		"user": u.Name, "password": u.Password, "ca_file": dc.Certs.CertFile}
	mail := map[string]string{"folder": "INBOX"}
	for k, v := range login {
		mail[k] = v
	}
	taskFile := writeTask(t, map[string]any{
		"version": 1, "name": "On mail", "enabled": true,
		"triggers": []map[string]any{{"type": "new_mail", "mail": mail}},
		"steps":    []map[string]any{{"action": "email.check", "params": login}},
	})
	if code, _, e := runBinary(t, bin, env, "task", "import", taskFile); code != 0 {
		t.Fatalf("import: %s", e)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := &serveLog{t: t, lines: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.lines <- sc.Text()
		}
		close(log.lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	watching := regexp.MustCompile(`msg="watching for new mail"`)
	succeeded := regexp.MustCompile(`msg="run succeeded" task="On mail" trigger=new_mail`)
	lost := regexp.MustCompile(`level=WARN msg="new-mail trigger lost its connection; reconnecting" .*in=(\S+) error=`)
	log.wait(watching, 20*time.Second)
	dc.SeedN(t, u.Name, "INBOX", 1, 500)
	log.wait(succeeded, 20*time.Second)

	var waits []string
	dc.Restart(t, func() {
		// Down: the IDLE connection is gone and reconnecting is refused at least once.
		for len(waits) < 2 {
			waits = append(waits, lost.FindStringSubmatch(log.wait(lost, 20*time.Second))[1])
		}
		dc.SeedN(t, u.Name, "INBOX", 1, 500) // mail arrives during the outage
	})
	if waits[0] != "1s" || waits[1] != "2s" {
		t.Fatalf("reconnection waits %v, want [1s 2s] (doubling)", waits)
	}
	log.wait(watching, 30*time.Second)
	log.wait(succeeded, 20*time.Second) // the mail that came while Dovecot was down
	dc.SeedN(t, u.Name, "INBOX", 1, 500)
	log.wait(succeeded, 20*time.Second) // and the next new message

	cmd.Process.Signal(syscall.SIGTERM)
	log.wait(regexp.MustCompile(`serve stopped`), 15*time.Second)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exit: %v\n%s", err, log.text())
	}
	t.Logf("serve's log of the outage:\n%s", log.text())
}
