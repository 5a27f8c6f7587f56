package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/emersion/go-smtp"
	"github.com/mailwright/mailwright/internal/testmail"
)

// sink is a plain SMTP server (no TLS, no login) that reads and discards every message and
// counts messages and bytes: the one local server every sender in the SMTP comparison
// talks to.
type sink struct {
	srv           *smtp.Server
	addr          string
	msgs, octets  atomic.Int64
	before, bytes int64
}

type sinkSession struct{ s *sink }

func (ss sinkSession) Reset()                               {}
func (ss sinkSession) Logout() error                        { return nil }
func (ss sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss sinkSession) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	ss.s.octets.Add(n)
	ss.s.msgs.Add(1)
	return err
}

func startSink() (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{addr: l.Addr().String()}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return sinkSession{s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.MaxMessageBytes = 64 << 20
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// mark remembers the counters before a run; delta checks that a run delivered n messages.
func (s *sink) mark() error { s.before, s.bytes = s.msgs.Load(), s.octets.Load(); return nil }

func (s *sink) delta(n int) (string, error) {
	got, size := s.msgs.Load()-s.before, s.octets.Load()-s.bytes
	note := fmt.Sprintf("%d messages, %d bytes (%d per message) at the sink", got, size, size/max(got, 1))
	if got != int64(n) {
		return note, fmt.Errorf("the sink got %d messages, want %d", got, n)
	}
	return note, nil
}

// smtpTask returns a task of n SMTP Send Email steps to the sink: the engine has no
// counting loop, so the "loop" is n steps, each a 5,000-byte text message. Every step
// reuses the run's one SMTP connection (same server, no login), as in a mail loop's body.
func smtpTask(n int) ([]byte, error) {
	var body strings.Builder
	for i := 0; body.Len() < msgSize; i++ {
		line := strings.Repeat(string(rune('a'+i%26)), 75)
		if rest := msgSize - body.Len(); rest < 76 {
			line = line[:rest-1]
		}
		body.WriteString(line + "\n")
	}
	type step struct {
		Action string            `json:"action"`
		Params map[string]string `json:"params"`
	}
	steps := make([]step, n)
	for i := range steps {
		steps[i] = step{Action: "smtp.send", Params: map[string]string{
			"host": "{Host}", "port": "{Port}", "security": "none", "auth": "none",
			"from": "Bench Sender <sender@example.test>", "to": "recipient@example.test",
			"subject": "Bench message " + strconv.Itoa(i+1), "text_body": "{Body}"}}
	}
	return json.MarshalIndent(map[string]any{
		"version": 1, "name": "Bench SMTP send", "enabled": true,
		"description": fmt.Sprintf("issue 7 benchmark: send %d messages of %d bytes of text to a local sink", n, msgSize),
		"variables": []map[string]string{{"name": "Host", "default": "127.0.0.1"}, {"name": "Port", "default": "25"},
			{"name": "Body", "default": body.String()}},
		"steps": steps,
	}, "", " ")
}

// smtp compares sending n messages.
func (b *bench) smtp(n int) error {
	sk, err := startSink()
	if err != nil {
		return err
	}
	defer sk.srv.Close()
	_, port, _ := net.SplitHostPort(sk.addr)
	tj, err := smtpTask(n)
	if err != nil {
		return err
	}
	task, err := b.writeFile("tasks/smtp-send.json", tj, 0o644)
	if err != nil {
		return err
	}
	data := b.path("data", "smtp")
	verify := func() (string, error) { return sk.delta(n) }
	mw := &contender{name: "mailwright",
		argv:    []string{b.exe("mailwright"), "--data-dir", data, "task", "run", task, "--var", "Port=" + port},
		prepare: func() error { _ = os.RemoveAll(data); return sk.mark() },
		verify:  verify,
	}
	// The other senders send one ready message of the size Mailwright's messages have at
	// the sink (headers and quoted-printable text included), learnt from its warm-up run.
	msgPath := b.path("conf", "smtp-message.eml")
	writeMsg := func() error {
		if _, err := os.Stat(msgPath); err == nil {
			return nil
		}
		size := int(sk.octets.Load() / max(sk.msgs.Load(), 1))
		return os.WriteFile(msgPath, testmail.MessageText(1, max(size, msgSize)), 0o644)
	}
	bare := &contender{name: "go-smtp loop",
		argv:    []string{b.exe("smtpbare"), "-addr", sk.addr, "-n", strconv.Itoa(n), "-msg", msgPath},
		prepare: func() error { _ = writeMsg(); return sk.mark() },
		verify:  verify,
	}
	rc, err := b.writeFile("conf/msmtprc", fmt.Appendf(nil,
		"account bench\nhost 127.0.0.1\nport %s\nfrom sender@example.test\nauth off\ntls off\n", port), 0o600)
	if err != nil {
		return err
	}
	const loop = `i=0; while [ "$i" -lt "$3" ]; do msmtp -C "$1" -a bench recipient@example.test < "$2" || exit 1; i=$((i+1)); done`
	msmtp := &contender{name: "msmtp",
		argv:    []string{"/bin/sh", "-c", loop, "sh", rc, msgPath, strconv.Itoa(b.msmtpN)},
		prepare: func() error { _ = writeMsg(); return sk.mark() },
		verify:  func() (string, error) { return sk.delta(b.msmtpN) },
		items:   b.msmtpN,
	}
	s := &section{
		key:   "smtp",
		title: fmt.Sprintf("SMTP Send Email, %s messages of %d bytes", thousands(n), msgSize),
		about: []string{
			"All three send to one local sink (a go-smtp server in the driver that discards the data; plain SMTP, no TLS, no login, " +
				"as to a relay on the same host). Mailwright: a task of " + thousands(n) + " SMTP Send Email steps with a " +
				strconv.Itoa(msgSize) + "-byte text body (the engine has no counting loop; every step reuses the run's one SMTP " +
				"connection, as in a mail loop's body, reused without a check command; replaced when found dead at MAIL FROM). go-smtp loop: one session, MAIL/RCPT/DATA " +
				"of one ready message of the same size (`scripts/bench/smtpbare`). msmtp: one process per message, from a shell loop" +
				msmtpNote(b.msmtpN, n) + ".",
		},
		cs: []*contender{mw, bare, msmtp}, items: n, throughput: true,
		files: map[string]string{"msmtprc": readOr(rc)},
	}
	b.sections = append(b.sections, s)
	if err := b.r.rounds("smtp", b.rounds, s.cs); err != nil {
		return err
	}
	s.throughputCheck(mw, bare, 0.8, "the bare go-smtp loop")
	s.throughputCheck(mw, msmtp, 10, "msmtp")
	s.prof = mw
	b.profileIfMissed(s)
	return nil
}

func msmtpNote(m, n int) string {
	if m == n {
		return ""
	}
	return fmt.Sprintf(", sending %s messages per round rather than %s (its rate is per message: every message is a "+
		"new process and connection, and it sends line by line, so each message waits out a delayed ACK; "+
		"%s take about a minute here; `-msmtp-n`, BENCH_MSMTP_N)", thousands(m), thousands(n), thousands(n))
}

// parseTask parses {File} and saves its attachments into {Out}.
const parseTask = `{
  "version": 1,
  "name": "Bench Parse Email",
  "description": "issue 7 benchmark: parse one .eml file and save its attachments",
  "enabled": true,
  "variables": [{"name": "File"}, {"name": "Out"}],
  "steps": [
    {"action": "email.parse", "params": {"file": "{File}", "save_attachments": "true",
      "attachments_folder": "{Out}", "collision": "overwrite"}}
  ]
}
`

// bigMessage writes a multipart/mixed message of about mib MiB (50 for the benchmark): a
// text body and two base64 attachments of pseudo-random bytes (a "PDF" and a "JPEG"). It
// returns the attachments' decoded sizes.
func bigMessage(path string, mib int) ([]int, error) {
	// 27 and 9.5 MiB at 50 MiB: base64 in 76-character lines makes the message 50 MiB.
	sizes := []int{(27 << 20) * mib / 50, (19 << 19) * mib / 50}
	names := []string{"report.pdf", "photo.jpg"}
	types := []string{"application/pdf", "image/jpeg"}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	w := &bytes.Buffer{}
	fmt.Fprintf(w, "Message-ID: <bench-%dmb@mailwright.test>\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"+
		"From: Bench Sender <sender@example.test>\r\nTo: recipient@example.test\r\nSubject: %d MiB with attachments\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"bench-boundary\"\r\n\r\n"+
		"--bench-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTwo attachments follow.\r\n", mib, mib)
	rng := rand.New(rand.NewPCG(7, 7))
	for i, n := range sizes {
		fmt.Fprintf(w, "--bench-boundary\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"+
			"Content-Transfer-Encoding: base64\r\n\r\n", types[i], names[i], names[i])
		if _, err := w.WriteTo(f); err != nil {
			return nil, err
		}
		if err := writeBase64(f, rng, n); err != nil {
			return nil, err
		}
	}
	w.WriteString("--bench-boundary--\r\n")
	_, err = w.WriteTo(f)
	if err == nil {
		err = f.Close()
	}
	return sizes, err
}

// writeBase64 writes n pseudo-random bytes base64-encoded in lines of 76 characters.
func writeBase64(w io.Writer, rng *rand.Rand, n int) error {
	raw := make([]byte, 57) // 57 bytes make one 76-character line
	line := make([]byte, 78)
	bw := &bytes.Buffer{}
	for left := n; left > 0; {
		k := min(left, 57)
		for i := 0; i < k; i += 8 {
			v := rng.Uint64()
			for j := i; j < min(i+8, k); j++ {
				raw[j] = byte(v >> (8 * (j - i)))
			}
		}
		m := base64.StdEncoding.EncodedLen(k)
		base64.StdEncoding.Encode(line, raw[:k])
		line[m], line[m+1] = '\r', '\n'
		bw.Write(line[:m+2])
		left -= k
		if bw.Len() > 1<<20 || left == 0 {
			if _, err := bw.WriteTo(w); err != nil {
				return err
			}
		}
	}
	return nil
}

// parse compares Parse Email of a 50 MiB message (-parse-mib) with the same task on a tiny
// message (the process's idle RSS).
func (b *bench) parse() error {
	big := b.path("conf", fmt.Sprintf("big-%dmib.eml", b.parseMiB))
	sizes, err := bigMessage(big, b.parseMiB)
	if err != nil {
		return err
	}
	fi, err := os.Stat(big)
	if err != nil {
		return err
	}
	tiny, err := b.writeFile("conf/tiny.eml", []byte("Message-ID: <bench-tiny@mailwright.test>\r\n"+
		"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nFrom: sender@example.test\r\nTo: recipient@example.test\r\n"+
		"Subject: tiny\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\nHello.\r\n--b\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"), 0o644)
	if err != nil {
		return err
	}
	task, err := b.writeFile("tasks/parse-email.json", []byte(parseTask), 0o644)
	if err != nil {
		return err
	}
	mk := func(name, file string, want int64, files int) *contender {
		out, data := b.path("out", "parse-"+name), b.path("data", "parse-"+name)
		return &contender{name: "mailwright " + name,
			argv:    []string{b.exe("mailwright"), "--data-dir", data, "task", "run", task, "--var", "File=" + file, "--var", "Out=" + out},
			prepare: func() error { return freshDirs(out, data) },
			verify:  func() (string, error) { return expectFiles(files, want, out) },
		}
	}
	bigC := mk(fmt.Sprintf("%dMiB", b.parseMiB), big, int64(sizes[0]+sizes[1]), 2)
	idle := mk("tiny", tiny, 9, 1)
	s := &section{
		key:   "parse",
		title: fmt.Sprintf("Parse Email, a %.1f MiB message with attachments", float64(fi.Size())/(1<<20)),
		about: []string{
			fmt.Sprintf("`mailwright task run` of one Parse Email step saving the attachments, on a %d-byte multipart/mixed "+
				"message (a text body, a %.1f MiB PDF and a %.1f MiB JPEG, base64), against the same task on a 400-byte "+
				"message with one tiny attachment: that run's peak RSS is the process's idle RSS.", fi.Size(),
				float64(sizes[0])/(1<<20), float64(sizes[1])/(1<<20)),
		},
		cs: []*contender{bigC, idle}, items: 1, noRatio: true,
		files: map[string]string{filepath.Base(task): parseTask},
	}
	b.sections = append(b.sections, s)
	if err := b.r.rounds("parse", b.rounds, s.cs); err != nil {
		return err
	}
	mb, mi := bigC.median().rssKB, idle.median().rssKB
	_, maxBig := bigC.rssRange()
	s.checks = append(s.checks, check{
		what:   fmt.Sprintf("Parse Email of the %d MiB message: peak RSS above the idle RSS", b.parseMiB),
		target: "≤ 32 MiB",
		got: fmt.Sprintf("%s − %s = %s (medians; largest round %s)", mib(mb), mib(mi), mib(mb-mi),
			mib(maxBig-mi)),
		pass: mb-mi <= 32<<10,
	})
	return nil
}

// tokens counts token-endpoint requests over n OAuth IMAP logins.
func (b *bench) tokens(n int) error {
	argv := []string{b.exe("tokens"), "-n", strconv.Itoa(n)}
	smp, err := b.r.measure("tokens", argv, "", nil)
	if err != nil {
		return err
	}
	var res struct {
		Logins         int     `json:"logins"`
		TokenEndpoint  int     `json:"token_endpoint_requests"`
		TokenRefresh   int     `json:"token_refresh_requests"`
		Introspections int     `json:"introspection_requests"`
		Seconds        float64 `json:"seconds"`
	}
	found := false
	for _, line := range strings.Split(readOr(filepath.Join(b.r.logDir, "tokens.log")), "\n") {
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &res) == nil {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("tokens: no result line in %s", filepath.Join(b.r.logDir, "tokens.log"))
	}
	c := &contender{name: "tokens", argv: argv, samples: []sample{smp},
		checked: fmt.Sprintf("%d logins in %.1f s (%.1f ms each), %d introspection requests", res.Logins, res.Seconds,
			1000*res.Seconds/float64(max(res.Logins, 1)), res.Introspections)}
	if b.r.verbose {
		fmt.Fprintf(os.Stderr, "bench:   %-28s %-8s %8.3f s  %7.1f MB  %s, %d token-endpoint request(s)\n", "tokens", "run",
			smp.wall.Seconds(), float64(smp.rssKB)/1024, c.checked, res.TokenEndpoint)
	}
	s := &section{
		key:   "tokens",
		title: fmt.Sprintf("Token refreshes over %s IMAP logins in one token lifetime", thousands(n)),
		about: []string{
			"One process (`scripts/bench/tokens`) runs Check for Email " + thousands(n) + " times against the harness " +
				"Dovecot (STARTTLS, XOAUTH2, each a new connection and login, `count` all), with the token provider a task run " +
				"uses over a parameter-set store (file secrets backend) holding a fresh refresh token and no access token. " +
				"The harness OAuth server (access tokens live 1 h) counts token-endpoint requests; Dovecot checks every token " +
				"at its introspection endpoint.",
		},
		cs: []*contender{c}, items: n, noRatio: true, unit: "logins",
	}
	s.checks = append(s.checks, check{
		what:   fmt.Sprintf("token-endpoint requests for %s logins within one token lifetime", thousands(res.Logins)),
		target: "1",
		got:    fmt.Sprintf("%d (%d refresh)", res.TokenEndpoint, res.TokenRefresh),
		pass:   res.TokenEndpoint == 1 && res.Logins == n,
	})
	b.sections = append(b.sections, s)
	return nil
}
