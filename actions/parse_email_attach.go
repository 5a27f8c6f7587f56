package actions

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"
)

// attachment names an attachment and, when saving, streams its decoded bytes straight
// into SaveStream (no charset conversion: the file holds the bytes the sender attached).
func (p *parseRun) attachment(mt, name, cte string, body io.Reader) error {
	p.attachN++
	dec := parseNewDecoder(cte, body)
	var r io.Reader = dec
	if name == "" && (mt == "message/rfc822" || mt == "message/global") {
		br := bufio.NewReaderSize(dec, 64<<10)
		if subject := parseInnerSubject(br); subject != "" {
			name = subject + ".eml"
		}
		r = br
	}
	fallback := fmt.Sprintf("attachment-%d%s", p.attachN, parseExt(mt))
	listName := strings.TrimSpace(parseOneLine(name))
	if listName == "" {
		listName = fallback
	}
	safe := SanitizeFileName(name, fallback)
	p.res.Names = append(p.res.Names, listName)
	if !p.opt.Save {
		p.log.Info("attachment found (not saved)", "name", listName, "type", mt)
		return nil
	}
	saved, err := SaveStream(p.ctx, p.opt.Folder, safe, p.opt.Collision, r)
	if err != nil {
		if p.src.err != nil {
			return p.src.err
		}
		return fmt.Errorf("save attachment %q: %w", listName, err)
	}
	if prob := dec.problem(); prob != "" {
		p.warn("attachment %q: %s", listName, prob)
	}
	if saved.Skipped {
		p.log.Info("attachment not saved: a file of that name exists (collision: skip)", "name", listName, "path", saved.Path)
		return nil
	}
	p.res.Paths = append(p.res.Paths, saved.Path)
	p.log.Info("saved attachment", "name", listName, "path", saved.Path, "bytes", saved.Size)
	return nil
}

// parseInnerSubject reads the Subject of an attached message from the first 64 KB of
// br without consuming them.
func parseInnerSubject(br *bufio.Reader) string {
	head, _ := br.Peek(br.Size())
	h, _ := parseReadHeader(bufio.NewReader(bytes.NewReader(head)), func(string, ...any) {})
	raw := strings.ToValidUTF8(h.Get("Subject"), "\uFFFD")
	dec := &mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
		dr, _ := parseCharsetReader(cs, r)
		return dr, nil
	}}
	if s, err := dec.DecodeHeader(raw); err == nil {
		raw = s
	}
	return strings.TrimSpace(parseOneLine(raw))
}
