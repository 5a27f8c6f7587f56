package actions

import (
	"bufio"
	"io"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // RFC 2047 words in any charset, not only UTF-8
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// pop3HeaderLimit bounds the header bytes read per message for the loop's variables and
// filters; the rest of an oversized header is discarded.
const pop3HeaderLimit = 256 << 10

// pop3HeaderBatch is the number of TOP commands sent together when the server allows
// PIPELINING.
const pop3HeaderBatch = 32

// pop3Meta is what the loop shows of a message's header: decoded text for variables.
type pop3Meta struct {
	MessageID string
	From      string
	To        string
	Cc        string
	Subject   string
	Date      string // RFC 3339, "" when missing or unreadable
}

// pop3ParseHeader reads a message header from r (br is a reusable buffer). A malformed
// header gives the fields read before the problem.
func pop3ParseHeader(r io.Reader, br *bufio.Reader) pop3Meta {
	br.Reset(r)
	h, _ := textproto.ReadHeader(br)
	mh := mail.Header{Header: message.Header{Header: h}}
	m := pop3Meta{
		From: pop3Addresses(mh, "From"),
		To:   pop3Addresses(mh, "To"),
		Cc:   pop3Addresses(mh, "Cc"),
	}
	if id, err := mh.MessageID(); err == nil && id != "" {
		m.MessageID = id
	} else {
		m.MessageID = strings.Trim(strings.TrimSpace(mh.Get("Message-Id")), "<>")
	}
	if s, err := mh.Subject(); err == nil {
		m.Subject = s
	} else {
		m.Subject = mh.Get("Subject")
	}
	if t, ok := pop3ParseDate(mh.Get("Date")); ok {
		m.Date = t.Format(time.RFC3339)
	}
	return m
}

// pop3Addresses returns the decoded addresses of a header field as
// "Name <addr>, addr2"; a field that does not parse as addresses is returned as decoded
// text.
func pop3Addresses(h mail.Header, key string) string {
	if !h.Has(key) {
		return ""
	}
	list, err := h.AddressList(key)
	if err != nil || len(list) == 0 {
		if s, err := h.Text(key); err == nil {
			return strings.TrimSpace(s)
		}
		return strings.TrimSpace(h.Get(key))
	}
	var b strings.Builder
	for i, a := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		if a.Name != "" {
			b.WriteString(a.Name + " <" + a.Address + ">")
		} else {
			b.WriteString(a.Address)
		}
	}
	return b.String()
}

// pop3ParseDate parses a Date header. The common form is tried first: net/mail.ParseDate
// tries a dozen layouts and allocates an error for each miss.
func pop3ParseDate(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC1123Z, v); err == nil {
		return t, true
	}
	t, err := netmail.ParseDate(v)
	return t, err == nil
}
