package actions

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-smtp"
)

// This file runs one SMTP mail transaction on an SMTPSession and explains its failures.

// smtpRecipientsError lists the recipients the server refused; the transaction was then
// aborted, so nobody got the message.
type smtpRecipientsError struct {
	Server  string
	Refused []string // "<addr>: 550 5.1.1 reply"
	replies []error  // the server's replies, in the same order
}

// Unwrap returns a permanent (5xx) refusal when there is one, else the first reply: the
// error is temporary (worth retrying) only when every refusal was.
func (e *smtpRecipientsError) Unwrap() error {
	for _, r := range e.replies {
		var se *smtp.SMTPError
		if errors.As(r, &se) && se.Code >= 500 {
			return r
		}
	}
	if len(e.replies) > 0 {
		return e.replies[0]
	}
	return nil
}

func (e *smtpRecipientsError) Error() string {
	return fmt.Sprintf("smtp %s refused %d recipient(s), so the message was sent to nobody: %s; fix or remove those addresses",
		e.Server, len(e.Refused), strings.Join(e.Refused, "; "))
}

// smtpStaleError is a connection that failed at MAIL FROM, the first command of a
// transaction (closed by the server, or a 421 reply): nothing was sent, so the message can
// go out over a new connection.
type smtpStaleError struct {
	server string
	err    error
}

func (e *smtpStaleError) Error() string {
	return fmt.Sprintf("smtp %s: the connection failed at MAIL FROM (%s); nothing was sent", e.server, smtpSMTPErrorText(e.err))
}
func (e *smtpStaleError) Unwrap() error { return e.err }

// smtpSMTPErrorText formats a server reply.
func smtpSMTPErrorText(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		s := fmt.Sprintf("%d", se.Code)
		if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
			s += fmt.Sprintf(" %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		return s + " " + se.Message
	}
	return err.Error()
}

// smtpReplyError shows a server reply as "554 5.0.0 text" and unwraps to it, so that
// Temporary can tell a 4xx reply from a 5xx one.
type smtpReplyError struct{ err error }

func (e smtpReplyError) Error() string { return smtpSMTPErrorText(e.err) }
func (e smtpReplyError) Unwrap() error { return e.err }

func smtpReply(err error) error { return smtpReplyError{err} }

// isSMTPReply reports whether err is a reply of the server that leaves the connection
// usable (not 421, which announces that the server closes it).
func isSMTPReply(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code != 421
}

// send runs one mail transaction: MAIL FROM, RCPT TO for every recipient (any refusal
// aborts the transaction with RSET and names the refused addresses), DATA streamed from
// the composed message. A failure that leaves the connection unusable marks it broken.
func (s *SMTPSession) send(from string, rcpts []string, msg *smtpComposed, progress func(done int64)) (err error) {
	c := s.Client
	size := msg.size
	if limit, ok := c.MaxMessageSize(); ok && limit > 0 && size > int64(limit) {
		return fmt.Errorf("smtp %s: the message is %d bytes but the server accepts at most %d: send smaller attachments", s.Server, size, limit)
	}
	opts := &smtp.MailOptions{Size: size}
	utf8 := !smtpIsASCII(from)
	for _, r := range rcpts {
		utf8 = utf8 || !smtpIsASCII(r)
	}
	opts.UTF8 = utf8
	if err := s.note(c.Mail(from, opts)); err != nil {
		if !isSMTPReply(err) {
			return &smtpStaleError{server: s.Server, err: err}
		}
		_ = c.Reset()
		return fmt.Errorf("smtp %s refused the sender <%s>: %w", s.Server, from, smtpReply(err))
	}
	var refused []string
	var replies []error
	for _, r := range rcpts {
		if err := s.note(c.Rcpt(r, nil)); err != nil {
			if !isSMTPReply(err) {
				return fmt.Errorf("smtp %s: RCPT TO:<%s>: %w; nothing was sent", s.Server, r, err)
			}
			refused = append(refused, fmt.Sprintf("<%s>: %s", r, smtpSMTPErrorText(err)))
			replies = append(replies, err)
		}
	}
	if len(refused) > 0 {
		_ = s.note(c.Reset())
		return &smtpRecipientsError{Server: s.Server, Refused: refused, replies: replies}
	}
	f, err := msg.open()
	if err != nil {
		_ = c.Reset()
		return err
	}
	defer f.Close()
	w, err := c.Data()
	if err = s.note(err); err != nil {
		if isSMTPReply(err) {
			_ = c.Reset()
		}
		return fmt.Errorf("smtp %s refused DATA: %w; nothing was sent", s.Server, smtpReply(err))
	}
	if _, err := io.Copy(w, &smtpProgressReader{r: f, report: progress}); err != nil {
		s.note(errors.New("broken during DATA"))
		return fmt.Errorf("smtp %s: sending the message data failed: %w; the message was not sent", s.Server, err)
	}
	s.conn.limit.Store(int64(c.SubmissionTimeout))
	err = s.note(w.Close())
	s.conn.limit.Store(int64(c.CommandTimeout))
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return fmt.Errorf("smtp %s rejected the message: %w; it was not sent", s.Server, smtpReply(err))
		}
		// Not wrapped (%v): this must not look temporary, or a retry policy would send the
		// message a second time.
		return fmt.Errorf("smtp %s: the whole message went out but the server's answer did not arrive (%v): it may or may not have been sent; check the recipient's mailbox or the Sent folder before sending again", s.Server, err)
	}
	return nil
}

// smtpProgressReader reports the bytes read, about every megabyte.
type smtpProgressReader struct {
	r      io.Reader
	report func(done int64)
	done   int64
	last   int64
}

func (p *smtpProgressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.report != nil && (p.done-p.last >= 1<<20 || (err == io.EOF && p.done != p.last)) {
		p.last = p.done
		p.report(p.done)
	}
	return n, err
}
