package testmail

import (
	"crypto/subtle"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPOptions configures StartSMTPServer; each zero field takes the default it documents.
type SMTPOptions struct {
	// Security is "none" (plaintext, AUTH allowed without TLS), "starttls" (plaintext with
	// STARTTLS; AUTH only after it) or "tls" (implicit TLS). Default "starttls".
	Security string
	// Certs is the certificate presented in "starttls" and "tls" modes; default a fresh one
	// (NewCerts in t.TempDir()).
	Certs *Certs
	// Users maps user names to passwords for AUTH PLAIN; PLAIN is offered when not empty.
	Users map[string]string
	// Tokens, when set, makes the server offer XOAUTH2 and OAUTHBEARER and check access
	// tokens with it.
	Tokens TokenCheck
	// Scope is the scope named in the OAuth error challenge; default "https://mail.test/smtp".
	Scope string
	// RequireAuth makes MAIL FROM fail with 530 until the client authenticated.
	RequireAuth bool
	// MaxLineLength is the longest line the server accepts (commands and message data);
	// default go-smtp's 2000, a negative value means no limit.
	MaxLineLength int
	// MaxMessageBytes limits the message size (552 when exceeded); 0 means no limit.
	MaxMessageBytes int64
}

// SMTPMessage is a message the SMTPServer accepted.
type SMTPMessage struct {
	From     string   // the MAIL FROM address
	To       []string // the RCPT TO addresses, in order
	Data     []byte   // the message as received after DATA, dot-unstuffing undone, CRLFs kept
	AuthUser string   // the user the session authenticated as, "" if none
}

// SMTPServer is an in-process go-smtp server on 127.0.0.1 that records what it accepts.
// It is safe for concurrent use.
type SMTPServer struct {
	Endpoint

	opts SMTPOptions
	srv  *smtp.Server

	mu       sync.Mutex
	messages []SMTPMessage
	failData *smtp.SMTPError // the next DATA fails with it
	failRcpt *smtp.SMTPError // the next RCPT fails with it
}

// StartSMTPServer starts an SMTP server on 127.0.0.1 and a free port, stopped in t.Cleanup.
func StartSMTPServer(t testing.TB, opts SMTPOptions) *SMTPServer {
	t.Helper()
	if opts.Security == "" {
		opts.Security = "starttls"
	}
	if opts.Scope == "" {
		opts.Scope = "https://mail.test/smtp"
	}
	s := &SMTPServer{Endpoint: Endpoint{Host: Host, Security: opts.Security}, opts: opts}

	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpRecSession{srv: s}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = opts.MaxMessageBytes
	switch {
	case opts.MaxLineLength > 0:
		srv.MaxLineLength = opts.MaxLineLength
	case opts.MaxLineLength < 0:
		srv.MaxLineLength = 0
	}
	srv.ErrorLog = newInprocLogger(t, "smtp server")

	switch opts.Security {
	case "none":
		srv.AllowInsecureAuth = true
	case "starttls", "tls":
		if opts.Certs == nil {
			opts.Certs = NewCerts(t, t.TempDir())
		}
		s.Certs = opts.Certs
		srv.TLSConfig = opts.Certs.ServerTLS()
	default:
		t.Fatalf("testmail: unknown SMTP security %q (want none, starttls or tls)", opts.Security)
	}
	s.srv = srv
	s.Port = serveInProc(t, "smtp", opts.Security, srv.TLSConfig, srv.Serve, srv.Close)
	return s
}

// Messages returns a copy of the messages accepted so far, oldest first.
func (s *SMTPServer) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SMTPMessage, len(s.messages))
	for i, m := range s.messages {
		m.To = append([]string(nil), m.To...)
		m.Data = append([]byte(nil), m.Data...)
		out[i] = m
	}
	return out
}

// FailNext makes the next DATA fail with code (4xx temporary, 5xx permanent) and msg; the
// message is then not recorded. It fails once.
func (s *SMTPServer) FailNext(code int, msg string) {
	s.mu.Lock()
	s.failData = smtpFailure(code, msg)
	s.mu.Unlock()
}

// FailNextRcpt makes the next RCPT TO fail with code and msg. It fails once.
func (s *SMTPServer) FailNextRcpt(code int, msg string) {
	s.mu.Lock()
	s.failRcpt = smtpFailure(code, msg)
	s.mu.Unlock()
}

// smtpFailure builds the reply of FailNext; the enhanced code is the generic X.0.0.
func smtpFailure(code int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: msg}
}

// takeFailure returns and clears *slot.
func (s *SMTPServer) takeFailure(slot **smtp.SMTPError) *smtp.SMTPError {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := *slot
	*slot = nil
	return f
}

// smtpRecSession is one SMTP session of the SMTPServer.
type smtpRecSession struct {
	srv      *SMTPServer
	authUser string
	from     string
	to       []string
}

// AuthMechanisms implements smtp.AuthSession.
func (ss *smtpRecSession) AuthMechanisms() []string {
	var mechs []string
	if len(ss.srv.opts.Users) > 0 {
		mechs = append(mechs, sasl.Plain)
	}
	if ss.srv.opts.Tokens != nil {
		mechs = append(mechs, MechXOAuth2, MechOAuthBearer)
	}
	return mechs
}

// Auth implements smtp.AuthSession.
func (ss *smtpRecSession) Auth(mech string) (sasl.Server, error) {
	opts := ss.srv.opts
	login := func(user string) error {
		ss.authUser = user
		return nil
	}
	var server sasl.Server
	switch {
	case mech == sasl.Plain && len(opts.Users) > 0:
		server = sasl.NewPlainServer(func(identity, user, pass string) error {
			want, ok := opts.Users[user]
			if (identity != "" && identity != user) || !ok || want == "" ||
				subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
				return smtp.ErrAuthFailed
			}
			return login(user)
		})
	case mech == MechXOAuth2 && opts.Tokens != nil:
		server = NewXOAuth2Server(opts.Tokens, opts.Scope, login)
	case mech == MechOAuthBearer && opts.Tokens != nil:
		server = NewOAuthBearerServer(opts.Tokens, opts.Scope, login)
	default:
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return saslErrorMapper{Server: server, mapErr: smtpAuthError}, nil
}

// smtpAuthError turns the SASL servers' errors into SMTP replies: go-smtp answers any other
// error with 454 (temporary), which would hide a refused login.
func smtpAuthError(err error) error {
	var smtpErr *smtp.SMTPError
	var protoErr *SASLProtocolError
	var rejected *TokenRejectedError
	switch {
	case errors.As(err, &smtpErr):
		return smtpErr
	case errors.As(err, &protoErr):
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: protoErr.Error()}
	case errors.As(err, &rejected):
		return smtp.ErrAuthFailed
	default:
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: err.Error()}
	}
}

// Mail implements smtp.Session.
func (ss *smtpRecSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.srv.opts.RequireAuth && ss.authUser == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.from = from
	ss.to = nil
	return nil
}

// Rcpt implements smtp.Session.
func (ss *smtpRecSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := ss.srv.takeFailure(&ss.srv.failRcpt); f != nil {
		return f
	}
	ss.to = append(ss.to, to)
	return nil
}

// Data implements smtp.Session.
func (ss *smtpRecSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if f := ss.srv.takeFailure(&ss.srv.failData); f != nil {
		return f
	}
	ss.srv.mu.Lock()
	ss.srv.messages = append(ss.srv.messages, SMTPMessage{
		From:     ss.from,
		To:       append([]string(nil), ss.to...),
		Data:     data,
		AuthUser: ss.authUser,
	})
	ss.srv.mu.Unlock()
	return nil
}

// Reset implements smtp.Session.
func (ss *smtpRecSession) Reset() {
	ss.from = ""
	ss.to = nil
}

// Logout implements smtp.Session.
func (ss *smtpRecSession) Logout() error { return nil }

// inprocLogger sends a server's error log to t.Logf until the test's cleanup stops it:
// t.Logf after the test ended would panic, and connection goroutines may outlive Close.
type inprocLogger struct {
	mu     sync.Mutex
	t      testing.TB
	prefix string
	closed bool
}

func newInprocLogger(t testing.TB, prefix string) *inprocLogger {
	l := &inprocLogger{t: t, prefix: prefix}
	// Registered before the server's own cleanup, so it runs after it (LIFO).
	t.Cleanup(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
	})
	return l
}

func (l *inprocLogger) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Logf(l.prefix+": "+format, v...)
	}
}

func (l *inprocLogger) Println(v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Log(append([]any{l.prefix + ":"}, v...)...)
	}
}
