package actions

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// imapLoopCriteria builds the UID SEARCH criteria of an IMAP Mail Loop from its filter
// parameters; the raw "search" expression is ANDed with the rest. Errors name the parameter.
func imapLoopCriteria(v Values) (*imap.SearchCriteria, error) {
	c := &imap.SearchCriteria{}
	if v.Bool("unseen_only") {
		c.NotFlag = append(c.NotFlag, imap.FlagSeen)
	}
	if v.Bool("flagged_only") {
		c.Flag = append(c.Flag, imap.FlagFlagged)
	}
	for _, d := range []struct {
		name, label string
		dst         *time.Time
	}{{"since", "Received since", &c.Since}, {"before", "Received before", &c.Before}} {
		if s := v.String(d.name); s != "" {
			t, err := imapLoopParseDate(s)
			if err != nil {
				return nil, fmt.Errorf("%q (%s): %v", d.label, d.name, err)
			}
			*d.dst = t
		}
	}
	if days := v.Int("older_than_days"); days > 0 {
		y, m, d := time.Now().AddDate(0, 0, -int(days)).Date()
		cut := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		if c.Before.IsZero() || cut.Before(c.Before) {
			c.Before = cut
		}
	} else if days < 0 {
		return nil, fmt.Errorf("%q (older_than_days) must not be negative", "Older than (days)")
	}
	if !c.Since.IsZero() && !c.Before.IsZero() && !c.Before.After(c.Since) {
		return nil, fmt.Errorf("%q (before) %s is not after %q (since) %s: no message can match", "Received before", v.String("before"), "Received since", v.String("since"))
	}
	for _, h := range []struct{ param, header string }{{"from_contains", "From"}, {"to_contains", "To"}, {"subject_contains", "Subject"}} {
		if s := v.String(h.param); s != "" {
			c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: h.header, Value: s})
		}
	}
	for _, n := range []struct {
		name string
		dst  *int64
	}{{"larger_than", &c.Larger}, {"smaller_than", &c.Smaller}} {
		x := v.Int(n.name)
		if x < 0 {
			return nil, fmt.Errorf("%q is negative: give a size in bytes", n.name)
		}
		*n.dst = x
	}
	if raw := v.String("search"); strings.TrimSpace(raw) != "" {
		extra, err := imapLoopParseSearch(raw)
		if err != nil {
			return nil, fmt.Errorf("%q (search): %w", "Search expression", err)
		}
		imapLoopAnd(c, extra)
	}
	return c, nil
}

// imapLoopParseDate reads a date as YYYY-MM-DD (or IMAP's 2-Jan-2006).
func imapLoopParseDate(s string) (time.Time, error) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	for _, layout := range []string{"2006-01-02", "2-Jan-2006", "02-Jan-2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date: write it as YYYY-MM-DD, e.g. 2024-03-31", s)
}

// imapLoopAnd adds src's conditions to dst (both must hold). Unlike
// imap.SearchCriteria.And it keeps dst's SMALLER when src has none.
func imapLoopAnd(dst, src *imap.SearchCriteria) {
	if src == nil {
		return
	}
	dst.SeqNum = append(dst.SeqNum, src.SeqNum...)
	dst.UID = append(dst.UID, src.UID...)
	later := func(a, b time.Time) time.Time {
		if a.IsZero() || (!b.IsZero() && b.After(a)) {
			return b
		}
		return a
	}
	earlier := func(a, b time.Time) time.Time {
		if a.IsZero() || (!b.IsZero() && b.Before(a)) {
			return b
		}
		return a
	}
	dst.Since, dst.Before = later(dst.Since, src.Since), earlier(dst.Before, src.Before)
	dst.SentSince, dst.SentBefore = later(dst.SentSince, src.SentSince), earlier(dst.SentBefore, src.SentBefore)
	dst.Header = append(dst.Header, src.Header...)
	dst.Body = append(dst.Body, src.Body...)
	dst.Text = append(dst.Text, src.Text...)
	dst.Flag = append(dst.Flag, src.Flag...)
	dst.NotFlag = append(dst.NotFlag, src.NotFlag...)
	if src.Larger > dst.Larger {
		dst.Larger = src.Larger
	}
	if src.Smaller > 0 && (dst.Smaller == 0 || src.Smaller < dst.Smaller) {
		dst.Smaller = src.Smaller
	}
	dst.Not = append(dst.Not, src.Not...)
	dst.Or = append(dst.Or, src.Or...)
}

// imapLoopToken is one token of a raw SEARCH expression.
type imapLoopToken struct {
	text   string
	quoted bool // a quoted string (never a keyword or parenthesis)
	pos    int  // 1-based character position, for messages
}

// imapLoopTokenize splits a SEARCH expression into atoms, quoted strings and parentheses.
func imapLoopTokenize(expr string) ([]imapLoopToken, error) {
	var toks []imapLoopToken
	rs := []rune(expr)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\r' || r == '\n':
			i++
		case r == '(' || r == ')':
			toks = append(toks, imapLoopToken{text: string(r), pos: i + 1})
			i++
		case r == '"':
			start := i
			var b strings.Builder
			i++
			for ; i < len(rs) && rs[i] != '"'; i++ {
				if rs[i] == '\\' && i+1 < len(rs) {
					i++
				}
				b.WriteRune(rs[i])
			}
			if i >= len(rs) {
				return nil, fmt.Errorf("the quoted string starting at character %d has no closing \"", start+1)
			}
			i++
			toks = append(toks, imapLoopToken{text: b.String(), quoted: true, pos: start + 1})
		case r == '{':
			return nil, fmt.Errorf("character %d: literals ({n}) are not supported: write the value as a quoted string", i+1)
		default:
			start := i
			for i < len(rs) && !strings.ContainsRune(" \t\r\n()\"", rs[i]) {
				i++
			}
			toks = append(toks, imapLoopToken{text: string(rs[start:i]), pos: start + 1})
		}
	}
	return toks, nil
}

// imapLoopSearchParser parses RFC 3501 search keys into imap.SearchCriteria, because
// go-imap v2 sends only structured criteria.
type imapLoopSearchParser struct {
	toks  []imapLoopToken
	i     int
	depth int // current nesting of NOT, OR and parentheses
}

// imapLoopMaxNesting bounds how deeply NOT, OR and parentheses may nest in a raw search:
// far beyond any real expression, far below what would exhaust the stack.
const imapLoopMaxNesting = 100

// imapLoopParseSearch parses a raw IMAP SEARCH expression such as
// `OR FROM "anna" FROM "ben" NOT SUBJECT "newsletter" SINCE 1-Jan-2024`.
func imapLoopParseSearch(expr string) (*imap.SearchCriteria, error) {
	toks, err := imapLoopTokenize(expr)
	if err != nil {
		return nil, err
	}
	p := &imapLoopSearchParser{toks: toks}
	c, err := p.keys(false)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// keys parses search keys until the end (or the closing parenthesis when inParen).
func (p *imapLoopSearchParser) keys(inParen bool) (imap.SearchCriteria, error) {
	var c imap.SearchCriteria
	n := 0
	for {
		if p.i >= len(p.toks) {
			if inParen {
				return c, fmt.Errorf("a \"(\" is never closed")
			}
			return c, nil
		}
		if t := p.toks[p.i]; !t.quoted && t.text == ")" {
			if !inParen {
				return c, fmt.Errorf("character %d: \")\" without \"(\"", t.pos)
			}
			if n == 0 {
				return c, fmt.Errorf("character %d: empty parentheses", t.pos)
			}
			p.i++
			return c, nil
		}
		k, err := p.key()
		if err != nil {
			return c, err
		}
		imapLoopAnd(&c, &k)
		n++
	}
}

// next returns the next token, or an error naming what was expected.
func (p *imapLoopSearchParser) next(what string, after imapLoopToken) (imapLoopToken, error) {
	if p.i >= len(p.toks) {
		return imapLoopToken{}, fmt.Errorf("%s (character %d) needs %s after it", strings.ToUpper(after.text), after.pos, what)
	}
	t := p.toks[p.i]
	p.i++
	if !t.quoted && (t.text == "(" || t.text == ")") {
		return t, fmt.Errorf("%s (character %d) needs %s after it, not %q", strings.ToUpper(after.text), after.pos, what, t.text)
	}
	return t, nil
}

// key parses one search key.
func (p *imapLoopSearchParser) key() (imap.SearchCriteria, error) {
	var c imap.SearchCriteria
	t := p.toks[p.i]
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > imapLoopMaxNesting {
		return c, fmt.Errorf("character %d: NOT, OR and parentheses nest more than %d deep: simplify the search", t.pos, imapLoopMaxNesting)
	}
	p.i++
	if t.quoted {
		return c, fmt.Errorf("character %d: %q is a string where a search key (FROM, SUBJECT, SINCE, …) was expected", t.pos, t.text)
	}
	if t.text == "(" {
		return p.keys(true)
	}
	if t.text[0] == '*' || (t.text[0] >= '0' && t.text[0] <= '9') {
		set, err := imapMsgsParseNumSet(t.text)
		if err != nil {
			return c, fmt.Errorf("character %d: %v", t.pos, err)
		}
		var seq imap.SeqSet
		for _, r := range set {
			seq = append(seq, imap.SeqRange{Start: uint32(r.Start), Stop: uint32(r.Stop)})
		}
		c.SeqNum = append(c.SeqNum, seq)
		return c, nil
	}
	word := strings.ToUpper(t.text)
	str := func() (string, error) {
		a, err := p.next("a string", t)
		return a.text, err
	}
	date := func() (time.Time, error) {
		a, err := p.next("a date such as 1-Jan-2024", t)
		if err != nil {
			return time.Time{}, err
		}
		d, err := imapLoopParseDate(a.text)
		if err != nil {
			return d, fmt.Errorf("%s (character %d): %v", word, t.pos, err)
		}
		return d, nil
	}
	var err error
	switch word {
	case "ALL":
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN":
		c.Flag = append(c.Flag, imap.Flag(`\`+word[:1]+strings.ToLower(word[1:])))
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		c.NotFlag = append(c.NotFlag, imap.Flag(`\`+word[2:3]+strings.ToLower(word[3:])))
	case "KEYWORD", "UNKEYWORD":
		var s string
		if s, err = str(); err == nil {
			f := imap.Flag(s)
			if err = imapFlagsCheckKeyword(s); err != nil {
				err = fmt.Errorf("%s (character %d): %v", word, t.pos, err)
			} else if word == "KEYWORD" {
				c.Flag = append(c.Flag, f)
			} else {
				c.NotFlag = append(c.NotFlag, f)
			}
		}
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		var s string
		if s, err = str(); err == nil {
			c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: word, Value: s})
		}
	case "HEADER":
		var name, s string
		if name, err = str(); err == nil {
			if s, err = str(); err == nil {
				c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: name, Value: s})
			}
		}
	case "BODY":
		var s string
		if s, err = str(); err == nil {
			c.Body = append(c.Body, s)
		}
	case "TEXT":
		var s string
		if s, err = str(); err == nil {
			c.Text = append(c.Text, s)
		}
	case "SINCE":
		c.Since, err = date()
	case "BEFORE":
		c.Before, err = date()
	case "ON":
		if c.Since, err = date(); err == nil {
			c.Before = c.Since.AddDate(0, 0, 1)
		}
	case "SENTSINCE":
		c.SentSince, err = date()
	case "SENTBEFORE":
		c.SentBefore, err = date()
	case "SENTON":
		if c.SentSince, err = date(); err == nil {
			c.SentBefore = c.SentSince.AddDate(0, 0, 1)
		}
	case "LARGER", "SMALLER":
		var s string
		if s, err = str(); err == nil {
			n, perr := strconv.ParseInt(s, 10, 64)
			switch {
			case perr != nil || n < 0:
				err = fmt.Errorf("%s (character %d) needs a size in bytes, not %q", word, t.pos, s)
			case word == "LARGER":
				c.Larger = n
			case n == 0:
				err = fmt.Errorf("SMALLER 0 (character %d) matches no message", t.pos)
			default:
				c.Smaller = n
			}
		}
	case "UID":
		var s string
		if s, err = str(); err == nil {
			set, perr := imapMsgsParseNumSet(s)
			if perr != nil {
				err = fmt.Errorf("UID (character %d): %v", t.pos, perr)
			} else {
				c.UID = append(c.UID, set)
			}
		}
	case "NOT":
		if p.i >= len(p.toks) {
			return c, fmt.Errorf("NOT (character %d) needs a search key after it", t.pos)
		}
		var k imap.SearchCriteria
		if k, err = p.key(); err == nil {
			c.Not = append(c.Not, k)
		}
	case "OR":
		var a, b imap.SearchCriteria
		for _, dst := range []*imap.SearchCriteria{&a, &b} {
			if p.i >= len(p.toks) {
				return c, fmt.Errorf("OR (character %d) needs two search keys after it", t.pos)
			}
			if *dst, err = p.key(); err != nil {
				return c, err
			}
		}
		c.Or = append(c.Or, [2]imap.SearchCriteria{a, b})
	case "NEW", "OLD", "RECENT":
		err = fmt.Errorf("character %d: %s is not supported (the \\Recent flag is obsolete in IMAP4rev2): use UNSEEN, or the loop's \"Only new since last run\"", t.pos, word)
	case ")":
		err = fmt.Errorf("character %d: \")\" without \"(\"", t.pos)
	default:
		err = fmt.Errorf("character %d: unknown search key %q (known: ALL, ANSWERED, BCC, BEFORE, BODY, CC, DELETED, DRAFT, FLAGGED, FROM, HEADER, KEYWORD, LARGER, NOT, ON, OR, SEEN, SENTBEFORE, SENTON, SENTSINCE, SINCE, SMALLER, SUBJECT, TEXT, TO, UID, UN…, and sequence sets)", t.pos, t.text)
	}
	return c, err
}

// imapMsgsParseNumSet parses an IMAP sequence set such as "1,4:7,20:*" (as UIDs).
func imapMsgsParseNumSet(s string) (imap.UIDSet, error) {
	var set imap.UIDSet
	num := func(x string) (imap.UID, error) {
		if x == "*" {
			return 0, nil
		}
		n, err := strconv.ParseUint(x, 10, 32)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%q is not a number set such as 1,4:7,20:* (numbers start at 1)", s)
		}
		return imap.UID(n), nil
	}
	if s == "" {
		return nil, fmt.Errorf("empty number set")
	}
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		start, err := num(a)
		if err != nil {
			return nil, err
		}
		stop := start
		if isRange {
			if stop, err = num(b); err != nil {
				return nil, err
			}
		}
		if start != 0 && stop != 0 && stop < start {
			start, stop = stop, start
		}
		set = append(set, imap.UIDRange{Start: start, Stop: stop})
	}
	return set, nil
}
