package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
)

// scanSecret is a secret value the scan looks for, with the forms it could leak in.
type scanSecret struct {
	label string
	forms []string
}

// scanRandom returns prefix plus 24 random hex digits: a value that cannot appear by chance.
func scanRandom(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// scanForms returns s and its base64 encodings.
func scanForms(s string) []string {
	return []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s)),
		base64.URLEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s))}
}

// scanRig collects everything the binary writes and the secrets it must never show.
type scanRig struct {
	t       *testing.T
	bin     string
	env     []string
	dataDir string
	user    string
	imapTLS string // host:port of implicit-TLS IMAP
	host    string
	port    int

	mu      sync.Mutex
	outputs map[string]string // "command #n stdout/stderr" → text
	secrets map[string]scanSecret
	n       int
}

// add registers a secret (and, for access tokens, the SASL strings carrying it).
func (r *scanRig) add(label, value string) {
	if value == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.secrets[value]; ok {
		return
	}
	forms := scanForms(value)
	switch {
	case strings.HasPrefix(label, "access token"):
		forms = append(forms, scanForms("user="+r.user+"\x01auth=Bearer "+value+"\x01\x01")...)
		forms = append(forms, scanForms("n,a="+r.user+",\x01host="+r.host+"\x01port="+strconv.Itoa(r.port)+"\x01auth=Bearer "+value+"\x01\x01")...)
		forms = append(forms, "Bearer "+value)
	case strings.HasPrefix(label, "password"):
		forms = append(forms, scanForms("\x00"+r.user+"\x00"+value)...)
		forms = append(forms, scanForms(r.user+"\x00"+r.user+"\x00"+value)...)
	}
	r.secrets[value] = scanSecret{label: label, forms: forms}
}

// harvest adds the secrets the store holds now (tokens rotate with every refresh).
func (r *scanRig) harvest() {
	s, err := oauthparams.Open(r.dataDir, oauthparams.StoreOptions{Backend: oauthparams.BackendFile})
	if err != nil {
		r.t.Fatalf("open the store: %v", err)
	}
	p, err := s.Get("Scan")
	if err != nil {
		return
	}
	r.add("refresh token", p.Secrets.RefreshToken)
	r.add("access token", p.Secrets.AccessToken)
	r.add("client secret (stored)", p.Secrets.ClientSecret)
}

// run runs the binary, records its output and returns its exit code and output.
func (r *scanRig) run(args ...string) (int, string, string) {
	r.t.Helper()
	code, out, errOut := runBinary(r.t, r.bin, r.env, args...)
	r.record(strings.Join(args, " "), out, errOut)
	r.harvest()
	return code, out, errOut
}

func (r *scanRig) record(what, out, errOut string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	r.outputs["#"+strconv.Itoa(r.n)+" "+what+" (stdout)"] = out
	r.outputs["#"+strconv.Itoa(r.n)+" "+what+" (stderr)"] = errOut
}

// signIn runs `params authorize --no-browser`, plays the browser on the printed URL
// (visit, or send SIGQUIT to the waiting process when crash is set) and returns the exit
// code and stderr.
func (r *scanRig) signIn(crash bool) (int, string) {
	r.t.Helper()
	cmd := exec.Command(r.bin, "params", "authorize", "Scan", "--no-browser", "--timeout", "60s")
	cmd.Env = r.env
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	var errOut strings.Builder
	urls := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errOut.WriteString(sc.Text() + "\n")
			if u := strings.TrimSpace(sc.Text()); strings.HasPrefix(u, "http") {
				select {
				case urls <- u:
				default:
				}
			}
		}
	}()
	select {
	case u := <-urls:
		if crash {
			cmd.Process.Signal(syscall.SIGQUIT)
		} else if resp, err := http.Get(u); err != nil {
			r.t.Errorf("the browser's visit: %v", err)
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		r.t.Fatal("params authorize printed no URL")
	}
	<-copied
	cmd.Wait()
	r.record("params authorize (crash="+strconv.FormatBool(crash)+")", out.String(), errOut.String())
	r.harvest()
	return cmd.ProcessState.ExitCode(), errOut.String()
}

// TestSecretsNeverLeak runs the real binary through a parameter set's life with known
// secret values — sign-in, a task with OAuth (XOAUTH2 and OAUTHBEARER) and password logins
// and failing steps, history, show, list, token, test, export with and without secrets, a
// revoked token and its failures, a goroutine dump — and then scans every byte any command
// printed and every file in the data folder for the secrets, raw and base64-encoded (SASL
// PLAIN, XOAUTH2 and OAUTHBEARER strings included). The only place a secret may be is the
// task file that holds the password in its "password" parameter. Files are 0600 and
// folders 0700.
func TestSecretsNeverLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := buildBinary(t, nil)
	clientSecret, password, wrongPassword := scanRandom("cs-"), scanRandom("pw-"), scanRandom("wrong-")
	braceSecret, passphrase := scanRandom("br-")+"{"+scanRandom("Inner")+"}", scanRandom("pp-")
	oauth := testmail.StartOAuthServer(t, testmail.OAuthOptions{Clients: []testmail.OAuthClient{{ID: "scan-client", Secret: clientSecret}}})
	user := "alice@example.test"
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{Users: []testmail.User{{Name: user, Password: password}},
		OAuthIntrospectionURL: oauth.IntrospectURL})
	dc.SeedN(t, user, "INBOX", 3, 400)
	work := t.TempDir()
	r := &scanRig{t: t, bin: bin, dataDir: filepath.Join(work, "data"), user: user, host: dc.Host, port: dc.IMAPSPort,
		imapTLS: dc.Addr(dc.IMAPSPort), outputs: map[string]string{}, secrets: map[string]scanSecret{}}
	// No keyring: the secrets go to the age-encrypted file, whose bytes are scanned too.
	r.env = headlessEnv("MAILWRIGHT_DATA_DIR="+r.dataDir, "DBUS_SESSION_BUS_ADDRESS=", "XDG_RUNTIME_DIR="+t.TempDir(), "BROWSER=")
	r.add("client secret", clientSecret)
	r.add("password", password)
	r.add("password (wrong one)", wrongPassword)
	r.add("password with braces", braceSecret)
	r.add("password with braces (inner part)", braceSecret[strings.Index(braceSecret, "{")+1:len(braceSecret)-1])
	r.add("export passphrase", passphrase)
	file := func(name, content string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustOK := func(args ...string) string {
		t.Helper()
		code, out, errOut := r.run(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}

	// A parameter set, signed in through the loopback listener.
	mustOK("params", "set", "Scan", "--account", user, "--client-id", "scan-client", "--client-secret-file", file("cs.txt", clientSecret+"\n"),
		"--auth-url", oauth.AuthURL, "--token-url", oauth.TokenURL, "--scope", "https://mail.test/imap offline_access")
	if code, errOut := r.signIn(false); code != 0 {
		t.Fatalf("params authorize: exit %d\n%s", code, errOut)
	}
	if len(r.secrets) < 8 {
		t.Fatalf("the sign-in stored no tokens (%d secrets known)", len(r.secrets))
	}

	// A task: OAuth logins with both mechanisms, a password login, a wrong password and a
	// missing folder (both "continue"), then the history.
	imapStep := func(conn string, kv ...string) map[string]any {
		p := map[string]string{"connection": conn, "host": dc.Host, "port": strconv.Itoa(dc.IMAPSPort), "ca_file": dc.Certs.CertFile}
		for i := 0; i+1 < len(kv); i += 2 {
			p[kv[i]] = kv[i+1]
		}
		step := map[string]any{"action": "imap.open", "params": p}
		if conn == "bad" {
			step["on_error"] = map[string]string{"policy": "continue"}
		}
		return step
	}
	taskFile := writeTask(t, map[string]any{"version": 1, "name": "Scan task", "steps": []any{
		imapStep("oauth", "auth", "oauth", "param_set", "Scan"),
		imapStep("bearer", "auth", "oauth", "param_set", "Scan", "mechanism", "OAUTHBEARER"),
		imapStep("pw", "auth", "password", "user", user, "password", password),
		imapStep("bad", "auth", "password", "user", user, "password", wrongPassword),
		map[string]any{"action": "imap.select", "params": map[string]string{"connection": "pw", "folder": "No such folder"},
			"on_error": map[string]string{"policy": "continue"}},
		map[string]any{"action": "imap.select", "params": map[string]string{"connection": "oauth", "folder": "INBOX"}},
		map[string]any{"action": "imap.loop", "params": map[string]string{"connection": "oauth"}, "body": []any{
			map[string]any{"action": "email.parse", "params": map[string]string{}}}},
	}})
	mustOK("task", "import", taskFile)
	if code, _, errOut := r.run("task", "run", "Scan task"); code != 0 || !strings.Contains(errOut, "2 failed steps") {
		t.Fatalf("task run: exit %d (want 0 with two failed steps)\n%s", code, errOut)
	}
	var runs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(mustOK("history", "--json")), &runs); err != nil || len(runs) == 0 {
		t.Fatalf("history --json: %v %v", runs, err)
	}
	mustOK("history")
	mustOK("history", "show", runs[0].ID)

	// Looking at the set, using it, exporting it.
	mustOK("params", "show", "Scan")
	mustOK("params", "show", "Scan", "--json")
	mustOK("params", "list")
	mustOK("params", "list", "--json")
	mustOK("params", "token", "Scan")
	mustOK("params", "test", "Scan", "--imap", r.imapTLS, "--security", "tls", "--ca-file", dc.Certs.CertFile)
	plainExport, secretExport := filepath.Join(work, "export.json"), filepath.Join(work, "export-secrets.json")
	mustOK("params", "export", "--out", plainExport)
	mustOK("params", "export", "--out", secretExport, "--with-secrets", "--passphrase-file", file("pp.txt", passphrase))
	if b, _ := os.ReadFile(plainExport); bytes.Contains(b, []byte(`"secrets"`)) {
		t.Error("the export without secrets has a secrets field")
	}

	// A password with braces is refused without being quoted (validate, and a run, whose
	// error goes to the history).
	braceTask := writeTask(t, map[string]any{"version": 1, "name": "Brace task", "steps": []any{
		imapStep("pw", "auth", "password", "user", user, "password", braceSecret)}})
	if code, _, _ := r.run("task", "validate", braceTask); code == 0 {
		t.Error("task validate accepted a password with a stray brace")
	}
	if code, _, _ := r.run("task", "run", braceTask); code == 0 {
		t.Error("task run accepted a password with a stray brace")
	}

	// The server stops accepting the access token: the login is retried once after a
	// forced refresh, which rotates both tokens (the new ones are scanned for too).
	oauth.ExpireAccessTokens()
	if code, _, errOut := r.run("task", "run", "Scan task"); code != 0 {
		t.Fatalf("task run after the access token expired: exit %d\n%s", code, errOut)
	}
	// The provider revokes the grant: using the set fails, and says so.
	oauth.RevokeUser(user)
	oauth.ExpireAccessTokens()
	if code, _, errOut := r.run("task", "run", "Scan task"); code == 0 || !strings.Contains(errOut, "invalid_grant") {
		t.Errorf("task run with a revoked grant: exit %d\n%s", code, errOut)
	}
	r.run("params", "token", "Scan")
	r.run("params", "test", "Scan", "--imap", r.imapTLS, "--security", "tls", "--ca-file", dc.Certs.CertFile)
	r.run("params", "show", "Scan")
	if err := json.Unmarshal([]byte(mustOK("history", "--json")), &runs); err == nil && len(runs) > 0 {
		mustOK("history", "show", runs[0].ID)
	}
	// Crash output: a goroutine dump (SIGQUIT) of a process holding the secrets in memory.
	if _, dump := r.signIn(true); !strings.Contains(dump, "goroutine ") {
		t.Errorf("no goroutine dump after SIGQUIT:\n%s", dump)
	}

	// Scan everything written.
	r.mu.Lock()
	defer r.mu.Unlock()
	tokens := 0
	for _, s := range r.secrets {
		if strings.HasSuffix(s.label, "token") {
			tokens++
		}
	}
	if tokens < 4 {
		t.Fatalf("only %d tokens were seen: the scan would prove little", tokens)
	}
	check := func(where string, data []byte, allowed func(label string) bool) {
		for _, s := range r.secrets {
			for _, f := range s.forms {
				if bytes.Contains(data, []byte(f)) && !allowed(s.label) {
					t.Errorf("%s contains the %s", where, s.label)
					break
				}
			}
		}
	}
	none := func(string) bool { return false }
	for what, text := range r.outputs {
		check("output of "+what, []byte(text), none)
	}
	for _, f := range []string{plainExport, secretExport} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(filepath.Base(f), b, none)
	}
	files := 0
	err := filepath.WalkDir(r.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.dataDir, p)
		if runtime.GOOS != "windows" {
			if d.IsDir() && info.Mode().Perm() != 0o700 {
				t.Errorf("folder %s has mode %v, want 0700", rel, info.Mode().Perm())
			}
			if !d.IsDir() && info.Mode().Perm() != 0o600 {
				t.Errorf("file %s has mode %v, want 0600", rel, info.Mode().Perm())
			}
		}
		if d.IsDir() {
			return nil
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		allowed := none
		if filepath.Dir(rel) == "tasks" {
			// The task file keeps the step's password parameter as written (0600, in a 0700
			// folder; see SECURITY.md). Nothing else.
			allowed = func(label string) bool {
				return strings.HasPrefix(label, "password") && !strings.Contains(label, "braces")
			}
		}
		check("data folder file "+rel, b, allowed)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"paramsets.json", "secrets.age", "secrets.key", "history.db", "tasks"} {
		if _, err := os.Stat(filepath.Join(r.dataDir, name)); err != nil {
			t.Errorf("expected %s in the data folder: %v", name, err)
		}
	}
	t.Logf("scanned %d outputs and %d files for %d secrets", len(r.outputs), files, len(r.secrets))
}
