package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mailwright/mailwright/internal/testmail"
)

// imapTask downloads every message of INBOX to {Out}/<UID>.eml over STARTTLS with a
// password: the IMAP Mail Loop with an IMAP Download Message step in its body.
const imapTask = `{
  "version": 1,
  "name": "Bench IMAP download",
  "description": "issue 7 benchmark: save every message of INBOX as an .eml file",
  "enabled": true,
  "variables": [
    {"name": "Host", "default": "localhost"},
    {"name": "Port", "default": "143"},
    {"name": "User"}, {"name": "Password"}, {"name": "CA"}, {"name": "Out"}
  ],
  "steps": [
    {"action": "imap.open", "params": {"host": "{Host}", "port": "{Port}", "security": "starttls",
      "auth": "password", "user": "{User}", "password": "{Password}", "ca_file": "{CA}"}},
    {"action": "imap.select", "params": {"folder": "INBOX", "read_only": "true"}},
    {"action": "imap.loop", "label": "every message", "params": {}, "body": [
      {"action": "imap.download", "params": {"folder": "{Out}", "file_name": "{MessageUID}.eml", "collision": "overwrite"}}
    ]},
    {"action": "imap.close"}
  ]
}
`

// pop3Task downloads every message to {Out}/<number>.eml over STLS with a password and
// deletes nothing: the POP3 Mail Loop with a POP3 Download Email step in its body.
const pop3Task = `{
  "version": 1,
  "name": "Bench POP3 download",
  "description": "issue 7 benchmark: save every message of the maildrop as an .eml file, delete nothing",
  "enabled": true,
  "variables": [
    {"name": "Host", "default": "localhost"},
    {"name": "Port", "default": "110"},
    {"name": "User"}, {"name": "Password"}, {"name": "CA"}, {"name": "Out"}
  ],
  "steps": [
    {"action": "pop3.open", "params": {"host": "{Host}", "port": "{Port}", "security": "starttls",
      "auth": "password", "user": "{User}", "password": "{Password}", "ca_file": "{CA}"}},
    {"action": "pop3.loop", "label": "every message", "params": {}, "body": [
      {"action": "pop3.download", "params": {"folder": "{Out}", "file_name": "{MessageNumber}.eml", "collision": "overwrite"}}
    ]},
    {"action": "pop3.close"}
  ]
}
`

// mbsyncConf: isync as the issue asks (SSLType STARTTLS, PipelineDepth 50, FSync no,
// Maildir store), pulling INBOX into a fresh Maildir. Host must be localhost: mbsync checks
// the certificate's host name and has no IP address matching.
const mbsyncConf = `FSync no

IMAPAccount bench
Host localhost
Port %d
User %s
Pass %s
SSLType STARTTLS
CertificateFile %s
PipelineDepth 50

IMAPStore far
Account bench

MaildirStore near
Path %s/
Inbox %s/INBOX

Channel bench
Far :far:
Near :near:
Patterns INBOX
Create Near
Sync Pull
SyncState *
`

// fetchmailConf: fetchmail as the issue asks (uidl, keep, fetchall), over STLS with the
// certificate checked, delivering to one file in BSMTP format (fetchmail's way to deliver
// to a file without starting a program per message).
const fetchmailConf = `set no syslog
set no bouncemail
poll localhost with protocol pop3 port %d and uidl
  user "%s" there with password "%s" is "%s" here
  options keep fetchall no rewrite
  sslproto "TLS1.2+" sslcertck sslcertfile "%s"
  bsmtp "%s"
`

// imap compares the IMAP download of n messages.
func (b *bench) imap(n int) error {
	u := b.users[n]
	scen := fmt.Sprintf("imap-%d", n)
	port := strconv.Itoa(b.d.IMAPPort)
	want := int64(n) * msgSize
	mw, mwOut, mwData, err := b.mailwrightDownload("imap-download.json", imapTask, scen, port, u, n, want)
	if err != nil {
		return err
	}

	mbOut := b.path("out", scen+"-mbsync")
	rc, err := b.writeFile("conf/"+scen+".mbsyncrc",
		fmt.Appendf(nil, mbsyncConf, b.d.IMAPPort, u.Name, u.Password, b.cert, mbOut, mbOut), 0o600)
	if err != nil {
		return err
	}
	mb := &contender{name: "mbsync",
		argv:    []string{"mbsync", "-c", rc, "-q", "bench"},
		prepare: func() error { return freshDirs(mbOut) },
		verify: func() (string, error) {
			// mbsync stores messages with LF line ends (the seeded ones have CRLF): about 1 %
			// fewer bytes than the server sent.
			files, size, err := countFiles(filepath.Join(mbOut, "INBOX", "cur"), filepath.Join(mbOut, "INBOX", "new"))
			note := fmt.Sprintf("%d files, %d bytes (LF line ends)", files, size)
			if err == nil && (files != n || size < want*98/100 || size > want) {
				err = fmt.Errorf("got %s, want %d files of about %d bytes in all", note, n, want)
			}
			return note, err
		},
	}

	bareOut := b.path("out", scen+"-imapbare")
	bare := &contender{name: "go-imap loop",
		argv: []string{b.exe("imapbare"), "-addr", "localhost:" + port, "-user", u.Name, "-pass", u.Password,
			"-ca", b.cert, "-folder", "INBOX", "-out", bareOut},
		prepare: func() error { return freshDirs(bareOut) },
		verify:  func() (string, error) { return expectFiles(n, want, bareOut) },
		warmUp:  true, // the cheapest: Dovecot builds its indexes of the fresh Maildir
	}

	s := &section{
		key:   scen,
		title: fmt.Sprintf("IMAP Mail Loop + Download, %s messages of %d bytes", thousands(n), msgSize),
		about: []string{
			"Every message of INBOX saved as one file; STARTTLS on the harness's IMAP port, password login " +
				"(AUTHENTICATE PLAIN), host `localhost`, the harness certificate trusted through a CA file. " +
				"Mailwright: an IMAP Mail Loop with an IMAP Download Message step (`imap-download.json` below). " +
				"mbsync: isync pulling INBOX into a fresh Maildir (SSLType STARTTLS, PipelineDepth 50, FSync no). " +
				"go-imap loop: one `UID FETCH 1:* (UID BODY.PEEK[])` streaming each body into a file, no fsync (`scripts/bench/imapbare`).",
		},
		cs: append([]*contender{mw, mb, bare}, b.shmVariant(mw, mwOut, mwData, n, want)...), items: n,
		files: map[string]string{"imap-download.json": imapTask, filepath.Base(rc): readOr(rc)},
	}
	b.sections = append(b.sections, s)
	if err := b.r.rounds(scen, b.rounds, s.cs); err != nil {
		return err
	}
	if n == 10000 {
		s.wallCheck(mw, mb, 0.5, "mbsync")
		s.wallCheck(mw, bare, 1.5, "the bare go-imap loop")
		s.rssCheck(mw, 64)
	}
	s.prof = mw
	if b.diag {
		s.diagProf = s.cs[len(s.cs)-1]
	}
	b.profileIfMissed(s)
	return nil
}

// imapScaling checks that Mailwright's peak RSS at the largest size is within 10 % of the
// 10,000-message figure.
func (b *bench) imapScaling(sizes []int) {
	var small, large *contender
	var nLarge int
	for _, s := range b.sections {
		var n int
		if _, err := fmt.Sscanf(s.key, "imap-%d", &n); err != nil {
			continue
		}
		if n == 10000 {
			small = s.cs[0]
		} else if n > nLarge {
			large, nLarge = s.cs[0], n
		}
	}
	if small == nil || large == nil {
		return
	}
	ms, ml := small.median().rssKB, large.median().rssKB
	ratio := float64(ml) / float64(ms)
	s := &section{key: "imap-scaling", title: fmt.Sprintf("IMAP: peak RSS at %s against 10,000 messages", thousands(nLarge))}
	s.checks = append(s.checks, check{
		what:   fmt.Sprintf("Mailwright IMAP loop peak RSS at %s messages within 10 %% of the 10,000 figure", thousands(nLarge)),
		target: "≤ 1.10 ×",
		got:    fmt.Sprintf("%s vs %s = %.2f ×", mib(ml), mib(ms), ratio),
		pass:   ratio <= 1.10,
	})
	b.sections = append(b.sections, s)
}

// pop3 compares the POP3 download of n messages.
func (b *bench) pop3(n int) error {
	u := b.users[n]
	scen := fmt.Sprintf("pop3-%d", n)
	port := strconv.Itoa(b.d.POP3Port)
	want := int64(n) * msgSize
	mw, mwOut, mwData, err := b.mailwrightDownload("pop3-download.json", pop3Task, scen, port, u, n, want)
	if err != nil {
		return err
	}

	fmOut := b.path("out", scen+"-fetchmail")
	fmHome := b.path("conf", scen+"-fetchmail")
	if err := os.MkdirAll(fmHome, 0o700); err != nil {
		return err
	}
	localUser := os.Getenv("USER")
	if localUser == "" {
		localUser = "root"
	}
	rc, err := b.writeFile("conf/"+scen+"-fetchmail/fetchmailrc",
		fmt.Appendf(nil, fetchmailConf, b.d.POP3Port, u.Name, u.Password, localUser, b.cert, filepath.Join(fmOut, "mail.bsmtp")), 0o600)
	if err != nil {
		return err
	}
	fm := &contender{name: "fetchmail",
		argv:    []string{"fetchmail", "-f", rc, "--idfile", filepath.Join(fmOut, "fetchids"), "--nodetach", "--silent"},
		env:     []string{"FETCHMAILHOME=" + fmHome},
		warmUp:  true, // Dovecot's indexes, if the IMAP comparison did not run first
		prepare: func() error { return freshDirs(fmOut) },
		verify: func() (string, error) {
			got, size, err := bsmtpMessages(filepath.Join(fmOut, "mail.bsmtp"))
			note := fmt.Sprintf("%d messages in a %d-byte BSMTP file", got, size)
			if err == nil && (got != n || size < want) {
				err = fmt.Errorf("got %s, want %d messages and at least %d bytes", note, n, want)
			}
			return note, err
		},
	}

	curlOut := b.path("out", scen+"-curl")
	curl := &contender{name: "curl",
		argv: []string{"curl", "--silent", "--show-error", "--fail", "--ssl-reqd", "--cacert", b.cert,
			"--user", u.Name + ":" + u.Password, fmt.Sprintf("pop3://localhost:%s/[1-%d]", port, n), "-o", curlOut + "/#1.eml"},
		prepare: func() error { return freshDirs(curlOut) },
		verify:  func() (string, error) { return expectFiles(n, want, curlOut) },
	}

	s := &section{
		key:   scen,
		title: fmt.Sprintf("POP3 Mail Loop + Download, %s messages of %d bytes", thousands(n), msgSize),
		about: []string{
			"Every message of the maildrop saved, none deleted; STLS on the harness's POP3 port, password login, host `localhost`. " +
				"Mailwright: a POP3 Mail Loop with a POP3 Download Email step (`pop3-download.json` below). " +
				"fetchmail: `uidl`, `keep`, `fetchall`, STLS with the certificate checked, delivering to one file (`bsmtp`). " +
				"curl: `pop3://…/[1-N]`, every RETR on one connection (STLS, `--ssl-reqd`).",
		},
		cs: append([]*contender{mw, fm, curl}, b.shmVariant(mw, mwOut, mwData, n, want)...), items: n,
		files: map[string]string{"pop3-download.json": pop3Task, "fetchmailrc": readOr(rc)},
	}
	b.sections = append(b.sections, s)
	if err := b.r.rounds(scen, b.rounds, s.cs); err != nil {
		return err
	}
	if n == 10000 {
		s.wallCheck(mw, fm, 0.5, "fetchmail")
		s.wallCheck(mw, curl, 0.8, "curl")
	}
	s.prof = mw
	if b.diag {
		s.diagProf = s.cs[len(s.cs)-1]
	}
	b.profileIfMissed(s)
	return nil
}

// mailwrightDownload writes the task file name (text taskJSON) and returns Mailwright's
// contender running it against the harness's Dovecot on port as u, downloading n
// messages (want bytes in all) into its output folder, with its data folder.
func (b *bench) mailwrightDownload(name, taskJSON, scen, port string, u testmail.User, n int, want int64) (mw *contender, out, data string, err error) {
	task, err := b.writeFile("tasks/"+name, []byte(taskJSON), 0o644)
	if err != nil {
		return nil, "", "", err
	}
	out, data = b.path("out", scen+"-mailwright"), b.path("data", scen)
	mw = &contender{name: "mailwright",
		argv: []string{b.exe("mailwright"), "--data-dir", data, "task", "run", task, "--var", "Port=" + port,
			"--var", "User=" + u.Name, "--var", "Password=" + u.Password, "--var", "CA=" + b.cert, "--var", "Out=" + out},
		prepare: func() error { return freshDirs(out, data) },
		verify:  func() (string, error) { return expectFiles(n, want, out) },
	}
	return mw, out, data, nil
}

// shmVariant returns, with -diag, Mailwright's command again with its downloads and data
// folder in /dev/shm (tmpfs: fsync costs nothing there), to show what the per-file
// fsync of Download costs on this machine's disk. It has no target.
func (b *bench) shmVariant(mw *contender, out, data string, n int, want int64) []*contender {
	if !b.diag {
		return nil
	}
	shm := filepath.Join("/dev/shm", "mailwright-bench-"+filepath.Base(filepath.Dir(filepath.Dir(out))))
	sOut, sData := filepath.Join(shm, filepath.Base(out)), filepath.Join(shm, filepath.Base(data))
	argv := slices.Clone(mw.argv)
	for i, a := range argv {
		argv[i] = strings.NewReplacer(out, sOut, data, sData).Replace(a)
	}
	b.tb.Cleanup(func() { _ = os.RemoveAll(shm) })
	return []*contender{{name: "mailwright, files in /dev/shm", argv: argv,
		prepare: func() error { return freshDirs(sOut, sData) },
		verify:  func() (string, error) { return expectFiles(n, want, sOut) },
		after:   func() { _ = os.RemoveAll(sOut) },
	}}
}

// freshDirs empties dirs (removing them; the first is created again).
func freshDirs(dirs ...string) error {
	for i, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if i == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

// readOr returns a file's contents, or the error as text.
func readOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
