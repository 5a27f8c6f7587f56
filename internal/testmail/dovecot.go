package testmail

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// User is a mailbox login on the harness's Dovecot.
type User struct{ Name, Password string }

// DefaultUser returns the user a Dovecot gets when DovecotOptions.Users is empty. It is a
// function rather than a variable so that no test can change it for the others.
func DefaultUser() User {
	return User{Name: "alice@example.test", Password: "alice-app-password"}
}

// DovecotOptions configures StartDovecot. The zero value gives one user, DefaultUser.
type DovecotOptions struct {
	// Users are mailboxes with passwords (PLAIN/LOGIN); default: DefaultUser. Names may use
	// letters, digits and .-_@ and are case-insensitive (Dovecot lower-cases them).
	Users []User
	// OAuthIntrospectionURL turns on XOAUTH2 and OAUTHBEARER through Dovecot's oauth2 passdb
	// in introspection_mode=post: Dovecot POSTs form "token=<access token>" there and expects
	// JSON {"active":true,"username":"<login name>", ...}; {"active":false} rejects it.
	// An https URL's certificate is not verified (it is a harness server on loopback).
	OAuthIntrospectionURL string
	// SubmissionRelay is host:port of a plain SMTP server the submission service relays to
	// (no TLS, no auth). Empty: a port on 127.0.0.1 nobody listens on (login works, sending
	// fails: Dovecot answers 421 and closes as soon as it fails to reach the relay).
	SubmissionRelay string
}

// Dovecot is a running Dovecot with IMAP, POP3 and submission on 127.0.0.1, started by
// StartDovecot and stopped when the test ends. Mail is stored as Maildir++ under a private
// directory; the IMAP hierarchy separator is "/" and Drafts, Sent, Trash, Junk and Archive
// get their special-use flags when they exist.
type Dovecot struct {
	// Host is "127.0.0.1".
	Host string
	// IMAPPort speaks IMAP with STARTTLS, IMAPSPort implicit-TLS IMAP, POP3Port POP3 with
	// STLS, POP3SPort implicit-TLS POP3 and SubmissionPort submission with STARTTLS.
	IMAPPort, IMAPSPort, POP3Port, POP3SPort, SubmissionPort int
	// Certs is the certificate every TLS port presents; TLSConfig trusts it.
	Certs *Certs
	// Users are the logins: DovecotOptions.Users, or DefaultUser.
	Users []User

	dir      string // private directory: configuration, log, sockets, state, mail
	mailRoot string // home directories, one per user: <mailRoot>/<lower-case name>/Maildir
	logFile  string
	id       dovecotIdentity
	proc     *dovecotProc
	bin      string // the dovecot binary, its configuration file and greeting: for Restart
	confPath string
	greeting string

	seedMu    sync.Mutex // serialises Seed so that file names grow in delivery order
	lastStamp time.Time  // time stamp of the last seeded file name
	seq       int        // files seeded so far, for unique names
}

// StartDovecot starts Dovecot as a child process (`dovecot -F -c <private dir>/dovecot.conf`)
// on free ports of 127.0.0.1, waits until every port greets, and stops it and removes its
// directory in t.Cleanup. A missing Dovecot skips the test, or fails it under CI=true.
func StartDovecot(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	bin, ok := dovecotBinary()
	Require(t, ok, "Dovecot (Debian packages dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond)")
	users := slices.Clone(opts.Users)
	if len(users) == 0 {
		users = []User{DefaultUser()}
	}
	if err := validUsers(users); err != nil {
		t.Fatalf("testmail: StartDovecot: %v", err)
	}
	relayHost, relayPort, err := relayAddr(opts.SubmissionRelay)
	if err != nil {
		t.Fatalf("testmail: StartDovecot: %v", err)
	}
	id, err := lookupIdentity()
	if err != nil {
		t.Fatalf("testmail: StartDovecot: %v", err)
	}
	dir, err := privateDir()
	if err != nil {
		t.Fatalf("testmail: StartDovecot: %v", err)
	}
	// Registered first, so it runs last: after Dovecot has stopped.
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testmail: remove Dovecot directory: %v", err)
		}
	})
	d := &Dovecot{
		Host:     Host,
		Certs:    NewCerts(t, dir),
		Users:    users,
		dir:      dir,
		mailRoot: filepath.Join(dir, "mail"),
		logFile:  filepath.Join(dir, "dovecot.log"),
		id:       id,
		bin:      bin,
	}
	if err := d.makeMailTree(); err != nil {
		t.Fatalf("testmail: StartDovecot: %v", err)
	}
	conf := dovecotConf{
		dovecotIdentity: id,
		Dir:             dir,
		MailRoot:        d.mailRoot,
		LogFile:         d.logFile,
		CertFile:        d.Certs.CertFile,
		KeyFile:         d.Certs.KeyFile,
		PasswdFile:      filepath.Join(dir, "passwd"),
		OAuthFile:       filepath.Join(dir, "oauth2.conf.ext"),
		RelayHost:       relayHost,
		RelayPort:       relayPort,
		OAuth:           opts.OAuthIntrospectionURL != "",
	}
	began := time.Now()
	for attempt := 1; ; attempt++ {
		err := d.start(t, bin, conf, opts.OAuthIntrospectionURL)
		if err == nil {
			break
		}
		if attempt < 3 && errors.Is(err, errPortTaken) {
			t.Logf("testmail: Dovecot attempt %d: %v; retrying on other ports", attempt, err)
			continue
		}
		t.Fatalf("testmail: start Dovecot: %v\n%s", err, d.diagnose(bin))
	}
	t.Logf("testmail: Dovecot up in %s: IMAP %d, IMAPS %d, POP3 %d, POP3S %d, submission %d, dir %s",
		time.Since(began).Round(time.Millisecond), d.IMAPPort, d.IMAPSPort, d.POP3Port, d.POP3SPort, d.SubmissionPort, dir)
	return d
}

// Addr returns "127.0.0.1:port", e.g. d.Addr(d.IMAPSPort).
func (d *Dovecot) Addr(port int) string {
	return net.JoinHostPort(d.Host, strconv.Itoa(port))
}

// TLSConfig returns a client TLS configuration that trusts only the harness certificate,
// with ServerName 127.0.0.1. Each call returns a new configuration the caller may modify.
func (d *Dovecot) TLSConfig() *tls.Config {
	return d.Certs.ClientTLS(d.Host)
}

// Log returns Dovecot's log so far (all processes, plus the master's standard error).
// Put it in failure messages.
func (d *Dovecot) Log() string {
	b, err := os.ReadFile(d.logFile)
	if err != nil {
		return fmt.Sprintf("(no Dovecot log: %v)", err)
	}
	return string(b)
}

// errPortTaken marks a start that failed because another server holds one of the ports.
var errPortTaken = errors.New("a port was taken by another server")

// start runs one attempt: new ports, configuration, process, readiness.
func (d *Dovecot) start(t testing.TB, bin string, conf dovecotConf, oauthURL string) error {
	ports, err := distinctPorts(t, 5)
	if err != nil {
		return err
	}
	d.IMAPPort, d.IMAPSPort, d.POP3Port, d.POP3SPort, d.SubmissionPort = ports[0], ports[1], ports[2], ports[3], ports[4]
	conf.IMAPPort, conf.IMAPSPort, conf.POP3Port, conf.POP3SPort, conf.SubmissionPort = ports[0], ports[1], ports[2], ports[3], ports[4]
	token := make([]byte, 6)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("greeting token: %w", err)
	}
	conf.Greeting = "Dovecot (Mailwright harness " + hex.EncodeToString(token) + ") ready."
	path, err := renderConf(conf, d.Users, oauthURL)
	if err != nil {
		return err
	}
	p, err := launch(bin, path, d.logFile)
	if err != nil {
		return err
	}
	d.proc, d.confPath, d.greeting = p, path, conf.Greeting
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("testmail: stop Dovecot: %v\n%s", err, d.Log())
		}
	})
	if err := d.waitReady(p, conf.Greeting); err != nil {
		_ = p.stop()
		if strings.Contains(d.Log(), "Address already in use") {
			return fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return err
	}
	return nil
}

// Restart stops Dovecot (clients see their connections end and new ones refused), calls
// whileDown (nil: nothing), then starts it again with the same configuration on the same
// ports and waits until every port greets. Mail seeded meanwhile is there after the start;
// Log starts afresh.
func (d *Dovecot) Restart(t testing.TB, whileDown func()) {
	t.Helper()
	if err := d.proc.stop(); err != nil {
		t.Fatalf("testmail: Restart: stop Dovecot: %v", err)
	}
	if whileDown != nil {
		whileDown()
	}
	p, err := launch(d.bin, d.confPath, d.logFile)
	if err != nil {
		t.Fatalf("testmail: Restart: %v", err)
	}
	d.proc = p
	t.Cleanup(func() { _ = p.stop() })
	if err := d.waitReady(p, d.greeting); err != nil {
		t.Fatalf("testmail: Restart: %v\n%s", err, d.Log())
	}
}

// waitReady polls every port until it accepts connections, then reads each greeting
// (over TLS on the implicit-TLS ports) and checks it carries this instance's token: the
// port is really ours (not another server's that took it first) and TLS works.
func (d *Dovecot) waitReady(p *dovecotProc, greeting string) error {
	const timeout = 15 * time.Second
	ports := []struct {
		port int
		tls  bool
	}{{d.IMAPPort, false}, {d.IMAPSPort, true}, {d.POP3Port, false}, {d.POP3SPort, true}, {d.SubmissionPort, false}}
	for _, pt := range ports {
		if err := WaitPort(d.Addr(pt.port), timeout, p.alive); err != nil {
			return err
		}
	}
	for _, pt := range ports {
		var cfg *tls.Config
		if pt.tls {
			cfg = d.TLSConfig()
		}
		if err := checkGreeting(d.Addr(pt.port), cfg, greeting, timeout); err != nil {
			if aerr := p.alive(); aerr != nil {
				return fmt.Errorf("%v (%w)", err, aerr)
			}
			return err
		}
	}
	return nil
}

// checkGreeting reads the server greeting at addr and checks that it contains want.
func checkGreeting(addr string, cfg *tls.Config, want string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return fmt.Errorf("greeting at %s: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("greeting at %s: %w", addr, err)
	}
	if cfg != nil {
		tc := tls.Client(conn, cfg)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("%w: TLS handshake at %s: %v", errPortTaken, addr, err)
		}
		conn = tc
	}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("greeting at %s: %w", addr, err)
		}
		switch {
		case strings.Contains(line, want):
			return nil
		case strings.Contains(line, "Waiting for authentication process"):
			continue // IMAP says this while the auth process starts
		default:
			return fmt.Errorf("%w: greeting at %s is %q", errPortTaken, addr, strings.TrimSpace(line))
		}
	}
}

// diagnose explains a failed start: whether doveconf accepts the configuration, and the log.
func (d *Dovecot) diagnose(bin string) string {
	conf := filepath.Join(d.dir, "dovecot.conf")
	doveconf, err := exec.LookPath("doveconf")
	if err != nil {
		doveconf = filepath.Join(filepath.Dir(bin), "..", "bin", "doveconf")
	}
	check := "doveconf -n accepts the configuration"
	if out, err := exec.Command(doveconf, "-n", "-c", conf).CombinedOutput(); err != nil {
		text, _ := os.ReadFile(conf)
		check = fmt.Sprintf("doveconf -n -c %s: %v\n%s--- %s ---\n%s", conf, err, out, conf, text)
	}
	return fmt.Sprintf("%s\n--- Dovecot log ---\n%s", check, d.Log())
}

// dovecotBinary finds the dovecot master binary.
func dovecotBinary() (string, bool) {
	const debian = "/usr/sbin/dovecot"
	if fi, err := os.Stat(debian); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return debian, true
	}
	path, err := exec.LookPath("dovecot")
	return path, err == nil
}

// privateDir makes the directory for one Dovecot. It prefers memory-backed /dev/shm
// (seeding 10,000 messages takes a fraction of a second there, but can take seconds on a
// busy disk), then the usual temporary directory. The directory must be traversable by
// Dovecot's unprivileged processes (t.TempDir's are not: their parents are 0700) and its
// path short, because Dovecot's unix sockets live in it and socket paths are limited to
// about 100 bytes.
func privateDir() (string, error) {
	var errs []error
	for _, base := range []string{"/dev/shm", os.TempDir(), "/tmp"} {
		if fi, err := os.Stat(base); err != nil || !fi.IsDir() || len(base) > 40 ||
			strings.ContainsAny(base, " \t\"'#<>\\") || !traversable(base) {
			continue
		}
		dir, err := os.MkdirTemp(base, "mw-dovecot-")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return "", fmt.Errorf("make private directory: %w", err)
		}
		return dir, nil
	}
	return "", fmt.Errorf("make private directory: no usable /dev/shm, $TMPDIR or /tmp: %w", errors.Join(errs...))
}

// traversable reports whether every directory from dir up to / can be searched by others.
func traversable(dir string) bool {
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// distinctPorts returns n different free ports.
func distinctPorts(t testing.TB, n int) ([]int, error) {
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 10*n {
			return nil, errors.New("could not find distinct free ports")
		}
		if p := FreePort(t); !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports, nil
}
