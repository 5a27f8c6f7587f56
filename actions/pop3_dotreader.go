package actions

import (
	"bytes"
	"io"
)

// pop3DotReader reads the data of a POP3 multi-line answer (RFC 1939 section 3) straight
// from the connection's buffer. It removes the byte-stuffing dot of lines that start with
// "." and stops at the terminating ".\r\n" line, and changes nothing else: CRLF stays
// CRLF, and bare LF, bare CR, NUL, 8-bit bytes and lines of any length pass through as
// the server sent them. (net/textproto's DotReader is not used because it turns CRLF into
// LF.) A line starts after every LF, as in servers' own stuffing (Dovecot stuffs a "."
// after a bare LF too).
//
// Memory does not depend on the size of the message: the data is copied from the
// client's buffer into the caller's slice.
//
// With a limit (an answer about a message whose size LIST announced: pop3_bound.go), data
// beyond limit bytes is not returned: the reader fails with a *POP3OversizeError and
// breaks the connection, whose rest is unreadable garbage.
type pop3DotReader struct {
	c         *POP3Client
	lineStart bool  // the next byte starts a line
	done      bool  // the terminator has been read
	err       error // sticky transport error
	closed    bool

	num       int   // message number (for the bound's error)
	announced int64 // its LIST size
	limit     int64 // bytes accepted at most; 0: no bound
	n         int64 // bytes returned so far
}

// Read implements io.Reader.
func (r *pop3DotReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.closed {
		return 0, errPOP3Closed
	}
	br := r.c.br
	n := 0
	for n < len(p) && !r.done {
		if r.lineStart {
			// Never block for more data when some is ready to be returned.
			if n > 0 && br.Buffered() < 3 {
				break
			}
			b, err := br.Peek(1)
			if err != nil {
				return n, r.fail(err)
			}
			if b[0] == '.' {
				b, err = br.Peek(3)
				if len(b) == 3 && b[1] == '\r' && b[2] == '\n' {
					br.Discard(3)
					r.finish()
					break
				}
				if err != nil {
					return n, r.fail(err)
				}
				br.Discard(1) // the stuffed dot
			}
			r.lineStart = false
		}
		if br.Buffered() == 0 {
			if n > 0 {
				break
			}
			if _, err := br.Peek(1); err != nil {
				return n, r.fail(err)
			}
		}
		want := min(br.Buffered(), len(p)-n)
		if r.limit > 0 {
			room := r.limit - r.n
			if room <= 0 { // data, not the terminator, follows the limit's last byte
				return n, r.fail(&POP3OversizeError{Number: r.num, Announced: r.announced, Limit: r.limit})
			}
			want = int(min(int64(want), room))
		}
		chunk, _ := br.Peek(want)
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			chunk = chunk[:i+1]
			r.lineStart = true
		}
		n += copy(p[n:], chunk)
		r.n += int64(len(chunk))
		br.Discard(len(chunk))
	}
	if n == 0 && r.done {
		return 0, io.EOF
	}
	return n, nil
}

// finish marks the end of the data: the client may take the next command.
func (r *pop3DotReader) finish() {
	r.done = true
	if r.c.open == r {
		r.c.open = nil
	}
}

func (r *pop3DotReader) fail(err error) error {
	r.err = r.c.fail(err)
	if r.c.open == r {
		r.c.open = nil
	}
	return r.err
}

// Close reads and discards the rest of the data, so that the connection can take the
// next command. It returns an error only when that fails (the connection is then
// unusable). Closing twice is harmless.
func (r *pop3DotReader) Close() error {
	if r.closed {
		return r.err
	}
	if !r.done && r.err == nil {
		var buf [4096]byte
		for !r.done && r.err == nil {
			r.Read(buf[:])
		}
	}
	r.closed = true
	if r.c.open == r {
		r.c.open = nil
	}
	return r.err
}
