package actions

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	nettextproto "net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// This file reads SMTP Send Email's parameters into a message: addresses, extra headers,
// attachments, and the header of the message replied to.

// smtpHeaderField is one "Name: value" line of the "headers" parameter.
type smtpHeaderField struct{ Name, Value string }

// smtpSplitAddresses splits a list of addresses on commas, semicolons and line breaks
// that are outside quoted display names and angle brackets.
func smtpSplitAddresses(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, inAngle, escaped := false, false, false
	flush := func() {
		if item := strings.TrimSpace(cur.String()); item != "" {
			out = append(out, item)
		}
		cur.Reset()
	}
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case inQuote && r == '\\':
			escaped = true
		case r == '"' && !inAngle:
			inQuote = !inQuote
		case r == '<' && !inQuote:
			inAngle = true
		case r == '>' && !inQuote:
			inAngle = false
		case !inQuote && !inAngle && (r == ',' || r == ';' || r == '\n' || r == '\r'):
			flush()
			continue
		}
		cur.WriteRune(r)
	}
	flush()
	return out
}

// smtpParseAddresses parses the addresses of the parameter labelled label.
func smtpParseAddresses(label, s string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, item := range smtpSplitAddresses(s) {
		a, err := mail.ParseAddress(item)
		if err != nil {
			return nil, fmt.Errorf("%q: %q is not an email address (%v): write it as name@example.com or \"Name\" <name@example.com>", label, item, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// smtpRefusedHeaders are header fields the "headers" parameter may not set: the step
// writes them itself (or, for Bcc, never).
var smtpRefusedHeaders = []string{"From", "To", "Cc", "Bcc", "Date", "Message-Id", "Mime-Version"}

// smtpParseHeaders parses the "headers" parameter: one "Name: value" per line; a line
// starting with a space or tab continues the previous value. setByParams maps header names
// (canonical) that other parameters set to those parameters' labels.
func smtpParseHeaders(raw string, setByParams map[string]string) ([]smtpHeaderField, error) {
	var fields []smtpHeaderField
	for i, line := range strings.Split(strings.ReplaceAll(raw, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, fmt.Errorf(`"Headers" line %d starts with a space but continues no header: write "Name: value"`, i+1)
			}
			fields[len(fields)-1].Value += " " + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf(`"Headers" line %d %q is not "Name: value"`, i+1, line)
		}
		for _, r := range name {
			if r < '!' || r > '~' || r == ':' {
				return nil, fmt.Errorf(`"Headers" line %d: header name %q may only hold printable ASCII letters without spaces, such as X-Campaign`, i+1, name)
			}
		}
		canon := nettextproto.CanonicalMIMEHeaderKey(name)
		if slices.Contains(smtpRefusedHeaders, canon) || strings.HasPrefix(canon, "Content-") {
			return nil, fmt.Errorf(`"Headers" line %d: %s cannot be set here: the step writes it itself (use the From, To, Cc and Bcc parameters for addresses)`, i+1, name)
		}
		if label, ok := setByParams[canon]; ok {
			return nil, fmt.Errorf(`"Headers" line %d: %s is already set by the parameter %q: set it in one place only`, i+1, name, label)
		}
		fields = append(fields, smtpHeaderField{Name: name, Value: strings.TrimSpace(value)})
	}
	return fields, nil
}

// smtpExpandAttachments turns the "attachments" items (files and globs) into files with
// their media types. A glob that matches nothing, a missing file or a folder is an error
// naming the item.
func smtpExpandAttachments(items []string) ([]smtpAttachment, error) {
	var out []smtpAttachment
	seen := map[string]bool{}
	for _, item := range items {
		paths := []string{item}
		// A name that exists is a file, even when it holds glob characters ("Q[1].pdf").
		if _, statErr := os.Stat(item); statErr != nil && strings.ContainsAny(item, "*?[") {
			m, err := filepath.Glob(item)
			if err != nil {
				return nil, fmt.Errorf("attachment pattern %q is not a valid glob: %w", item, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("attachment pattern %q matches no file: check the folder and the pattern", item)
			}
			slices.Sort(m)
			paths = m
		}
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("attachment %q: %w", p, err)
			}
			if !fi.Mode().IsRegular() {
				if len(paths) > 1 {
					continue // a glob also matching folders attaches the files only
				}
				return nil, fmt.Errorf("attachment %q is not a regular file (a folder?): name files, or use a pattern such as %s", p, filepath.Join(p, "*"))
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			ct, err := smtpMediaType(p)
			if err != nil {
				return nil, err
			}
			out = append(out, smtpAttachment{Path: p, Name: filepath.Base(p), ContentType: ct})
		}
	}
	return out, nil
}

// smtpMediaType returns the media type of a file: by its extension, else sniffed from its
// first 512 bytes. A charset other than UTF-8 or US-ASCII is dropped (the attachment goes
// base64 encoded, byte for byte, and the composer only accepts those two).
func smtpMediaType(path string) (string, error) {
	ct := mime.TypeByExtension(filepath.Ext(path))
	if ct == "" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("attachment %q: %w", path, err)
		}
		head := make([]byte, 512)
		n, err := io.ReadFull(f, head)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return "", fmt.Errorf("attachment %q: %w", path, err)
		}
		ct = http.DetectContentType(head[:n])
	}
	t, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "application/octet-stream", nil
	}
	if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		delete(params, "charset")
	}
	return mime.FormatMediaType(t, params), nil
}

// smtpNewMessageID returns a random message ID (without angle brackets) in the domain of
// the From address.
func smtpNewMessageID(from *mail.Address) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	domain := "localhost"
	if at := strings.LastIndexByte(from.Address, '@'); at >= 0 && at+1 < len(from.Address) {
		domain = from.Address[at+1:]
	}
	if !smtpIsASCII(domain) || strings.ContainsAny(domain, "<>[] \t\"") {
		domain = "mailwright.invalid"
	}
	return hex.EncodeToString(b[:]) + "@" + domain
}

// smtpIsASCII reports whether s is 7-bit.
func smtpIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// smtpReplyHeaders reads the header of the message being replied to (only the header: the
// rest is not read) and returns its Message-ID, the References for the reply (its
// References, or In-Reply-To, followed by its Message-ID, RFC 5322 section 3.6.4) and its
// subject.
func smtpReplyHeaders(r io.Reader) (msgID string, refs []string, subject string, err error) {
	hdr, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(r, 4<<20)))
	if err != nil {
		return "", nil, "", fmt.Errorf("read the header of the loop's message: %w", err)
	}
	h := mail.Header{Header: message.Header{Header: hdr}}
	msgID, _ = h.MessageID()
	refs, _ = h.MsgIDList("References")
	if len(refs) == 0 {
		if irt, _ := h.MsgIDList("In-Reply-To"); len(irt) == 1 {
			refs = irt
		}
	}
	if msgID != "" {
		refs = append(refs, msgID)
	}
	subject, _ = h.Subject()
	return msgID, refs, subject, nil
}

// smtpReplySubject is "Re: " + subject, unless subject already starts with a reply prefix.
func smtpReplySubject(subject string) string {
	s := strings.TrimSpace(subject)
	if len(s) >= 3 && strings.EqualFold(s[:3], "re:") {
		return s
	}
	return "Re: " + s
}
