package testmail

import (
	"bytes"
	"errors"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// IMAPMemOptions configures StartIMAPMemServer; each zero field takes the default it
// documents.
type IMAPMemOptions struct {
	// Security is "none" (plaintext, login allowed without TLS), "starttls" (plaintext
	// with STARTTLS; login only after it) or "tls" (implicit TLS). Default "starttls".
	Security string
	// Certs is the certificate presented in "starttls" and "tls" modes; default a fresh one
	// (NewCerts in t.TempDir()).
	Certs *Certs
	// Users maps user names to passwords. Every user gets an INBOX. A user with password ""
	// cannot log in with a password (LOGIN, AUTHENTICATE PLAIN) but can with a token.
	Users map[string]string
	// Tokens, when set, makes the server offer AUTHENTICATE XOAUTH2 and OAUTHBEARER and
	// check access tokens with it; the token's user must be one of Users.
	Tokens TokenCheck
	// Scope is the scope named in the OAuth error challenge; default "https://mail.test/imap".
	Scope string
}

// IMAPMemServer is an in-process go-imap v2 server (imapserver with imapmemserver's
// in-memory mailboxes) on 127.0.0.1.
type IMAPMemServer struct {
	Endpoint

	opts  IMAPMemOptions
	mem   *imapmemserver.Server
	users map[string]*imapMemUser // read-only after start
}

type imapMemUser struct {
	user     *imapmemserver.User
	password string
}

// StartIMAPMemServer starts an in-memory IMAP server on 127.0.0.1 and a free port, stopped
// in t.Cleanup.
func StartIMAPMemServer(t testing.TB, opts IMAPMemOptions) *IMAPMemServer {
	t.Helper()
	if opts.Security == "" {
		opts.Security = "starttls"
	}
	if opts.Scope == "" {
		opts.Scope = "https://mail.test/imap"
	}
	s := &IMAPMemServer{
		Endpoint: Endpoint{Host: Host, Security: opts.Security},
		opts:     opts,
		mem:      imapmemserver.New(),
		users:    make(map[string]*imapMemUser),
	}
	for name, pass := range opts.Users {
		// The memserver's own Login compares passwords; a random one blocks password
		// logins of token-only users.
		memPass := pass
		if memPass == "" {
			memPass = "\x00no password login\x00"
		}
		u := imapmemserver.NewUser(name, memPass)
		if err := u.Create("INBOX", nil); err != nil {
			t.Fatalf("testmail: create INBOX of %s: %v", name, err)
		}
		s.mem.AddUser(u)
		s.users[name] = &imapMemUser{user: u, password: pass}
	}

	srvOpts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &imapMemSession{srv: s}, nil, nil
		},
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {},
			imap.CapIMAP4rev2: {},
		},
		Logger: newInprocLogger(t, "imap server"),
	}
	switch opts.Security {
	case "none":
		srvOpts.InsecureAuth = true
	case "starttls", "tls":
		if opts.Certs == nil {
			opts.Certs = NewCerts(t, t.TempDir())
		}
		s.Certs = opts.Certs
		srvOpts.TLSConfig = opts.Certs.ServerTLS()
	default:
		t.Fatalf("testmail: unknown IMAP security %q (want none, starttls or tls)", opts.Security)
	}
	srv := imapserver.New(srvOpts)
	s.Port = serveInProc(t, "imap", opts.Security, srvOpts.TLSConfig, srv.Serve, srv.Close)
	return s
}

// Append stores msg, byte for byte, in mailbox of user (created if missing) and returns its
// UID. It fails the test when user is unknown.
func (s *IMAPMemServer) Append(t testing.TB, user, mailbox string, msg []byte) imap.UID {
	t.Helper()
	u, ok := s.users[user]
	if !ok {
		t.Fatalf("testmail: IMAP append: unknown user %q", user)
	}
	if err := u.user.Create(mailbox, nil); err != nil {
		var imapErr *imap.Error
		if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeAlreadyExists {
			t.Fatalf("testmail: IMAP append: create %q: %v", mailbox, err)
		}
	}
	data, err := u.user.Append(mailbox, imapLiteral{bytes.NewReader(msg)}, &imap.AppendOptions{})
	if err != nil {
		t.Fatalf("testmail: IMAP append to %q of %s: %v", mailbox, user, err)
	}
	return data.UID
}

// imapLiteral is a byte slice as an imap.LiteralReader.
type imapLiteral struct{ *bytes.Reader }

func (l imapLiteral) Size() int64 { return l.Reader.Size() }

// imapMemSession is an imapmemserver user session with its own login: LOGIN and
// AUTHENTICATE PLAIN check Users, XOAUTH2 and OAUTHBEARER check Tokens.
type imapMemSession struct {
	*imapmemserver.UserSession // nil until logged in

	srv *IMAPMemServer
}

var _ imapserver.SessionSASL = (*imapMemSession)(nil)
var _ imapserver.SessionIMAP4rev2 = (*imapMemSession)(nil)

// Close implements imapserver.Session.
func (sess *imapMemSession) Close() error {
	if sess.UserSession == nil {
		return nil
	}
	return sess.UserSession.Close()
}

// Login implements imapserver.Session.
func (sess *imapMemSession) Login(username, password string) error {
	u, ok := sess.srv.users[username]
	if !ok || u.password == "" {
		return imapserver.ErrAuthFailed
	}
	if err := u.user.Login(username, password); err != nil {
		return err
	}
	sess.UserSession = imapmemserver.NewUserSession(u.user)
	return nil
}

// loginToken starts the session of user after a token was accepted.
func (sess *imapMemSession) loginToken(user string) error {
	u, ok := sess.srv.users[user]
	if !ok {
		return imapserver.ErrAuthFailed
	}
	sess.UserSession = imapmemserver.NewUserSession(u.user)
	return nil
}

// AuthenticateMechanisms implements imapserver.SessionSASL.
func (sess *imapMemSession) AuthenticateMechanisms() []string {
	mechs := []string{sasl.Plain}
	if sess.srv.opts.Tokens != nil {
		mechs = append(mechs, MechXOAuth2, MechOAuthBearer)
	}
	return mechs
}

// Authenticate implements imapserver.SessionSASL.
func (sess *imapMemSession) Authenticate(mech string) (sasl.Server, error) {
	opts := sess.srv.opts
	var server sasl.Server
	switch {
	case mech == sasl.Plain:
		server = sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return &imap.Error{
					Type: imap.StatusResponseTypeNo,
					Code: imap.ResponseCodeAuthorizationFailed,
					Text: "SASL identity not supported",
				}
			}
			return sess.Login(user, pass)
		})
	case mech == MechXOAuth2 && opts.Tokens != nil:
		server = NewXOAuth2Server(opts.Tokens, opts.Scope, sess.loginToken)
	case mech == MechOAuthBearer && opts.Tokens != nil:
		server = NewOAuthBearerServer(opts.Tokens, opts.Scope, sess.loginToken)
	default:
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
	}
	return saslErrorMapper{Server: server, mapErr: imapAuthError}, nil
}

// imapAuthError turns the SASL servers' errors into IMAP replies: imapserver answers errors
// that are not *imap.Error with "NO [SERVERBUG]".
func imapAuthError(err error) error {
	var imapErr *imap.Error
	var protoErr *SASLProtocolError
	var rejected *TokenRejectedError
	switch {
	case errors.As(err, &imapErr):
		return imapErr
	case errors.As(err, &protoErr):
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: protoErr.Error()}
	case errors.As(err, &rejected):
		return imapserver.ErrAuthFailed
	default:
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: err.Error()}
	}
}
