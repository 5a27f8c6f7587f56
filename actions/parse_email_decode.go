package actions

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // registers the charsets go-message can decode
)

// parseSource wraps the raw message: it stops on ctx, counts bytes for progress and keeps
// the first real read error (not io.EOF), which tells a source that failed apart from a
// message that is merely cut short.
type parseSource struct {
	ctx      context.Context
	r        io.Reader
	n        int64
	total    int64
	nextTick int64
	progress func(done, total int64, what string)
	err      error
}

func (s *parseSource) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.progress != nil && s.n >= s.nextTick {
		s.nextTick = s.n + 1<<20
		s.progress(s.n, s.total, "parsing email")
	}
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// parseTolerant turns errors of a broken MIME structure (a part cut short, a missing
// boundary) into io.EOF so that what was read is kept; it remembers the error for a
// warning. An error of the source itself is passed on: then the message was not read.
type parseTolerant struct {
	r      io.Reader
	src    *parseSource
	broken error
}

func (t *parseTolerant) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		if t.src.err != nil {
			return n, t.src.err
		}
		if t.broken == nil {
			t.broken = err
		}
		return n, io.EOF
	}
	return n, err
}

// parseB64 is a lenient streaming base64 decoder: it skips line breaks and white space,
// skips (and reports) bytes outside the alphabet, accepts missing padding and decodes
// concatenated padded chunks. It needs no memory beyond its small buffers.
type parseB64 struct {
	r       io.Reader
	in      [8192]byte
	inI     int
	inN     int
	acc     uint32
	nacc    int
	out     [3]byte
	outI    int
	outN    int
	err     error
	flushed bool
	junk    int // bytes skipped that are neither base64 nor white space
}

var parseB64Val = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		t[alpha[i]] = byte(i)
	}
	return t
}()

// flush emits a partial quantum (after "=" or at the end).
func (d *parseB64) flush() {
	switch d.nacc {
	case 1:
		d.junk++ // six bits cannot make a byte
	case 2:
		d.out[0] = byte(d.acc >> 4)
		d.outI, d.outN = 0, 1
	case 3:
		d.out[0], d.out[1] = byte(d.acc>>10), byte(d.acc>>2)
		d.outI, d.outN = 0, 2
	}
	d.acc, d.nacc = 0, 0
}

func (d *parseB64) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if d.outI < d.outN {
			c := copy(p[n:], d.out[d.outI:d.outN])
			d.outI += c
			n += c
			continue
		}
		if d.inI == d.inN {
			if d.err != nil {
				if !d.flushed {
					d.flushed = true
					d.flush()
					continue
				}
				break
			}
			if n > 0 {
				break // return what is decoded rather than wait for more input
			}
			d.inN, d.err = d.r.Read(d.in[:])
			d.inI = 0
			continue
		}
		if d.nacc == 0 {
			n += d.quanta(p[n:])
			if d.inI == d.inN || n == len(p) {
				continue
			}
		}
		c := d.in[d.inI]
		d.inI++
		if v := parseB64Val[c]; v != 0xff {
			d.acc = d.acc<<6 | uint32(v)
			d.nacc++
			if d.nacc == 4 {
				d.out[0], d.out[1], d.out[2] = byte(d.acc>>16), byte(d.acc>>8), byte(d.acc)
				d.outI, d.outN = 0, 3
				d.acc, d.nacc = 0, 0
			}
			continue
		}
		switch c {
		case '=':
			d.flush()
		case ' ', '\t', '\r', '\n':
		default:
			d.junk++
		}
	}
	if n > 0 {
		return n, nil
	}
	return 0, d.err
}

// quanta is the fast path: it decodes whole groups of four alphabet characters straight
// into p (line ends between groups are skipped) and stops at anything else.
func (d *parseB64) quanta(p []byte) int {
	in := d.in[d.inI:d.inN]
	tab := &parseB64Val
	k, n := 0, 0
	for k < len(in) && n+3 <= len(p) {
		if c := in[k]; c == '\r' || c == '\n' {
			k++
			continue
		}
		if k+4 > len(in) {
			break
		}
		a, b, c, e := tab[in[k]], tab[in[k+1]], tab[in[k+2]], tab[in[k+3]]
		if (a|b|c|e)&0xc0 != 0 {
			break
		}
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(e)
		p[n], p[n+1], p[n+2] = byte(v>>16), byte(v>>8), byte(v)
		n += 3
		k += 4
	}
	d.inI += k
	return n
}

// parseQP is a lenient streaming quoted-printable decoder: "=XX" is a byte, "=" before a
// line end is a soft break, any other "=" is kept literally (and reported), white space
// before a line end is dropped, everything else (control bytes too) passes through.
type parseQP struct {
	br     *bufio.Reader
	blanks int // blanks ahead already known to be followed by text: pass them through
	bad    int
	err    error
}

func parseHexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// blankRun looks at the blanks ahead: it returns how many there are and whether a line
// end (or the end of the input) follows them, and the line end's length. Runs longer than
// the buffer count as followed by text.
func (q *parseQP) blankRun() (n int, eol bool, eolLen int) {
	buf, _ := q.br.Peek(q.br.Buffered())
	for n < len(buf) && (buf[n] == ' ' || buf[n] == '\t') {
		n++
	}
	if n+1 >= len(buf) { // the run may go on past what is buffered: read more
		buf, _ = q.br.Peek(q.br.Size())
		for n < len(buf) && (buf[n] == ' ' || buf[n] == '\t') {
			n++
		}
	}
	switch {
	case n == len(buf):
		return n, len(buf) < q.br.Size(), 0 // end of input, or a run too long to judge
	case buf[n] == '\n':
		return n, true, 1
	case buf[n] == '\r' && n+1 < len(buf) && buf[n+1] == '\n':
		return n, true, 2
	}
	return n, false, 0
}

func (q *parseQP) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := q.br.ReadByte()
		if err != nil {
			q.err = err
			break
		}
		switch {
		case q.blanks > 0:
			q.blanks--
		case c == '=':
			if h, _ := q.br.Peek(2); len(h) == 2 {
				hi, ok1 := parseHexVal(h[0])
				lo, ok2 := parseHexVal(h[1])
				if ok1 && ok2 {
					q.br.Discard(2)
					p[n] = hi<<4 | lo
					n++
					continue
				}
			}
			if k, eol, eolLen := q.blankRun(); eol {
				q.br.Discard(k + eolLen) // soft line break
				continue
			} else {
				q.blanks = k
			}
			q.bad++
		case c == ' ' || c == '\t':
			k, eol, _ := q.blankRun()
			if eol {
				q.br.Discard(k) // transport padding before a line end
				continue
			}
			q.blanks = k
		}
		p[n] = c
		n++
	}
	if n > 0 {
		return n, nil
	}
	return 0, q.err
}

// parseDecoder undoes a Content-Transfer-Encoding and reports what was wrong with it.
type parseDecoder struct {
	io.Reader
	b64     *parseB64
	qp      *parseQP
	unknown string
}

func parseNewDecoder(cte string, r io.Reader) *parseDecoder {
	switch cte {
	case "", "7bit", "8bit", "binary":
		return &parseDecoder{Reader: r}
	case "base64":
		d := &parseB64{r: r}
		return &parseDecoder{Reader: d, b64: d}
	case "quoted-printable":
		d := &parseQP{br: bufio.NewReader(r)}
		return &parseDecoder{Reader: d, qp: d}
	}
	return &parseDecoder{Reader: r, unknown: cte}
}

// problem describes what was wrong with the encoding, once the body has been read.
func (d *parseDecoder) problem() string {
	switch {
	case d.unknown != "":
		return fmt.Sprintf("unknown Content-Transfer-Encoding %q, its bytes are kept as they are", d.unknown)
	case d.b64 != nil && d.b64.junk > 0:
		return fmt.Sprintf("bad base64 (%d bytes that are not base64 were skipped)", d.b64.junk)
	case d.qp != nil && d.qp.bad > 0:
		return fmt.Sprintf("bad quoted-printable (%d stray \"=\" kept as they are)", d.qp.bad)
	}
	return ""
}

// errParseUnknownCharset reports a charset go-message cannot decode.
var errParseUnknownCharset = errors.New("unknown charset")

// parseCharsetReader converts r from charset to UTF-8. UTF-8, US-ASCII and an empty
// charset pass r through unchanged; an unknown charset returns r and an error.
func parseCharsetReader(charset string, r io.Reader) (io.Reader, error) {
	cs := strings.ToLower(strings.TrimSpace(charset))
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return r, nil
	}
	if message.CharsetReader == nil {
		return r, errParseUnknownCharset
	}
	dr, err := message.CharsetReader(cs, r)
	if err != nil || dr == nil {
		return r, fmt.Errorf("%w %q", errParseUnknownCharset, charset)
	}
	return dr, nil
}

// parseCharsetString converts b from charset to valid UTF-8; ok is false when the charset
// is unknown (then b is kept, with invalid UTF-8 replaced).
func parseCharsetString(charset string, b []byte) (s string, ok bool) {
	r, err := parseCharsetReader(charset, strings.NewReader(string(b)))
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD"), false
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD"), false
	}
	return strings.ToValidUTF8(string(out), "\uFFFD"), true
}
