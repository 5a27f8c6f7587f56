package actions

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"
)

// parseTestReadAll reads r in reads of size bytes.
func parseTestReadAll(r io.Reader, size int) string {
	var out bytes.Buffer
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String()
		}
	}
}

func TestParseEmailQuotedPrintable(t *testing.T) {
	cases := []struct {
		in, want string
		bad      int
	}{
		{"a=41b=\r\nc  \r\nd=\nend", "aAbc\r\ndend", 0},       // hex, soft breaks (CRLF and LF), padding dropped
		{"x  y\t=3D=ZZ= \r\nend=", "x  y\t==ZZend", 1},        // blanks before text kept, stray "=" kept
		{"trail \t ", "trail", 0},                             // padding at the end of input
		{"sp   =20\n", "sp    \n", 0},                         // encoded space after blanks
		{"nul\x00 and \x7f pass", "nul\x00 and \x7f pass", 0}, // control bytes pass through
	}
	for _, c := range cases {
		for _, size := range []int{1, 2, 3, 7, 4096} {
			d := &parseQP{br: bufio.NewReader(strings.NewReader(c.in))}
			if got := parseTestReadAll(d, size); got != c.want || d.bad != c.bad {
				t.Errorf("%q (reads of %d): %q, %d bad; want %q, %d bad", c.in, size, got, d.bad, c.want, c.bad)
			}
		}
	}
}

func TestParseEmailBase64(t *testing.T) {
	raw := make([]byte, 100000)
	for i := range raw {
		raw[i] = byte(i*7 + i>>8)
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var lines strings.Builder
	for i := 0; i < len(enc); i += 76 {
		lines.WriteString(enc[i:min(i+76, len(enc))] + "\r\n")
	}
	cases := []struct {
		in, want string
		junk     int
	}{
		{lines.String(), string(raw), 0},
		{"SGVsbG8", "Hello", 0},                    // missing padding
		{"SGVs!!bG8g*d29y#bGQ=", "Hello world", 4}, // stray characters skipped
		{"SGk=SGk=", "HiHi", 0},                    // concatenated padded chunks
		{"SGk = \t\r\n", "Hi", 0},                  // blanks anywhere
		{"QUJD\nR", "ABC", 1},                      // a dangling sextet
	}
	for _, c := range cases {
		for _, size := range []int{1, 2, 5, 4096, 65536} {
			d := &parseB64{r: strings.NewReader(c.in)}
			if got := parseTestReadAll(d, size); got != c.want || d.junk != c.junk {
				t.Errorf("%.20q (reads of %d): %d bytes, junk %d; want %d bytes, junk %d", c.in, size, len(got), d.junk, len(c.want), c.junk)
			}
		}
	}
}
