package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/mail"
)

// smtpSend is the "SMTP Send Email" action.
type smtpSend struct{}

// NewSMTPSend returns the "SMTP Send Email" action: it composes a message (text, HTML,
// attachments, custom headers), sends it and optionally saves a copy in an IMAP Sent
// folder. Inside a loop it keeps one SMTP connection for all sends of the run.
func NewSMTPSend() Action { return smtpSend{} }

// smtpDefaultPorts are the ports used when the step gives none.
var smtpDefaultPorts = map[Security]string{SecurityTLS: "465", SecuritySTARTTLS: "587", SecurityNone: "25"}

// Schema implements Action.
func (smtpSend) Schema() Schema {
	params := ConnParams("smtp", true)
	for i := range params {
		switch params[i].Name {
		case "port":
			params[i].Default = ""
			params[i].Help = "Server port. Empty: 465 for tls, 587 for starttls, 25 for none."
		case "timeout":
			params[i].Help = "Limit for connecting, TLS, logging in and each SMTP command and write. The server's answer to the end of the message may take up to 10 minutes (RFC 5321)."
		}
	}
	params = append(params,
		Param{Name: "from", Label: "From", Kind: KindText, Required: true, Help: `Sender address, e.g. alice@example.com or "Alice Smith" <alice@example.com>.`},
		Param{Name: "to", Label: "To", Kind: KindText, Help: "Recipients, separated by commas, semicolons or new lines."},
		Param{Name: "cc", Label: "Cc", Kind: KindText, Help: "Copy recipients, shown to everyone."},
		Param{Name: "bcc", Label: "Bcc", Kind: KindText, Help: "Blind copy recipients: they get the message but appear in no header."},
		Param{Name: "reply_to", Label: "Reply-To", Kind: KindText, Help: "Where replies should go, when not to the sender."},
		Param{Name: "subject", Label: "Subject", Kind: KindText, Help: "Subject line; any language is fine."},
		Param{Name: "text_body", Label: "Text body", Kind: KindMultiline, Help: "Plain-text body."},
		Param{Name: "html_body", Label: "HTML body", Kind: KindMultiline, Help: "HTML body. With a text body too, mail programs show whichever they prefer."},
		Param{Name: "attachments", Label: "Attachments", Kind: KindFile, Help: "Files to attach, separated by new lines, commas or semicolons; patterns such as C:\\Reports\\*.pdf are allowed (a pattern matching nothing is an error)."},
		Param{Name: "headers", Label: "Extra headers", Kind: KindMultiline, Advanced: true, Help: `Additional header lines, one "Name: value" per line, e.g. X-Campaign: spring. From, To, Cc, Bcc, Date, Message-ID, MIME-Version and Content-* cannot be set here.`},
		Param{Name: "priority", Label: "Priority", Kind: KindEnum, Choices: []string{"", "high", "normal", "low"}, Help: "Sets X-Priority and Importance; empty sets neither."},
		Param{Name: "reply_to_loop_message", Label: "Reply to the loop's message", Kind: KindBool, Default: "false", Help: `Inside a message loop: make this a reply to the current message (In-Reply-To, References, and "Re: " + its subject when Subject is empty).`},
		Param{Name: "save_to_sent", Label: "Save a copy in Sent", Kind: KindBool, Default: "false", Help: "After sending, store the exact message, marked as read, in an IMAP folder of an open IMAP connection."},
		Param{Name: "sent_connection", Label: "IMAP connection for the copy", Kind: KindConnection, Default: DefaultIMAPConnection, Help: "Name of the IMAP connection (opened by IMAP Open) that receives the copy."},
		Param{Name: "sent_folder", Label: "Sent folder", Kind: KindText, Default: "Sent", Help: `Folder for the copy, e.g. Sent or "[Gmail]/Sent Mail"; created if missing.`},
	)
	return Schema{
		ID:    "smtp.send",
		Title: "SMTP Send Email",
		Group: "SMTP",
		Help: "Composes an email (text and/or HTML body, attachments, extra headers) and sends it through an SMTP server. " +
			"Bcc recipients get the message without appearing in it. Inside a loop the connection is kept and reused. " +
			"Optionally replies to the loop's current message and saves a copy in the IMAP Sent folder.",
		Params: params,
		Outputs: []Output{
			{Name: "SentMessageID", Help: "The Message-ID of the sent message, with angle brackets, e.g. <3f2a…@example.com>."},
			{Name: "SentRecipients", Help: "How many addresses (To, Cc and Bcc together) the message was sent to."},
		},
		Sessions: "smtp",
	}
}

// Run implements Action.
func (a smtpSend) Run(ctx context.Context, env *Env) error {
	cfg, err := smtpParseConn(env.Params)
	if err != nil {
		return err
	}
	msg, rcpts, err := smtpBuildMessage(ctx, env)
	if err != nil {
		return err
	}
	if env.SkipDryRun("send a message", "server", cfg.Addr(), "recipients", len(rcpts)) {
		return nil
	}

	// The Sent copy's connection is checked before anything is sent: failing now costs
	// nothing, failing after sending leaves the user with a sent mail and no copy.
	var sent *IMAPSession
	folder := env.Params.String("sent_folder")
	if env.Params.Bool("save_to_sent") {
		name := env.Params.String("sent_connection")
		if sent, err = Lookup[*IMAPSession](env.Sessions, name, "imap"); err != nil {
			return fmt.Errorf("save a copy in Sent: %w; nothing was sent", err)
		}
		if err := smtpEnsureFolder(ctx, sent, folder); err != nil {
			return fmt.Errorf("save a copy in Sent: IMAP folder %q on connection %q (%s): %w; nothing was sent", folder, name, sent.Server, err)
		}
	}

	composed, err := smtpComposeMessage(ctx, msg)
	if err != nil {
		return err
	}
	defer composed.remove()
	size := composed.size

	if err := a.transmit(ctx, env, cfg, msg.From.Address, rcpts, composed); err != nil {
		return err
	}
	id := "<" + msg.MessageID + ">"
	env.SetVar("SentMessageID", id)
	env.SetVar("SentRecipients", strconv.Itoa(len(rcpts)))
	env.Logger().Info("sent message", "message_id", id, "recipients", len(rcpts), "bytes", size, "server", cfg.Addr())

	if sent != nil {
		if err := smtpSaveSent(ctx, sent, folder, composed, msg.Date); err != nil {
			// Not wrapped (%v): a retry policy must not take this for a temporary failure
			// and send the message again.
			return fmt.Errorf("the message WAS sent to %d recipient(s) (Message-ID %s), do not send it again; but saving the copy in IMAP folder %q on %s failed: %v",
				len(rcpts), id, folder, sent.Server, err)
		}
		env.Logger().Info("saved a copy", "folder", folder, "connection", sent.Name)
	}
	return nil
}

// smtpParseConn reads the connection parameters; an empty port means the usual one of the
// security mode (465 tls, 587 starttls, 25 none).
func smtpParseConn(params Values) (ConnConfig, error) {
	vals := Values{}
	for k, v := range params {
		vals[k] = v
	}
	if vals.String("port") == "" {
		sec := Security(vals.String("security"))
		if sec == "" {
			sec = SecurityTLS
		}
		vals["port"] = smtpDefaultPorts[sec]
	}
	return ParseConn("smtp", vals)
}

// transmit sends the composed message over the run's kept connection (or a new one). A
// kept connection is used without a check first; when it turns out dead at MAIL FROM
// (the server closed it while idle, or answered 421), nothing was sent, so a new
// connection is opened and the message sent over it.
func (a smtpSend) transmit(ctx context.Context, env *Env, cfg ConnConfig, from string, rcpts []string, msg *smtpComposed) error {
	for attempt := 0; ; attempt++ {
		s, reused, err := smtpAcquire(ctx, env, cfg)
		if err != nil {
			return err
		}
		env.Logger().Debug("smtp connection", "server", s.Server, "reused", reused)
		err = a.transmitOnce(ctx, env, cfg, s, from, rcpts, msg)
		var stale *smtpStaleError
		if reused && attempt == 0 && errors.As(err, &stale) {
			env.Logger().Info("the kept SMTP connection no longer works; reconnecting", "server", s.Server, "error", stale.err.Error())
			continue
		}
		return err
	}
}

// transmitOnce sends the message over s, dropping s from the run when it broke.
func (smtpSend) transmitOnce(ctx context.Context, env *Env, cfg ConnConfig, s *SMTPSession, from string, rcpts []string, msg *smtpComposed) error {
	stop := s.watch(ctx)
	err := s.send(from, rcpts, msg, func(done int64) { env.ReportProgress(done, msg.size, "sending the message") })
	cancelled := stop()
	if cancelled || s.isBroken() {
		env.Sessions.Remove(smtpSessionKey(cfg))
		s.abandon()
	}
	// A cancel that came after the server accepted the message changes nothing: it was sent.
	if cancelled && err != nil {
		return fmt.Errorf("smtp send to %s cancelled (%w); if the message data had already gone out it may have been sent", s.Server, ctx.Err())
	}
	return err
}

// smtpBuildMessage reads the message parameters and returns the message and the envelope
// recipients (To, Cc and Bcc, each address once).
func smtpBuildMessage(ctx context.Context, env *Env) (*smtpMessage, []string, error) {
	p := env.Params
	var problems []string
	addrs := func(name, label string) []*mail.Address {
		l, err := smtpParseAddresses(label, p.String(name))
		if err != nil {
			problems = append(problems, err.Error())
		}
		return l
	}
	from := addrs("from", "From")
	m := &smtpMessage{To: addrs("to", "To"), Cc: addrs("cc", "Cc"), ReplyTo: addrs("reply_to", "Reply-To"),
		Subject: p.String("subject"), Text: p.String("text_body"), HTML: p.String("html_body"),
		Priority: p.String("priority"), Date: time.Now()}
	bcc := addrs("bcc", "Bcc")
	if len(from) > 1 {
		problems = append(problems, `"From" must be one address`)
	}
	if len(problems) > 0 {
		return nil, nil, fmt.Errorf("SMTP Send Email: %s", strings.Join(problems, "; "))
	}
	if len(from) == 0 {
		return nil, nil, errors.New(`SMTP Send Email: "From" is required`)
	}
	m.From = from[0]
	var rcpts []string
	seen := map[string]bool{}
	for _, l := range [][]*mail.Address{m.To, m.Cc, bcc} {
		for _, a := range l {
			if k := strings.ToLower(a.Address); !seen[k] {
				seen[k] = true
				rcpts = append(rcpts, a.Address)
			}
		}
	}
	if len(rcpts) == 0 {
		return nil, nil, errors.New(`SMTP Send Email: no recipient: fill in "To", "Cc" or "Bcc"`)
	}

	setBy := map[string]string{}
	if m.Subject != "" || p.Bool("reply_to_loop_message") {
		setBy["Subject"] = "Subject"
	}
	if len(m.ReplyTo) > 0 {
		setBy["Reply-To"] = "Reply-To"
	}
	if m.Priority != "" {
		setBy["X-Priority"], setBy["Importance"] = "Priority", "Priority"
	}
	if p.Bool("reply_to_loop_message") {
		setBy["In-Reply-To"], setBy["References"] = "Reply to the loop's message", "Reply to the loop's message"
	}
	var err error
	if m.Extra, err = smtpParseHeaders(p.String("headers"), setBy); err != nil {
		return nil, nil, err
	}
	if m.Attachments, err = smtpExpandAttachments(p.List("attachments")); err != nil {
		return nil, nil, err
	}
	if p.Bool("reply_to_loop_message") {
		if err := smtpApplyReply(ctx, env, m); err != nil {
			return nil, nil, err
		}
	}
	m.MessageID = smtpNewMessageID(m.From)
	return m, rcpts, nil
}

// smtpApplyReply makes m a reply to the loop's current message, reading only its header.
func smtpApplyReply(ctx context.Context, env *Env, m *smtpMessage) error {
	cur := env.Sessions.Current()
	if cur == nil || cur.Open == nil {
		return errors.New(`"Reply to the loop's message" is on, but this step is not inside a loop over messages: put it in a loop's body or turn the option off`)
	}
	rc, err := cur.Open(ctx)
	if err != nil {
		return fmt.Errorf("reply to the loop's message: %w", err)
	}
	id, refs, subject, err := smtpReplyHeaders(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("reply to the loop's message: %w", err)
	}
	if id == "" {
		env.Logger().Warn("the message replied to has no Message-ID; the reply cannot name it (no In-Reply-To)")
	}
	m.InReplyTo, m.References = id, refs
	if m.Subject == "" {
		m.Subject = smtpReplySubject(subject)
	}
	return nil
}

// smtpEnsureFolder checks that folder exists on the IMAP connection, creating it when
// missing. It runs before sending, so that an unusable connection or folder stops the step
// while nothing has been sent yet; it also spares the APPEND a TRYCREATE refusal, which
// go-imap v2.0.0-beta.8 answers by closing the connection when the message is larger than
// 4 KiB (a refused synchronizing literal poisons its encoder).
func smtpEnsureFolder(ctx context.Context, s *IMAPSession, folder string) error {
	defer s.Watch(ctx)()
	list, err := s.Client.List("", folder, nil).Collect()
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	for _, l := range list {
		if l.Mailbox == folder || strings.EqualFold(folder, "INBOX") && strings.EqualFold(l.Mailbox, "INBOX") {
			return nil
		}
	}
	if err := s.Client.Create(folder, nil).Wait(); err != nil {
		return fmt.Errorf("the folder does not exist and creating it failed: %w", err)
	}
	return nil
}

// smtpSaveSent appends the composed message to folder with \Seen.
func smtpSaveSent(ctx context.Context, s *IMAPSession, folder string, msg *smtpComposed, date time.Time) error {
	defer s.Watch(ctx)()
	err := smtpAppend(s, folder, msg, date)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("cancelled (%w)", ctx.Err())
	}
	return err
}

// smtpAppend streams the composed message into folder with APPEND.
func smtpAppend(s *IMAPSession, folder string, msg *smtpComposed, date time.Time) error {
	f, err := msg.open()
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := s.Client.Append(folder, msg.size, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: date})
	if _, err := io.Copy(cmd, f); err != nil {
		cmd.Close()
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err = cmd.Wait()
	return err
}
