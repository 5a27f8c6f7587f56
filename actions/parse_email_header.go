package actions

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// parseMaxHeaderBytes bounds a message header read into memory.
const parseMaxHeaderBytes = 1 << 20

// parseReadHeader reads a message header leniently: malformed lines are skipped with a
// warning, a leading mbox "From " line is dropped, a header larger than 1 MB is cut, and a
// message that starts straight with its body (no header at all) gets an empty header. It
// returns the header and the bytes already read that belong to the body.
func parseReadHeader(br *bufio.Reader, warn func(string, ...any)) (message.Header, []byte) {
	var fields [][]byte
	total := 0
	first := true
	for {
		line, err := parseReadLine(br, parseMaxHeaderBytes+1-total)
		total += len(line)
		if total > parseMaxHeaderBytes {
			warn("the header is larger than 1 MB; the rest of it is skipped")
			for len(line) > 0 && len(bytes.TrimRight(line, "\r\n")) > 0 {
				line, _ = parseReadLine(br, 1<<16)
			}
			break
		}
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			break // blank line (or end of input): the header ends
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] = append(fields[len(fields)-1], parseCRLF(content)...)
			continue
		}
		if first && bytes.HasPrefix(line, []byte("From ")) && !parseFieldLine(content) {
			first = false
			continue // mbox separator line of an exported message
		}
		first = false
		if parseFieldLine(content) {
			fields = append(fields, parseCRLF(content))
			continue
		}
		if len(fields) == 0 {
			warn("the message has no header; everything is read as its body")
			return message.Header{}, append([]byte(nil), line...)
		}
		warn("malformed header line skipped: %q", parseShort(string(content), 60))
		if err != nil {
			break
		}
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(bytes.Join(fields, nil), '\r', '\n'))))
	if err != nil {
		warn("the header could not be read completely: %v", err)
	}
	return message.Header{Header: h}, nil
}

// parseReadLine reads one line (with its line end) of at most max bytes; the rest of a
// longer line is discarded.
func parseReadLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line) < max {
			line = append(line, chunk[:min(len(chunk), max-len(line))]...)
		}
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

func parseCRLF(b []byte) []byte {
	return append(append([]byte(nil), b...), '\r', '\n')
}

// parseFieldLine reports whether line is "Key: value" with a valid key (RFC 5322 2.2).
func parseFieldLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	key := bytes.TrimRight(line[:i], " \t")
	if len(key) == 0 {
		return false
	}
	for _, c := range key {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// parseShort cuts s to n runes for a warning.
func parseShort(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// cleanRaw makes a raw header value valid UTF-8 without NUL bytes, warning when it was not.
func (p *parseRun) cleanRaw(field, v string) string {
	if strings.IndexByte(v, 0) >= 0 {
		p.warn("header %s contains NUL bytes (removed)", field)
		v = strings.ReplaceAll(v, "\x00", "")
	}
	if !utf8.ValidString(v) {
		p.warn("header %s contains bytes that are not UTF-8 (replaced with \uFFFD)", field)
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	return v
}

// parseOneLine replaces control characters (line breaks included) with spaces and
// removes NUL bytes: variables hold one line per value.
func parseOneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == 0:
			return -1
		case unicode.IsControl(r):
			return ' '
		}
		return r
	}, s)
}

// wordDecoder decodes RFC 2047 encoded words; a word in an unknown charset keeps its
// bytes (made valid UTF-8 later) and gives a warning.
func (p *parseRun) wordDecoder(field string) *mime.WordDecoder {
	return &mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
		dr, err := parseCharsetReader(cs, r)
		if err != nil {
			p.warn("header %s uses unknown charset %q; its bytes are kept as they are", field, cs)
		}
		return dr, nil
	}}
}

// decodeText decodes a raw unstructured header value to one line of UTF-8.
func (p *parseRun) decodeText(field, raw string) string {
	v := p.cleanRaw(field, raw)
	out, err := p.wordDecoder(field).DecodeHeader(v)
	if err != nil {
		p.warn("header %s could not be decoded (%v); kept as it is", field, err)
		out = v
	}
	return strings.TrimSpace(parseOneLine(out))
}

// headerText returns the first value of key, decoded.
func (p *parseRun) headerText(h *message.Header, key string) string {
	if !h.Has(key) {
		return ""
	}
	return p.decodeText(key, h.Get(key))
}

// headerValues returns every value of key, decoded, one per line.
func (p *parseRun) headerValues(h *message.Header, key string) string {
	var vals []string
	for f := h.FieldsByKey(key); f.Next(); {
		vals = append(vals, p.decodeText(key, f.Value()))
	}
	return strings.Join(vals, "\n")
}

// addresses returns the addresses of key as "Name <addr>, addr, …", names decoded. An
// address list that cannot be parsed is returned as decoded text, with a warning.
func (p *parseRun) addresses(h *message.Header, key string) string {
	var raws []string
	for f := h.FieldsByKey(key); f.Next(); {
		if v := strings.TrimSpace(f.Value()); v != "" {
			raws = append(raws, p.cleanRaw(key, v))
		}
	}
	if len(raws) == 0 {
		return ""
	}
	raw := strings.Join(raws, ", ")
	parser := mail.AddressParser{WordDecoder: p.wordDecoder(key)}
	list, err := parser.ParseList(raw)
	if err != nil {
		p.warn("the addresses in %s could not be read (%v); the header text is used", key, err)
		return p.decodeText(key, raw)
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		name := strings.TrimSpace(parseOneLine(a.Name))
		addr := parseOneLine(a.Address)
		switch {
		case name == "":
			out = append(out, addr)
		case strings.ContainsAny(name, `,;<>"@:()[]\`):
			out = append(out, strconv.Quote(name)+" <"+addr+">")
		default:
			out = append(out, name+" <"+addr+">")
		}
	}
	return strings.Join(out, ", ")
}

// date returns the Date header in RFC 3339, or "" with a warning when it cannot be read.
func (p *parseRun) date(h *message.Header) string {
	raw := strings.TrimSpace(p.cleanRaw("Date", h.Get("Date")))
	if raw == "" {
		p.warn("the message has no Date header")
		return ""
	}
	t, err := mail.ParseDate(raw)
	if err != nil {
		p.warn("the Date header %q could not be read", parseShort(raw, 60))
		return ""
	}
	return t.Format(time.RFC3339)
}

// mediaHeader parses a Content-Type or Content-Disposition value leniently: the value
// (lower case) and its parameters (keys lower case), with RFC 2231 continuations and
// charsets and RFC 2047 encoded words decoded.
func (p *parseRun) mediaHeader(h *message.Header, field string) (string, map[string]string) {
	raw := p.cleanRaw(field, h.Get(field))
	value, rest, _ := strings.Cut(raw, ";")
	value = strings.ToLower(strings.TrimSpace(value))
	if i := strings.IndexAny(value, " \t("); i >= 0 {
		value = value[:i]
	}
	rawParams := map[string]string{}
	malformed := false
	for {
		rest = strings.TrimLeft(rest, " \t\r\n;")
		if rest == "" {
			break
		}
		eq := strings.IndexAny(rest, "=;")
		if eq < 0 || rest[eq] == ';' {
			malformed = true
			if eq < 0 {
				break
			}
			rest = rest[eq:]
			continue
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t\r\n")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i, closed := 1, false
			for i < len(rest) {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					b.WriteByte(rest[i+1])
					i += 2
					continue
				}
				i++
				if c == '"' {
					closed = true
					break
				}
				b.WriteByte(c)
			}
			if !closed {
				malformed = true
			}
			val, rest = b.String(), rest[i:]
			if semi := strings.IndexByte(rest, ';'); semi >= 0 {
				rest = rest[semi:]
			} else {
				rest = ""
			}
		} else {
			semi := strings.IndexByte(rest, ';')
			if semi < 0 {
				semi = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:semi]), rest[semi:]
		}
		if _, dup := rawParams[key]; !dup && key != "" {
			rawParams[key] = val
		}
	}
	if malformed {
		p.warn("header %s is malformed: %q", field, parseShort(raw, 80))
	}
	return value, p.assembleParams(field, rawParams)
}

// assembleParams joins RFC 2231 continuations ("name*0*", "name*1") and decodes extended
// values ("name*=charset'lang'%XX") and RFC 2047 words in plain values.
func (p *parseRun) assembleParams(field string, raw map[string]string) map[string]string {
	out := map[string]string{}
	for key, val := range raw {
		if !strings.Contains(key, "*") {
			if _, done := out[key]; !done {
				if strings.Contains(val, "=?") {
					if dec, err := p.wordDecoder(field).DecodeHeader(val); err == nil {
						val = dec
					}
				}
				out[key] = val
			}
			continue
		}
		base, _, _ := strings.Cut(key, "*")
		var buf []byte
		charset := ""
		switch key {
		case base + "*":
			charset, buf = parseExtValue(val)
		case base + "*0", base + "*0*":
			if _, single := raw[base+"*"]; single {
				continue // "base*" wins
			}
			for i := 0; i < 1000; i++ {
				n := base + "*" + strconv.Itoa(i)
				if v, ok := raw[n+"*"]; ok {
					if i == 0 {
						charset, buf = parseExtValue(v)
					} else {
						buf = append(buf, parsePercent(v)...)
					}
				} else if v, ok := raw[n]; ok {
					buf = append(buf, v...)
				} else {
					break
				}
			}
		default:
			continue // a later segment: joined with segment 0
		}
		s, ok := parseCharsetString(charset, buf)
		if !ok {
			p.warn("parameter %s in %s uses unknown charset %q; its bytes are kept as they are", base, field, charset)
		}
		out[base] = s
	}
	return out
}

// parseExtValue splits an RFC 2231 extended value "charset'lang'%XX…" into its charset
// and decoded bytes.
func parseExtValue(v string) (string, []byte) {
	cs, rest, ok := strings.Cut(v, "'")
	if !ok {
		return "", parsePercent(v)
	}
	if _, after, ok := strings.Cut(rest, "'"); ok {
		rest = after
	}
	return cs, parsePercent(rest)
}

// parsePercent decodes %XX escapes; a "%" not followed by two hex digits is kept.
func parsePercent(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := parseHexVal(s[i+1])
			lo, ok2 := parseHexVal(s[i+2])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

// parseHeaderVarName makes a variable name from a header name: EmailHeader_X_Priority.
func parseHeaderVarName(name string) string {
	return "EmailHeader_" + strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '_'
	}, name)
}
