package actions

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// POP3Client is a POP3 connection (RFC 1939) with the extensions mail automation needs:
// CAPA (RFC 2449), STLS (through DialPOP3), SASL AUTH (POP3Authenticate), UIDL, TOP and
// PIPELINING for batches of TOP. Messages stream: Retr returns a reader that undoes the
// dot-stuffing and removes the final ".\r\n" but keeps every other byte exactly as the
// server sent it, so memory does not grow with the size of a message.
//
// One command runs at a time. A multi-line answer (Retr, Top) must be read to its end or
// closed before the next command; a command sent while one is still open reads and
// discards the rest of it first. A POP3Client is used by one goroutine at a time, except
// Close, which any goroutine may call to abort (this is how a cancelled run stops a
// blocked read), and the goroutine of a background pipeline (StartRetrPipeline), which
// every other command waits for. After a network error or Close every command returns
// the same error.
type POP3Client struct {
	addr string
	conn *pop3NetConn
	br   *bufio.Reader
	open *pop3DotReader    // multi-line answer not yet read to its end
	caps map[string]string // CAPA: upper-case name → arguments; nil until asked
	pipe *pop3Pipe         // pipelined answers a goroutine is still reading, or nil

	// Sizes the server announced in this session (LIST, LIST n), for the bound on a
	// message's data (pop3_bound.go).
	listed    []pop3Size
	listedOne map[int]int64
	// The largest message count STAT gave in this session (statSeen: one did), for the
	// bound on the lines of a LIST or UIDL answer.
	statMax  int
	statSeen bool

	mu  sync.Mutex
	err error // why the connection is unusable; nil while it works
}

// errPOP3Closed is the error of commands after Close or Quit.
var errPOP3Closed = errors.New("connection closed")

// POP3Error is a POP3 server's -ERR answer to a command.
type POP3Error struct {
	Command string // the command without arguments that could be secret, e.g. "RETR 3"
	Text    string // the server's text after "-ERR "
}

// Error implements error.
func (e *POP3Error) Error() string {
	return fmt.Sprintf("pop3 %s refused: %s", e.Command, e.Text)
}

// POP3Entry is one line of a LIST or UIDL answer.
type POP3Entry struct {
	Number int    // message number in this session, from 1
	Size   int64  // size in octets (LIST)
	UIDL   string // unique id (UIDL)
}

// Addr returns the server's host:port.
func (c *POP3Client) Addr() string { return c.addr }

// Err returns nil while the connection is usable, else why it is not (a network error,
// a timeout, Close or Quit).
func (c *POP3Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection at once, without QUIT: the server then deletes nothing
// (RFC 1939 section 6). Safe to call from any goroutine and more than once.
func (c *POP3Client) Close() error {
	c.fail(errPOP3Closed)
	return nil
}

// fail makes the connection unusable because of err (the first cause is kept) and closes
// it. It returns the kept cause, wrapped with the server's address.
func (c *POP3Client) fail(err error) error {
	c.mu.Lock()
	if c.err == nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		var oversize *POP3OversizeError
		var listing *POP3ListingError
		switch {
		case errors.As(err, &oversize), errors.As(err, &listing):
			// Not a network failure (nor temporary): the server's answer is broken.
			err = fmt.Errorf("connection to %s closed: %w", c.addr, err)
		case err != errPOP3Closed:
			err = fmt.Errorf("connection to %s lost: %w", c.addr, err)
		}
		c.err = err
	}
	err = c.err
	c.mu.Unlock()
	c.conn.Close()
	return err
}

// ready returns the reason the connection cannot take a command, after the answers of
// a background pipeline (StartRetrPipeline) and an open multi-line answer are read.
func (c *POP3Client) ready() error {
	if c.pipe != nil {
		<-c.pipe.done
		c.pipe = nil
	}
	if err := c.Err(); err != nil {
		return err
	}
	if c.open != nil {
		if err := c.open.Close(); err != nil {
			return err
		}
	}
	return nil
}

// readLine reads one line of at most pop3BufferSize bytes, without its line end.
func (c *POP3Client) readLine() (string, error) {
	b, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", c.fail(fmt.Errorf("server sent a line longer than %d bytes", pop3BufferSize))
	}
	if err != nil {
		return "", c.fail(err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// writeLine sends one line (CRLF is added). A line break inside s would smuggle in a
// second command, so it is refused.
func (c *POP3Client) writeLine(s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return errors.New("pop3: a command argument contains a line break")
	}
	if _, err := c.conn.Write([]byte(s + "\r\n")); err != nil {
		return c.fail(err)
	}
	return nil
}

// command sends cmd and returns the status line of the answer, whatever it is.
func (c *POP3Client) command(cmd string) (string, error) {
	if err := c.ready(); err != nil {
		return "", err
	}
	if err := c.writeLine(cmd); err != nil {
		return "", err
	}
	return c.readLine()
}

// status checks a status line: the text after +OK, or a *POP3Error for -ERR. Anything
// else breaks the connection (the client and server are out of step).
func (c *POP3Client) status(line, display string) (string, error) {
	switch {
	case pop3IsOK(line):
		return pop3Text(line), nil
	case pop3IsErr(line):
		return "", &POP3Error{Command: display, Text: pop3Text(line)}
	}
	return "", c.fail(fmt.Errorf("unexpected answer %q to %s", clip(line), display))
}

// simple runs a command with a one-line answer and returns the text after +OK.
func (c *POP3Client) simple(cmd string) (string, error) {
	line, err := c.command(cmd)
	if err != nil {
		return "", err
	}
	return c.status(line, cmd)
}

// multi runs a command with a multi-line answer about message n (RETR, TOP) and returns
// the reader of its data, bounded by n's announced size.
func (c *POP3Client) multi(cmd string, n int) (*pop3DotReader, error) {
	if _, err := c.simple(cmd); err != nil {
		return nil, err
	}
	return c.startMessage(n), nil
}

func (c *POP3Client) startData() *pop3DotReader {
	r := &pop3DotReader{c: c, lineStart: true}
	c.open = r
	return r
}

// readLines reads the lines of a multi-line answer (CAPA, LIST, UIDL) and calls fn for
// each, without line ends.
func (c *POP3Client) readLines(fn func(line string) error) error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if line == "." {
			return nil
		}
		if ferr := fn(strings.TrimPrefix(line, ".")); ferr != nil {
			// Keep in step: read the rest of the answer before reporting fn's error.
			for line != "." {
				if line, err = c.readLine(); err != nil {
					return err
				}
			}
			return ferr
		}
	}
}

// readCapa reads the lines of a CAPA answer.
func (c *POP3Client) readCapa() (map[string]string, error) {
	caps := map[string]string{}
	err := c.readLines(func(line string) error {
		if len(caps) > 200 {
			return errors.New("CAPA answer too long")
		}
		name, args, _ := strings.Cut(line, " ")
		caps[strings.ToUpper(name)] = args
		return nil
	})
	return caps, err
}

// Capabilities returns the server's CAPA answer (upper-case names → arguments), asking
// once per connection. A server without CAPA has none.
func (c *POP3Client) Capabilities() (map[string]string, error) {
	if c.caps != nil {
		return c.caps, nil
	}
	line, err := c.command("CAPA")
	if err != nil {
		return nil, err
	}
	if !pop3IsOK(line) {
		c.caps = map[string]string{}
		return c.caps, nil
	}
	caps, err := c.readCapa()
	if err != nil {
		return nil, err
	}
	c.caps = caps
	return caps, nil
}

// HasCapability reports whether CAPA lists name (e.g. "PIPELINING", "UIDL", "TOP").
func (c *POP3Client) HasCapability(name string) bool {
	caps, err := c.Capabilities()
	if err != nil {
		return false
	}
	_, ok := caps[strings.ToUpper(name)]
	return ok
}

// SASLMechanisms returns the mechanisms CAPA's SASL line lists (upper case).
func (c *POP3Client) SASLMechanisms() []string {
	caps, err := c.Capabilities()
	if err != nil {
		return nil
	}
	return strings.Fields(strings.ToUpper(caps["SASL"]))
}

// Quit ends the session with QUIT, which makes the server delete the messages marked with
// DELE, and closes the connection (also on error). An error means the deletions may not
// have been done: -ERR (a *POP3Error) says the server failed to remove some, a broken
// connection that it removed none.
func (c *POP3Client) Quit() error {
	line, err := c.command("QUIT")
	defer c.fail(errPOP3Closed)
	if err != nil {
		return err
	}
	_, err = c.status(line, "QUIT")
	return err
}

// pop3Sorted sorts names in place and returns them.
func pop3Sorted(names []string) []string {
	sort.Strings(names)
	return names
}
