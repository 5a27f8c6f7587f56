package oauthparams

import (
	"cmp"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// cleanURL returns raw without user info, query and fragment, or "" when it does not parse.
func cleanURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || raw == "" {
		return ""
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// cleanCode keeps provider error codes to a safe alphabet and length; a code that looks
// like a token is replaced entirely.
func cleanCode(code string) string {
	code = codeFilter.ReplaceAllString(strings.TrimSpace(code), "")
	code = code[:min(len(code), 64)]
	if cleanText(code, 64) != code {
		return "[redacted]"
	}
	return code
}

// cleanDescription drops Microsoft's trace/correlation trailer, then cleans the text.
func cleanDescription(desc string) string {
	if i := strings.Index(desc, "Trace ID:"); i > 0 {
		desc = desc[:i]
	}
	return cleanText(desc, 240)
}

// cleanText makes provider text safe to show: control characters become spaces, values of
// secret-looking parameters and token-like runs are replaced by "[redacted]", white space
// is collapsed and the result is cut to max characters.
func cleanText(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	s = secretKV.ReplaceAllString(s, "$1$2[redacted]")
	s = tokenRun.ReplaceAllStringFunc(s, func(run string) string {
		for _, seg := range strings.FieldsFunc(run, func(r rune) bool { return r == '.' || r == '/' }) {
			if len(seg) >= 16 && !guidLike.MatchString(seg) &&
				strings.ContainsAny(seg, "0123456789") && strings.IndexFunc(seg, isASCIILetter) >= 0 {
				return "[redacted]"
			}
		}
		return run
	})
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		s = strings.TrimSpace(string(r[:max])) + "…"
	}
	return s
}

func isASCIILetter(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }

// bodySnippet returns the start of a body that is not an OAuth answer, in words: an HTML
// page's title (or its text without tags), else the first bytes, cleaned.
func bodySnippet(mediaType string, body []byte) string {
	s := string(body[:min(len(body), 4096)])
	if strings.Contains(mediaType, "html") || strings.HasPrefix(strings.TrimSpace(s), "<") {
		if m := htmlTitle.FindStringSubmatch(s); m != nil && strings.TrimSpace(m[1]) != "" {
			s = m[1]
		} else {
			s = htmlTag.ReplaceAllString(s, " ")
		}
	}
	return cleanText(s, 80)
}

// UnexpectedResponseError is returned by CheckedTransport when an endpoint answers a
// request successfully but with a web page instead of an OAuth response.
type UnexpectedResponseError struct {
	URL         string // request URL without query
	StatusCode  int
	ContentType string
	Snippet     string // the page title or first words, cleaned
}

// Error describes the answer.
func (e *UnexpectedResponseError) Error() string {
	return fmt.Sprintf("%s answered HTTP %d with %s instead of JSON: %q", e.URL, e.StatusCode, e.ContentType, e.Snippet)
}

// CheckedTransport wraps base (http.DefaultTransport when nil) so that a 2xx answer with
// an HTML content type, which golang.org/x/oauth2 reports only as "cannot parse json",
// fails with an *UnexpectedResponseError naming the URL, content type and page title.
// Use it in the client given to oauth2 through the oauth2.HTTPClient context key.
func CheckedTransport(base http.RoundTripper) http.RoundTripper {
	return checkedTransport{base: cmp.Or(base, http.DefaultTransport)}
}

type checkedTransport struct{ base http.RoundTripper }

// RoundTrip sends req and turns a successful HTML answer into *UnexpectedResponseError.
func (t checkedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "text/html" && mt != "application/xhtml+xml" {
		return resp, nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return nil, &UnexpectedResponseError{URL: cleanURL(req.URL.String()), StatusCode: resp.StatusCode,
		ContentType: mt, Snippet: bodySnippet(mt, head)}
}
