package actions

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"

	"github.com/mailwright/mailwright/oauthparams"
)

// Temporary reports whether err is worth retrying later: a network failure (refused,
// reset, timed out, cut mid-reply), an SMTP 4xx reply, an IMAP [UNAVAILABLE] or
// [INUSE] response, a POP3 "[IN-USE]"/"[SYS/TEMP]" reply, or a token endpoint that failed
// for now (oauthparams.ProviderError.Temporary: 5xx, not JSON, no answer). Rejected
// credentials, unknown folders, refused recipients (5xx), a refresh token the provider
// refused (invalid_grant) and cancellations are not temporary.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var rej *OAuthRejectedError
	if errors.As(err, &rej) && rej.Rejected {
		return false
	}
	// The token endpoint's verdict comes first: its errors wrap HTTP ones (a 503 answer,
	// a TLS failure) that the network checks below would misjudge.
	var provErr *oauthparams.ProviderError
	if errors.As(err, &provErr) {
		return provErr.Temporary
	}
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		return smtpErr.Code >= 400 && smtpErr.Code < 500
	}
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		switch imapErr.Code {
		case imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, imap.ResponseCodeServerBug:
			return true
		}
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	}
	s := err.Error()
	return strings.Contains(s, "[IN-USE]") || strings.Contains(s, "[SYS/TEMP]")
}
