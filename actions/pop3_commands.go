package actions

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// The POP3 commands of POP3Client (RFC 1939, RFC 2449), apart from the connection's
// basics in pop3_client.go and AUTH in pop3_auth.go.

// UserPass logs in with USER and PASS (RFC 1939). A refusal is a *POP3AuthError.
func (c *POP3Client) UserPass(user, pass string) error {
	for _, step := range []struct{ cmd, display string }{{"USER " + user, "USER"}, {"PASS " + pass, "PASS"}} {
		line, err := c.command(step.cmd)
		if err != nil {
			return fmt.Errorf("pop3 %s: %w", step.display, err)
		}
		if _, err := c.status(line, step.display); err != nil {
			var perr *POP3Error
			if errors.As(err, &perr) {
				return &POP3AuthError{Mechanism: "USER/PASS", Text: perr.Text}
			}
			return err
		}
	}
	return nil
}

// Stat returns the number of messages and their total size (STAT). Messages marked for
// deletion are not counted.
func (c *POP3Client) Stat() (count int, size int64, err error) {
	text, err := c.simple("STAT")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("pop3 STAT: malformed answer %q", clip(text))
	}
	count, err1 := strconv.Atoi(f[0])
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || count < 0 || size < 0 {
		return 0, 0, fmt.Errorf("pop3 STAT: malformed answer %q", clip(text))
	}
	c.statMax, c.statSeen = max(c.statMax, count), true
	return count, size, nil
}

// List returns every message's number and size (LIST), in number order. The client
// keeps the sizes to bound the data it accepts for each message (pop3_bound.go).
func (c *POP3Client) List() ([]POP3Entry, error) {
	es, err := c.listing("LIST", func(e *POP3Entry, v string) error {
		n, err := pop3ParseSize(v)
		e.Size = n
		return err
	})
	if err == nil {
		c.rememberList(es)
	}
	return es, err
}

// pop3ParseSize parses a message size of a LIST answer; a negative one is malformed.
func pop3ParseSize(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err == nil && n < 0 {
		err = errors.New("negative size")
	}
	return n, err
}

// UIDLs returns every message's number and unique id (UIDL), in number order.
func (c *POP3Client) UIDLs() ([]POP3Entry, error) {
	return c.listing("UIDL", func(e *POP3Entry, v string) error {
		e.UIDL = v
		return nil
	})
}

func (c *POP3Client) listing(cmd string, set func(*POP3Entry, string) error) ([]POP3Entry, error) {
	if _, err := c.simple(cmd); err != nil {
		return nil, err
	}
	var out []POP3Entry
	limit := c.listingLimit()
	err := c.readLines(func(line string) error {
		if len(out) >= limit {
			// Not drained (the answer may never end): the session is given up.
			return c.fail(&POP3ListingError{Command: cmd, Limit: limit, Stat: c.statMax, StatSeen: c.statSeen})
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return fmt.Errorf("pop3 %s: malformed line %q", cmd, clip(line))
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n <= 0 {
			return fmt.Errorf("pop3 %s: malformed line %q", cmd, clip(line))
		}
		e := POP3Entry{Number: n}
		if err := set(&e, f[1]); err != nil {
			return fmt.Errorf("pop3 %s: malformed line %q (%v)", cmd, clip(line), err)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// ListOne returns the size of message n (LIST n). The client keeps it to bound the data
// it accepts for the message (pop3_bound.go).
func (c *POP3Client) ListOne(n int) (int64, error) {
	text, err := c.simple("LIST " + strconv.Itoa(n))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, fmt.Errorf("pop3 LIST %d: malformed answer %q", n, clip(text))
	}
	size, err := pop3ParseSize(f[1])
	if err != nil {
		return 0, fmt.Errorf("pop3 LIST %d: malformed answer %q (%v)", n, clip(text), err)
	}
	c.rememberSize(n, size)
	return size, nil
}

// UIDLOne returns the unique id of message n (UIDL n).
func (c *POP3Client) UIDLOne(n int) (string, error) {
	text, err := c.simple("UIDL " + strconv.Itoa(n))
	if err != nil {
		return "", err
	}
	f := strings.Fields(text)
	if len(f) < 2 {
		return "", fmt.Errorf("pop3 UIDL %d: malformed answer %q", n, clip(text))
	}
	return f[1], nil
}

// Retr starts downloading message n (RETR n). The reader returns the message exactly as
// the server holds it (dot-stuffing and the final ".\r\n" removed, nothing else changed);
// read it to io.EOF or Close it before the next command. Close reads and discards what
// is left, keeping the session usable. When the session's LIST announced n's size, the
// reader fails with a *POP3OversizeError once far more data than that arrived, and the
// connection is then closed (see pop3DataLimit).
func (c *POP3Client) Retr(n int) (io.ReadCloser, error) {
	return c.multi("RETR "+strconv.Itoa(n), n)
}

// Top starts reading the header of message n and the first lines of its body (TOP n
// lines), like Retr.
func (c *POP3Client) Top(n, lines int) (io.ReadCloser, error) {
	return c.multi("TOP "+strconv.Itoa(n)+" "+strconv.Itoa(lines), n)
}

// RetrRaw downloads message n into memory. It is for small messages and tests; use Retr
// to stream.
func (c *POP3Client) RetrRaw(n int) (*bytes.Buffer, error) {
	r, err := c.Retr(n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(r); err != nil {
		return nil, err
	}
	return &b, nil
}

// TopHeaders reads the header of each message in nums (TOP n 0), sending the commands
// together when the server announces PIPELINING (RFC 2449), one by one otherwise. fn is
// called in order with the header (at most limit bytes of it; the rest is discarded) or
// with the server's *POP3Error for that message. An error of fn or of the connection
// stops the batch.
func (c *POP3Client) TopHeaders(nums []int, limit int64, fn func(i int, header io.Reader, err error) error) error {
	if len(nums) == 0 {
		return nil
	}
	pipeline := len(nums) > 1 && c.HasCapability("PIPELINING")
	if err := c.ready(); err != nil {
		return err
	}
	if pipeline {
		var b strings.Builder
		for _, n := range nums {
			b.WriteString("TOP " + strconv.Itoa(n) + " 0\r\n")
		}
		if _, err := c.conn.Write([]byte(b.String())); err != nil {
			return c.fail(err)
		}
	}
	for i, n := range nums {
		cmd := "TOP " + strconv.Itoa(n) + " 0"
		if !pipeline {
			if err := c.writeLine(cmd); err != nil {
				return err
			}
		}
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if _, err := c.status(line, cmd); err != nil {
			var perr *POP3Error
			if !errors.As(err, &perr) {
				return err
			}
			if err := fn(i, nil, perr); err != nil {
				return c.abandon(pipeline, nums[i+1:], err)
			}
			continue
		}
		r := c.startMessage(n)
		ferr := fn(i, io.LimitReader(r, limit), nil)
		if err := r.Close(); err != nil {
			return err
		}
		if ferr != nil {
			return c.abandon(pipeline, nums[i+1:], ferr)
		}
	}
	return nil
}

// abandon reads and discards the answers still due for pipelined TOP commands, then
// returns err.
func (c *POP3Client) abandon(pipeline bool, rest []int, err error) error {
	if !pipeline {
		return err
	}
	for _, n := range rest {
		line, rerr := c.readLine()
		if rerr != nil {
			return err
		}
		if pop3IsOK(line) {
			if rerr := c.startMessage(n).Close(); rerr != nil {
				return err
			}
		}
	}
	return err
}

// Dele marks message n for deletion (DELE n). The server deletes it only when the session
// ends with QUIT.
func (c *POP3Client) Dele(n int) error {
	_, err := c.simple("DELE " + strconv.Itoa(n))
	return err
}

// pop3DeleBatch is the number of DELE commands sent together.
const pop3DeleBatch = 100

// DeleBatch marks the messages nums for deletion (DELE), sending the commands of each
// batch of pop3DeleBatch together when the server announces PIPELINING (RFC 2449), one by
// one otherwise. fn is called in order with each message's outcome: nil or the server's
// *POP3Error. A connection error stops it and is returned.
func (c *POP3Client) DeleBatch(nums []int, fn func(i int, err error)) error {
	pipeline := len(nums) > 1 && c.HasCapability("PIPELINING")
	for start := 0; start < len(nums); start += pop3DeleBatch {
		batch := nums[start:min(start+pop3DeleBatch, len(nums))]
		if err := c.ready(); err != nil {
			return err
		}
		if pipeline {
			var b strings.Builder
			for _, n := range batch {
				b.WriteString("DELE " + strconv.Itoa(n) + "\r\n")
			}
			if _, err := c.conn.Write([]byte(b.String())); err != nil {
				return c.fail(err)
			}
		}
		for i, n := range batch {
			cmd := "DELE " + strconv.Itoa(n)
			if !pipeline {
				if err := c.writeLine(cmd); err != nil {
					return err
				}
			}
			line, err := c.readLine()
			if err != nil {
				return err
			}
			_, err = c.status(line, cmd)
			var perr *POP3Error
			if err != nil && !errors.As(err, &perr) {
				return err
			}
			fn(start+i, err)
		}
	}
	return nil
}

// Rset unmarks every message marked for deletion in this session (RSET).
func (c *POP3Client) Rset() error {
	_, err := c.simple("RSET")
	return err
}

// Noop does nothing but check the connection (NOOP).
func (c *POP3Client) Noop() error {
	_, err := c.simple("NOOP")
	return err
}
