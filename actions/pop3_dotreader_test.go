package actions

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// pop3WireClient is a POP3Client that reads wire from a reader handing out one byte at a
// time (so every buffer boundary is exercised); its socket is one end of a pipe.
func pop3WireClient(t testing.TB, wire []byte, oneByte bool) *POP3Client {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	var r io.Reader = bytes.NewReader(wire)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	return &POP3Client{addr: "wire", conn: &pop3NetConn{Conn: a, idle: time.Second}, br: bufio.NewReaderSize(r, pop3BufferSize)}
}

// pop3Stuff encodes msg as a server sends it in a multi-line answer: a "." added to
// every line that starts with "." (a line starts after each LF), CRLF added when msg does
// not end with LF, then ".\r\n". It returns the wire bytes and what the client must give
// back (msg, plus the added CRLF).
func pop3Stuff(msg []byte) (wire, want []byte) {
	want = msg
	if len(msg) > 0 && msg[len(msg)-1] != '\n' {
		want = append(append([]byte(nil), msg...), '\r', '\n')
	}
	var w bytes.Buffer
	start := true
	for _, c := range want {
		if start && c == '.' {
			w.WriteByte('.')
		}
		w.WriteByte(c)
		start = c == '\n'
	}
	w.WriteString(".\r\n")
	return w.Bytes(), want
}

// readAllSizes reads r with reads of varying sizes.
func readAllSizes(r io.Reader, rnd *rand.Rand) ([]byte, error) {
	var out []byte
	for {
		p := make([]byte, 1+rnd.Intn(9000))
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestPOP3DotReaderCases(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	for _, tc := range []struct{ name, wire, want string }{
		{"empty", ".\r\n", ""},
		{"plain", "a\r\nb\r\n.\r\n", "a\r\nb\r\n"},
		{"stuffed dot line", "..\r\n.\r\n", ".\r\n"},
		{"stuffed dots", "...\r\n..hidden\r\nx.\r\n.\r\n", "..\r\n.hidden\r\nx.\r\n"},
		{"unstuffed dot (RFC 1939: strip)", ".x\r\n.\r\n", "x\r\n"},
		{"dot then bare CR", ".\r.\r\n.\r\n", "\r.\r\n"},
		{"bare LF kept", "bare\nlf\n..dot after LF\n.\r\n", "bare\nlf\n.dot after LF\n"},
		{"bare CR kept", "cr\rinside\r\r\n\r\n.\r\n", "cr\rinside\r\r\n\r\n"},
		{"8-bit and NUL", "\x00\xff\x80\xc3\xa9\r\n.\r\n", "\x00\xff\x80\xc3\xa9\r\n"},
		{"line longer than the buffer", long + "\r\n." + long + "\r\n.\r\n", long + "\r\n" + long + "\r\n"},
		{"terminator-like text inside a line", "a.\r\n.\r\nb\r\n", "a.\r\n"},
	} {
		for _, oneByte := range []bool{false, true} {
			c := pop3WireClient(t, []byte(tc.wire+"+OK next\r\n"), oneByte)
			r := c.startData()
			got, err := readAllSizes(r, rand.New(rand.NewSource(1)))
			if err != nil || string(got) != tc.want {
				t.Fatalf("%s (one byte=%v): got %q, %v; want %q", tc.name, oneByte, clip(string(got)), err, clip(tc.want))
			}
			if tc.name == "terminator-like text inside a line" {
				continue
			}
			// The connection is in step: the next answer follows.
			if line, err := c.readLine(); err != nil || line != "+OK next" {
				t.Fatalf("%s: next line %q, %v", tc.name, line, err)
			}
		}
	}
}

func TestPOP3DotReaderRandom(t *testing.T) {
	rnd := rand.New(rand.NewSource(42))
	alphabet := []byte(".\r\n\x00\xffa. \r\n\n..")
	for i := range 300 {
		msg := make([]byte, rnd.Intn(3000))
		for k := range msg {
			if rnd.Intn(3) == 0 {
				msg[k] = byte(rnd.Intn(256))
			} else {
				msg[k] = alphabet[rnd.Intn(len(alphabet))]
			}
		}
		wire, want := pop3Stuff(msg)
		c := pop3WireClient(t, append(wire, "+OK\r\n"...), i%2 == 0)
		got, err := readAllSizes(c.startData(), rnd)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: got %q, %v; want %q", i, got, err, want)
		}
		if line, err := c.readLine(); err != nil || line != "+OK" {
			t.Fatalf("message %d: next line %q, %v", i, line, err)
		}
	}
}

func FuzzPOP3DotReader(f *testing.F) {
	for _, s := range []string{"", ".", "..\r\n", "a\nb", ".\r.\r\n", "x\r\n.\r\n", "\r\n.\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		wire, want := pop3Stuff(msg)
		c := pop3WireClient(t, wire, len(msg)%2 == 0)
		got, err := io.ReadAll(c.startData())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	})
}

func TestPOP3DotReaderCloseDrains(t *testing.T) {
	c := pop3WireClient(t, []byte("line 1\r\n..line 2\r\n"+strings.Repeat("z", 70_000)+"\r\n.\r\n+OK after\r\n"), false)
	r := c.startData()
	buf := make([]byte, 3)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "lin" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if c.open != nil {
		t.Fatal("the client still has an open answer after Close")
	}
	if line, err := c.readLine(); err != nil || line != "+OK after" {
		t.Fatalf("next line %q, %v", line, err)
	}
}

func TestPOP3DotReaderTruncated(t *testing.T) {
	for _, wire := range []string{"abc\r\n", "abc\r\n.", "abc\r\n.\r", "abc"} {
		c := pop3WireClient(t, []byte(wire), false)
		_, err := io.ReadAll(c.startData())
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%q: err = %v, want unexpected EOF", wire, err)
		}
		if c.Err() == nil {
			t.Fatalf("%q: the client is still usable after a cut answer", wire)
		}
	}
}
