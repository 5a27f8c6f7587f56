package actions

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
)

// POP3AuthError is a POP3 server's -ERR answer to AUTH (or to USER/PASS).
type POP3AuthError struct {
	Mechanism string // "XOAUTH2", "PLAIN", …, or "USER/PASS"
	Text      string // the server's text after "-ERR "
}

// Error implements error.
func (e *POP3AuthError) Error() string {
	if e.Mechanism == "USER/PASS" {
		return "pop3 USER/PASS login refused: " + e.Text
	}
	return fmt.Sprintf("pop3 AUTH %s refused: %s", e.Mechanism, e.Text)
}

// pop3MaxCommand is the longest POP3 command line, CRLF included (RFC 2449 section 4).
const pop3MaxCommand = 255

// pop3MaxAuthRounds bounds the challenges of one AUTH exchange.
const pop3MaxAuthRounds = 8

// POP3Authenticate logs in with SASL AUTH (RFC 5034). The initial response goes on the
// AUTH line ("=" when empty) unless the line would exceed 255 octets, in which case it is
// sent after the server's empty "+ " continuation, as RFC 5034 section 4 requires (OAuth
// access tokens are often that long). Each "+ <base64>" challenge is passed to mech.Next and
// its answer sent back base64-encoded, an empty answer as an empty line; when mech.Next
// fails the exchange is cancelled with "*". A -ERR answer gives a *POP3AuthError with the
// server's text; use OAuthLoginError for a user-facing message.
func POP3Authenticate(c *POP3Client, mech sasl.Client) error {
	name, ir, err := mech.Start()
	if err != nil {
		return fmt.Errorf("pop3 AUTH: %w", err)
	}
	cmd := "AUTH " + name
	var pending []byte // initial response still to send after an empty continuation
	if ir != nil {
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		if len(cmd)+1+len(enc)+2 <= pop3MaxCommand {
			cmd += " " + enc
		} else {
			pending = ir
		}
	}
	line, err := c.command(cmd)
	for round := 0; ; round++ {
		if err != nil {
			return fmt.Errorf("pop3 AUTH %s: %w", name, err)
		}
		kind, text, err := pop3AuthReply(line)
		if err != nil {
			return fmt.Errorf("pop3 AUTH %s: %w", name, c.fail(err))
		}
		switch kind {
		case pop3ReplyOK:
			return nil
		case pop3ReplyErr:
			return &POP3AuthError{Mechanism: name, Text: text}
		}
		if round >= pop3MaxAuthRounds {
			return pop3CancelAuth(c, name, errors.New("too many challenges"))
		}
		var resp []byte
		if pending != nil {
			if text != "" {
				return pop3CancelAuth(c, name, errors.New("server sent a challenge instead of asking for the initial response"))
			}
			resp, pending = pending, nil
		} else {
			challenge, derr := base64.StdEncoding.DecodeString(text)
			if derr != nil {
				return pop3CancelAuth(c, name, fmt.Errorf("malformed challenge: %w", derr))
			}
			resp, err = mech.Next(challenge)
			if err != nil {
				return pop3CancelAuth(c, name, err)
			}
		}
		if err = c.writeLine(base64.StdEncoding.EncodeToString(resp)); err == nil {
			line, err = c.readLine()
		}
	}
}

// pop3CancelAuth cancels an AUTH exchange with "*" and reads the server's answer, so that
// the connection stays in step.
func pop3CancelAuth(c *POP3Client, name string, cause error) error {
	if err := c.writeLine("*"); err != nil {
		return fmt.Errorf("pop3 AUTH %s: %w (cancelling: %v)", name, cause, err)
	}
	line, err := c.readLine()
	if err != nil {
		return fmt.Errorf("pop3 AUTH %s: %w (cancelling: %v)", name, cause, err)
	}
	kind, text, err := pop3AuthReply(line)
	switch {
	case err != nil:
		return fmt.Errorf("pop3 AUTH %s: %w (cancelling: %v)", name, cause, c.fail(err))
	case kind == pop3ReplyErr:
		return fmt.Errorf("pop3 AUTH %s cancelled: %w (server: %s)", name, cause, text)
	default:
		return fmt.Errorf("pop3 AUTH %s cancelled: %w (unexpected server answer to \"*\")", name, cause)
	}
}

type pop3ReplyKind int

const (
	pop3ReplyOK pop3ReplyKind = iota
	pop3ReplyErr
	pop3ReplyCont
)

// pop3AuthReply classifies one line read during AUTH: +OK, -ERR (text is the server's
// text) or a "+" continuation (text is the base64 challenge).
func pop3AuthReply(line string) (pop3ReplyKind, string, error) {
	switch {
	case pop3IsOK(line):
		return pop3ReplyOK, pop3Text(line), nil
	case pop3IsErr(line):
		return pop3ReplyErr, pop3Text(line), nil
	case line == "+" || strings.HasPrefix(line, "+ "):
		return pop3ReplyCont, strings.TrimSpace(line[1:]), nil
	}
	return 0, "", fmt.Errorf("unexpected response %q", clip(line))
}
