package actions

import (
	"errors"
	"io"
	"strconv"
	"strings"
)

// pop3Pipe is a batch of pipelined RETR commands whose answers a goroutine reads.
type pop3Pipe struct {
	done chan struct{}
}

// StartRetrPipeline sends RETR for every message of nums in one write (RFC 2449
// PIPELINING: the caller checks that the server announces it) and returns at once; a
// goroutine reads the answers in order, after those of an earlier pipeline still being
// read, and calls fn with each: i is the index in nums, data the message (exactly as
// Retr gives it; fn must not keep it after returning) or nil with the server's *POP3Error
// for that message, or nil with the connection's error for this and every later one.
// Every other command waits until all the answers have been read, so the session stays in
// step. fn runs on the pipeline's goroutine and must not use the client.
func (c *POP3Client) StartRetrPipeline(nums []int, fn func(i int, data io.Reader, err error)) error {
	if err := c.Err(); err != nil {
		return err
	}
	if c.pipe == nil && c.open != nil {
		if err := c.open.Close(); err != nil {
			return err
		}
	}
	if len(nums) == 0 {
		return nil
	}
	var b strings.Builder
	for _, n := range nums {
		b.WriteString("RETR " + strconv.Itoa(n) + "\r\n")
	}
	if _, err := c.conn.Write([]byte(b.String())); err != nil {
		return c.fail(err)
	}
	prev := c.pipe
	p := &pop3Pipe{done: make(chan struct{})}
	c.pipe = p
	go func() {
		defer close(p.done)
		if prev != nil {
			<-prev.done
		}
		for i, n := range nums {
			err := c.Err()
			var line string
			if err == nil {
				line, err = c.readLine()
			}
			if err == nil {
				_, err = c.status(line, "RETR "+strconv.Itoa(n))
			}
			var perr *POP3Error
			if err != nil && !errors.As(err, &perr) {
				for j := i; j < len(nums); j++ {
					fn(j, nil, err)
				}
				return
			}
			if err != nil {
				fn(i, nil, err)
				continue
			}
			r := c.startMessage(n) // bounded by n's LIST size: an endless answer cannot fill the spool
			fn(i, r, nil)
			if err := r.Close(); err != nil {
				for j := i + 1; j < len(nums); j++ {
					fn(j, nil, err)
				}
				return
			}
		}
	}()
	return nil
}
