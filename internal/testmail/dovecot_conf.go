package testmail

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// deadRelayPort is where submission relays when DovecotOptions.SubmissionRelay is empty:
// tcpmux, a privileged port nothing listens on, so connecting is refused at once (unlike a
// FreePort, which another harness server might take later).
const deadRelayPort = 1

// dovecotIdentity says which accounts Dovecot's processes and the mail tree use.
type dovecotIdentity struct {
	UID, GID int // owner of the mail tree and of the imap/pop3/submission processes
	// Chown is set when we run as root: everything the harness creates in the mail tree is
	// handed to UID/GID, since Dovecot refuses mail access as root.
	Chown bool
	// NonRoot is set when we are not root: every service then runs as the current user,
	// who must also be the internal and login user, and no service may chroot.
	NonRoot bool
	// InternalUser, InternalGroup and LoginUser name the current user and its group; they
	// are used only when NonRoot is set (as root, Debian's dovecot and dovenull are).
	InternalUser, InternalGroup, LoginUser string
}

// lookupIdentity picks the mail user: "mail" when we are root, the current user otherwise.
func lookupIdentity() (dovecotIdentity, error) {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("mail")
		if err != nil {
			return dovecotIdentity{}, fmt.Errorf("look up the mail user Dovecot runs mail processes as: %w", err)
		}
		uid, gid, err := numericIDs(u)
		if err != nil {
			return dovecotIdentity{}, err
		}
		return dovecotIdentity{UID: uid, GID: gid, Chown: true}, nil
	}
	u, err := user.Current()
	if err != nil {
		return dovecotIdentity{}, fmt.Errorf("look up the current user: %w", err)
	}
	uid, gid, err := numericIDs(u)
	if err != nil {
		return dovecotIdentity{}, err
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return dovecotIdentity{}, fmt.Errorf("look up group %s of user %s: %w", u.Gid, u.Username, err)
	}
	return dovecotIdentity{
		UID: uid, GID: gid, NonRoot: true,
		InternalUser: u.Username, InternalGroup: g.Name, LoginUser: u.Username,
	}, nil
}

func numericIDs(u *user.User) (uid, gid int, err error) {
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("user %s: uid %q is not numeric: %w", u.Username, u.Uid, err)
	}
	gid, err = strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("user %s: gid %q is not numeric: %w", u.Username, u.Gid, err)
	}
	return uid, gid, nil
}

// dovecotConf is everything the configuration template needs.
type dovecotConf struct {
	dovecotIdentity
	// Paths: the private directory, the mail root and the files in the private directory.
	Dir, MailRoot, LogFile, CertFile, KeyFile, PasswdFile, OAuthFile string
	// Greeting is login_greeting, with a token that tells this instance from others.
	Greeting string
	// The listeners' ports.
	IMAPPort, IMAPSPort, POP3Port, POP3SPort, SubmissionPort int
	// RelayHost and RelayPort are where submission relays to.
	RelayHost string
	RelayPort int
	// OAuth adds XOAUTH2 and OAUTHBEARER with the oauth2 passdb.
	OAuth bool
}

// dovecotTemplate is the whole Dovecot configuration; nothing from /etc/dovecot is read.
const dovecotTemplate = `# Written by internal/testmail for one test; removed when the test ends.
base_dir = {{.Dir}}/run
state_dir = {{.Dir}}/state
log_path = {{.LogFile}}
info_log_path = {{.LogFile}}
protocols = imap pop3 submission
listen = 127.0.0.1
login_greeting = {{.Greeting}}
{{- if .NonRoot}}
default_internal_user = {{.InternalUser}}
default_internal_group = {{.InternalGroup}}
default_login_user = {{.LoginUser}}
{{- end}}

ssl = yes
ssl_cert = <{{.CertFile}}
ssl_key = <{{.KeyFile}}
# Loopback connections count as secured, so this does not force STARTTLS on 127.0.0.1.
disable_plaintext_auth = yes

auth_mechanisms = plain login{{if .OAuth}} xoauth2 oauthbearer{{end}}
# Failed logins are answered without the usual 2 s delay (Dovecot 2.3 still waits for its
# next 500 ms failure tick) and without the growing penalty, switched off below by taking
# away anvil's anvil-auth-penalty socket.
auth_failure_delay = 0
auth_verbose = yes

mail_location = maildir:~/Maildir
mail_fsync = never
# Folders that Seed creates behind Dovecot's back must show up in LIST at once, also in
# sessions that listed before; the mailbox list index would hide them.
mailbox_list_index = no
mail_max_userip_connections = 100
first_valid_uid = {{.UID}}
first_valid_gid = {{.GID}}
pop3_uidl_format = %08Xu%08Xv

hostname = localhost
submission_relay_host = {{.RelayHost}}
submission_relay_port = {{.RelayPort}}
submission_relay_trusted = yes

namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \Drafts
  }
  mailbox Sent {
    special_use = \Sent
  }
  mailbox Trash {
    special_use = \Trash
  }
  mailbox Junk {
    special_use = \Junk
  }
  mailbox Archive {
    special_use = \Archive
  }
}

passdb {
  driver = passwd-file
  args = {{.PasswdFile}}
  mechanisms = plain login
}
{{- if .OAuth}}
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {{.OAuthFile}}
}
{{- end}}
userdb {
  driver = static
  args = uid={{.UID}} gid={{.GID}} home={{.MailRoot}}/%u
}

service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
{{- if .NonRoot}}
  chroot =
{{- end}}
}
service imap-login {
  inet_listener imap {
    port = {{.IMAPPort}}
  }
  inet_listener imaps {
    port = {{.IMAPSPort}}
    ssl = yes
  }
{{- if .NonRoot}}
  chroot =
{{- end}}
}
service pop3-login {
  inet_listener pop3 {
    port = {{.POP3Port}}
  }
  inet_listener pop3s {
    port = {{.POP3SPort}}
    ssl = yes
  }
{{- if .NonRoot}}
  chroot =
{{- end}}
}
service submission-login {
  inet_listener submission {
    port = {{.SubmissionPort}}
  }
{{- if .NonRoot}}
  chroot =
{{- end}}
}
{{- if .NonRoot}}
service ipc {
  chroot =
}
{{- end}}
`

// oauthTemplate is the oauth2 passdb's own configuration file.
const oauthTemplate = `# Written by internal/testmail.
introspection_mode = post
introspection_url = {{.URL}}
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
{{- if .HTTPS}}
# The introspection endpoint is a harness server on loopback with its own test certificate.
tls_allow_invalid_cert = yes
{{- end}}
`

// renderConf writes dovecot.conf, the passwd-file and, with OAuth on, the oauth2 file.
func renderConf(c dovecotConf, users []User, introspectionURL string) (string, error) {
	if err := os.WriteFile(c.PasswdFile, passwdFile(users), 0o644); err != nil {
		return "", fmt.Errorf("write passwd-file: %w", err)
	}
	if c.OAuth {
		u, err := url.Parse(introspectionURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("OAuthIntrospectionURL %q is not an http(s) URL", introspectionURL)
		}
		var b strings.Builder
		data := struct {
			URL   string
			HTTPS bool
		}{quoteConf(introspectionURL), u.Scheme == "https"}
		if err := template.Must(template.New("oauth2").Parse(oauthTemplate)).Execute(&b, data); err != nil {
			return "", fmt.Errorf("render oauth2 configuration: %w", err)
		}
		if err := os.WriteFile(c.OAuthFile, []byte(b.String()), 0o644); err != nil {
			return "", fmt.Errorf("write oauth2 configuration: %w", err)
		}
	}
	var b strings.Builder
	if err := template.Must(template.New("dovecot").Parse(dovecotTemplate)).Execute(&b, c); err != nil {
		return "", fmt.Errorf("render dovecot.conf: %w", err)
	}
	path := filepath.Join(c.Dir, "dovecot.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("write dovecot.conf: %w", err)
	}
	return path, nil
}

// passwdFile renders users in Dovecot's passwd-file format. Passwords that could break the
// colon-separated line are stored base64-encoded ({PLAIN.b64}); the rest as {PLAIN}.
func passwdFile(users []User) []byte {
	var b strings.Builder
	for _, u := range users {
		pass := "{PLAIN}" + u.Password
		if strings.ContainsAny(u.Password, ":\r\n\x00") || strings.TrimSpace(u.Password) != u.Password {
			pass = "{PLAIN.b64}" + base64.StdEncoding.EncodeToString([]byte(u.Password))
		}
		// Dovecot looks users up lower-cased (auth_username_format %Lu).
		fmt.Fprintf(&b, "%s:%s\n", strings.ToLower(u.Name), pass)
	}
	return []byte(b.String())
}

// quoteConf quotes a value for a Dovecot configuration file.
func quoteConf(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// relayAddr splits DovecotOptions.SubmissionRelay; empty means the dead relay port.
func relayAddr(relay string) (string, int, error) {
	if relay == "" {
		return Host, deadRelayPort, nil
	}
	host, port, err := net.SplitHostPort(relay)
	if err != nil {
		return "", 0, fmt.Errorf("SubmissionRelay %q: %w", relay, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 || host == "" || strings.ContainsAny(host, " \t\"#") {
		return "", 0, fmt.Errorf("SubmissionRelay %q is not host:port", relay)
	}
	return host, n, nil
}

// validUsers checks login names against Dovecot's default auth_username_chars (they also
// name the mailbox directories) and rejects duplicates, which Dovecot would silently shadow.
func validUsers(users []User) error {
	seen := map[string]bool{}
	for _, u := range users {
		if err := validUserName(u.Name); err != nil {
			return err
		}
		if u.Password == "" {
			return fmt.Errorf("user %q has an empty password", u.Name)
		}
		key := strings.ToLower(u.Name)
		if seen[key] {
			return fmt.Errorf("user %q is listed twice (names are case-insensitive)", u.Name)
		}
		seen[key] = true
	}
	return nil
}

func validUserName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid user name %q", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_@", r)
		if !ok {
			return fmt.Errorf("user name %q: Dovecot allows only letters, digits and .-_@", name)
		}
	}
	return nil
}
