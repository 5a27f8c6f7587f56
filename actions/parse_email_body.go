package actions

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// parseMaxDepth bounds nested multiparts (a hostile message could nest thousands).
const parseMaxDepth = 40

// parseMaxWarnings bounds EmailWarnings; further warnings are counted.
const parseMaxWarnings = 50

// parseOptions are the settings of one parse.
type parseOptions struct {
	Save          bool     // save attachments
	Folder        string   // where to save them
	Collision     string   // collision policy
	IncludeInline bool     // save inline parts with a file name too
	MaxBody       int64    // bytes kept of each body
	Headers       []string // extra headers for EmailHeader_<Name>
}

// parseResult is what a parse found.
type parseResult struct {
	Vars       map[string]string // the output variables by name
	Text, HTML string
	Paths      []string // saved attachments
	Names      []string // every attachment's name
	Warnings   []string
}

// parseRun is the state of one parse.
type parseRun struct {
	ctx      context.Context
	log      *slog.Logger
	src      *parseSource
	opt      parseOptions
	res      parseResult
	haveText bool
	haveHTML bool
	attachN  int
	seen     map[string]bool
	dropped  int
	cutShort bool // a part ended early: the message is truncated
}

func (p *parseRun) warn(format string, args ...any) {
	w := parseOneLine(fmt.Sprintf(format, args...))
	if p.seen[w] {
		return
	}
	p.seen[w] = true
	if len(p.res.Warnings) >= parseMaxWarnings {
		p.dropped++
		return
	}
	p.log.Warn("broken mail: " + w)
	p.res.Warnings = append(p.res.Warnings, w)
}

// parseMessage reads the message from src (a parseSource) and walks its MIME tree. It
// returns an error only when the source itself fails, ctx ends, or an attachment cannot
// be saved; broken mail gives warnings.
func parseMessage(ctx context.Context, src *parseSource, opt parseOptions, log *slog.Logger) (*parseResult, error) {
	p := &parseRun{ctx: ctx, log: log, src: src, opt: opt, seen: map[string]bool{}}
	br := bufio.NewReaderSize(src, 32<<10)
	h, prefix := parseReadHeader(br, p.warn)
	if src.err != nil {
		return nil, src.err
	}
	if src.n == 0 {
		p.warn("the message is empty")
	}
	p.headerVars(&h)
	var body io.Reader = br
	if len(prefix) > 0 {
		body = io.MultiReader(bytes.NewReader(prefix), br)
	}
	if err := p.entity(h, body, "", 0, "the message"); err != nil {
		return nil, err
	}
	io.Copy(io.Discard, br) // the epilogue: read so the whole source is checked
	if src.err != nil {
		return nil, src.err
	}
	p.res.Vars["EmailTextBody"] = p.res.Text
	p.res.Vars["EmailHTMLBody"] = p.res.HTML
	p.res.Vars["EmailAttachments"] = strings.Join(p.res.Paths, "\n")
	p.res.Vars["EmailAttachmentNames"] = strings.Join(p.res.Names, "\n")
	p.res.Vars["EmailAttachmentCount"] = strconv.Itoa(len(p.res.Names))
	if p.dropped > 0 {
		p.res.Warnings = append(p.res.Warnings, fmt.Sprintf("(%d more warnings not shown)", p.dropped))
	}
	p.res.Vars["EmailWarnings"] = strings.Join(p.res.Warnings, "\n")
	return &p.res, nil
}

// headerVars sets the variables that come from the top-level header.
func (p *parseRun) headerVars(h *message.Header) {
	v := map[string]string{}
	v["EmailFrom"] = p.addresses(h, "From")
	if v["EmailFrom"] == "" {
		p.warn("the message has no From header")
	}
	v["EmailTo"] = p.addresses(h, "To")
	v["EmailCc"] = p.addresses(h, "Cc")
	v["EmailReplyTo"] = p.addresses(h, "Reply-To")
	v["EmailSubject"] = p.headerText(h, "Subject")
	v["EmailDate"] = p.date(h)
	v["EmailMessageID"] = strings.Join(strings.Fields(p.headerText(h, "Message-Id")), " ")
	v["EmailInReplyTo"] = strings.Join(strings.Fields(p.headerText(h, "In-Reply-To")), " ")
	v["EmailReferences"] = strings.Join(strings.Fields(p.headerText(h, "References")), " ")
	for _, name := range p.opt.Headers {
		v[parseHeaderVarName(name)] = p.headerValues(h, name)
	}
	p.res.Vars = v
}

// entity handles one MIME entity: a multipart is walked, a text body kept, an attachment
// named and saved.
func (p *parseRun) entity(h message.Header, body io.Reader, parent string, depth int, where string) error {
	mt, params := p.mediaHeader(&h, "Content-Type")
	if mt == "" || !strings.Contains(mt, "/") {
		if mt != "" {
			p.warn("%s has an invalid Content-Type %q; read as text/plain", where, parseShort(mt, 40))
		}
		mt = "text/plain"
		if parent == "multipart/digest" {
			mt = "message/rfc822"
		}
	}
	if strings.HasPrefix(mt, "multipart/") {
		return p.multipart(mt, params, body, depth, where)
	}
	disp, dparams := p.mediaHeader(&h, "Content-Disposition")
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	cte := strings.ToLower(strings.TrimSpace(p.cleanRaw("Content-Transfer-Encoding", h.Get("Content-Transfer-Encoding"))))
	switch parseClassify(mt, disp, name, parent) {
	case parseBody:
		if mt == "text/html" && !p.haveHTML {
			p.haveHTML = true
			return p.readBody(&p.res.HTML, params["charset"], cte, body, "HTML body")
		}
		if mt == "text/plain" && !p.haveText {
			p.haveText = true
			return p.readBody(&p.res.Text, params["charset"], cte, body, "text body")
		}
	case parseInline:
		if p.opt.IncludeInline {
			return p.attachment(mt, name, cte, body)
		}
	case parseAttachment:
		return p.attachment(mt, name, cte, body)
	}
	return nil
}

// multipart walks the parts of a multipart body.
func (p *parseRun) multipart(mt string, params map[string]string, body io.Reader, depth int, where string) error {
	boundary := params["boundary"]
	if boundary == "" {
		p.warn("%s is %s without a boundary; its body is read as plain text", where, mt)
		return p.fallbackText(body)
	}
	if depth >= parseMaxDepth {
		p.warn("multiparts nested deeper than %d levels are skipped", parseMaxDepth)
		return nil
	}
	rec := &parsePreamble{r: body, max: p.opt.MaxBody}
	mr := textproto.NewMultipartReader(rec, boundary)
	for i := 1; ; i++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if p.src.err != nil {
				return p.src.err
			}
			switch {
			case i == 1:
				p.warn("%s: no part with boundary %q found; its body is read as plain text", where, parseShort(boundary, 70))
				if !p.haveText {
					p.haveText = true
					p.res.Text = p.cleanBody(rec.buf.Bytes(), "", "text body")
				}
			case !p.cutShort:
				p.warn("%s ends without its closing boundary (the message may be truncated)", where)
			}
			return nil
		}
		rec.stop()
		partWhere := fmt.Sprintf("part %d of %s", i, where)
		if where == "the message" {
			partWhere = "part " + strconv.Itoa(i)
		} else if strings.HasPrefix(where, "part ") {
			partWhere = where + "." + strconv.Itoa(i)
		}
		tb := &parseTolerant{r: part, src: p.src}
		if err := p.entity(message.Header{Header: part.Header}, tb, mt, depth+1, partWhere); err != nil {
			return err
		}
		if tb.broken != nil && !p.cutShort {
			p.cutShort = true
			p.warn("%s is cut off (%v): the message is truncated or its boundary is broken", partWhere, tb.broken)
		}
	}
}

// fallbackText keeps an unreadable multipart's body as the text body.
func (p *parseRun) fallbackText(body io.Reader) error {
	if p.haveText {
		return nil
	}
	p.haveText = true
	return p.readBody(&p.res.Text, "", "", body, "text body")
}

// readBody decodes a text part (transfer encoding, then charset) into *dst, keeping at
// most MaxBody bytes.
func (p *parseRun) readBody(dst *string, charset, cte string, body io.Reader, what string) error {
	dec := parseNewDecoder(cte, body)
	r, err := parseCharsetReader(charset, dec)
	if err != nil {
		p.warn("the %s uses unknown charset %q; its bytes are kept as they are", what, charset)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(r, p.opt.MaxBody+1)); err != nil {
		if p.src.err != nil {
			return p.src.err
		}
		p.warn("the %s could not be decoded completely (%v); the text read so far is kept", what, err)
	}
	b := buf.Bytes()
	if int64(len(b)) > p.opt.MaxBody {
		b = b[:p.opt.MaxBody]
		for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
			if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size != 1 {
				break
			}
			b = b[:len(b)-1] // a character cut in half
		}
		p.warn("the %s is longer than %d bytes (max_body_bytes) and was cut there", what, p.opt.MaxBody)
		if _, err := io.Copy(io.Discard, body); err != nil && p.src.err != nil {
			return p.src.err
		}
	}
	if prob := dec.problem(); prob != "" {
		p.warn("the %s: %s", what, prob)
	}
	*dst = p.cleanBody(b, charset, what)
	return nil
}

// parsePreamble records what the multipart reader reads until the first part is found,
// so that a body whose boundary never appears can still be kept as text.
type parsePreamble struct {
	r       io.Reader
	buf     bytes.Buffer
	max     int64
	stopped bool
}

func (r *parsePreamble) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if !r.stopped && int64(r.buf.Len()) < r.max {
		r.buf.Write(b[:min(int64(n), r.max-int64(r.buf.Len()))])
	}
	return n, err
}

func (r *parsePreamble) stop() {
	if !r.stopped {
		r.stopped = true
		r.buf = bytes.Buffer{}
	}
}

// cleanBody makes decoded body bytes a valid UTF-8 variable value.
func (p *parseRun) cleanBody(b []byte, charset, what string) string {
	if bytes.IndexByte(b, 0) >= 0 {
		p.warn("the %s contains NUL bytes (removed)", what)
		b = bytes.ReplaceAll(b, []byte{0}, nil)
	}
	if !utf8.Valid(b) {
		if charset == "" {
			p.warn("the %s is not valid UTF-8 and names no charset; invalid bytes are replaced with \uFFFD", what)
		} else {
			p.warn("the %s is not valid %s; invalid bytes are replaced with \uFFFD", what, charset)
		}
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}

// parseKind is what a leaf part is to the parser.
type parseKind int

const (
	parseSkip       parseKind = iota // not kept (an unnamed inline resource)
	parseBody                        // a text/plain or text/html body candidate
	parseInline                      // an inline part with a file name
	parseAttachment                  // an attachment
)

// parseClassify decides what a leaf part is from its type, disposition and name.
func parseClassify(mt, disp, name, parent string) parseKind {
	isBody := mt == "text/plain" || mt == "text/html"
	switch {
	case mt == "message/rfc822" || mt == "message/global":
		return parseAttachment
	case disp == "attachment":
		return parseAttachment
	case disp == "inline" && name != "":
		return parseInline
	case disp == "inline" && isBody:
		return parseBody
	case disp == "inline":
		return parseSkip
	case isBody && name == "":
		return parseBody
	case name != "" && parent == "multipart/related":
		return parseInline
	case name == "" && parent == "multipart/related":
		return parseSkip
	}
	return parseAttachment
}

// parseExt gives a file extension for an unnamed attachment of type mt.
func parseExt(mt string) string {
	known := map[string]string{
		"text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "text/csv": ".csv",
		"text/xml": ".xml", "text/vcard": ".vcf", "text/x-vcard": ".vcf", "text/markdown": ".md",
		"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
		"image/svg+xml": ".svg", "image/tiff": ".tif", "image/bmp": ".bmp", "image/heic": ".heic",
		"application/pdf": ".pdf", "application/zip": ".zip", "application/gzip": ".gz",
		"application/json": ".json", "application/xml": ".xml", "application/octet-stream": ".bin",
		"application/msword": ".doc", "application/vnd.ms-excel": ".xls", "application/vnd.ms-powerpoint": ".ppt",
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   ".docx",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         ".xlsx",
		"application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
		"application/pgp-signature": ".asc", "application/pkcs7-signature": ".p7s", "application/x-pkcs7-signature": ".p7s",
		"application/ics": ".ics", "message/rfc822": ".eml", "message/global": ".eml",
		"message/delivery-status": ".txt", "audio/mpeg": ".mp3", "video/mp4": ".mp4",
	}
	if ext, ok := known[mt]; ok {
		return ext
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}
