package actions

import (
	"fmt"
	"math"
	"sort"
)

// The size bound of POP3 message data.
//
// A RETR (or TOP) answer ends only when the server sends the terminating ".\r\n" line. A
// broken or hostile server may never send it and stream data for ever; the idle timeout
// does not help, since data keeps coming. So every multi-line answer about a message is
// read through a pop3DotReader that stops once far more than the message's announced size
// (LIST) has arrived: POP3 Download Email's RETR, CurrentMessage.Open in the mail loop,
// the loop's pipelined prefetch (which writes the answers into its spool file) and TOP.
// The client remembers the sizes of every LIST and LIST n answer of the session, so the
// bound applies wherever a message is read, without each caller passing it.
//
// The bound is generous, because real servers' LIST sizes are not always exact: a server
// may count a stored LF line end as one byte and send CRLF (at most twice the size, for a
// message made of empty lines), some (Exchange without exact RFC 822 sizes, Gmail)
// announce estimates, and some add header lines at RETR time. pop3DataLimit allows four
// times the announced size plus 16 MiB: never in the way of a real message, yet an endless
// answer to a 100-byte message stops after 16 MiB (and, in the prefetch, whose messages
// are at most 256 KiB by LIST, after 17 MiB of spool at most, since the session is broken
// then and the rest of the window is not read).
//
// When the size of a message is unknown (no LIST of it in this session) there is no bound;
// Mailwright's actions always LIST first.
const (
	pop3BoundFactor = 4
	pop3BoundSlack  = 16 << 20
)

// pop3DataLimit returns the most data accepted for a message announced as size bytes; 0
// means no bound (size unknown).
func pop3DataLimit(size int64) int64 {
	if size < 0 {
		return 0
	}
	if size > (math.MaxInt64-pop3BoundSlack)/pop3BoundFactor {
		return math.MaxInt64
	}
	return pop3BoundFactor*size + pop3BoundSlack
}

// POP3OversizeError is the error of a message read when the server sent more data than
// the bound allows for the size it announced (see pop3DataLimit). The rest of the
// server's answer is never read: the connection is closed and unusable afterwards.
type POP3OversizeError struct {
	Number    int   // message number
	Announced int64 // size in LIST
	Limit     int64 // bytes accepted
}

// Error implements error.
func (e *POP3OversizeError) Error() string {
	return fmt.Sprintf("the server sent more than %d bytes for message %d, which it announced as %d bytes (LIST): "+
		"its answer is broken or does not end, so Mailwright stopped reading and closed the connection; the message stays on the server",
		e.Limit, e.Number, e.Announced)
}

// pop3Size is one message's size from a LIST answer.
type pop3Size struct {
	num  int
	size int64
}

// rememberList keeps the sizes of a LIST answer (sorted by number) for the size bound.
func (c *POP3Client) rememberList(es []POP3Entry) {
	sizes := make([]pop3Size, len(es))
	for i, e := range es {
		sizes[i] = pop3Size{e.Number, e.Size}
	}
	c.listed = sizes
	c.listedOne = nil
}

// rememberSize keeps the size of a LIST n answer.
func (c *POP3Client) rememberSize(n int, size int64) {
	if c.listedOne == nil {
		c.listedOne = map[int]int64{}
	}
	c.listedOne[n] = size
}

// sizeOf returns the size the server announced for message n in this session, or -1.
func (c *POP3Client) sizeOf(n int) int64 {
	if size, ok := c.listedOne[n]; ok {
		return size
	}
	i := sort.Search(len(c.listed), func(i int) bool { return c.listed[i].num >= n })
	if i < len(c.listed) && c.listed[i].num == n {
		return c.listed[i].size
	}
	return -1
}

// startMessage starts reading the data of an answer about message n (RETR, TOP), bounded
// by the size the server announced for it.
func (c *POP3Client) startMessage(n int) *pop3DotReader {
	r := c.startData()
	r.num, r.announced = n, c.sizeOf(n)
	r.limit = pop3DataLimit(r.announced)
	return r
}

// pop3ListingMax bounds the lines of a LIST or UIDL answer when no STAT came first.
const pop3ListingMax = 10_000_000

// listingLimit is how many lines a LIST or UIDL answer may have: a POP3 session's maildrop
// is fixed when it starts (RFC 1939 section 8), so a listing never has more lines than the
// first STAT counted; twice that plus 10,000 leaves room for servers that let mail arrive
// mid-session, and bounds the memory a broken or hostile server's endless listing takes.
func (c *POP3Client) listingLimit() int {
	if !c.statSeen {
		return pop3ListingMax
	}
	return min(2*c.statMax+10_000, pop3ListingMax)
}

// POP3ListingError is a LIST or UIDL answer with more lines than the session can hold.
type POP3ListingError struct {
	Command  string // LIST or UIDL
	Limit    int    // lines accepted
	Stat     int    // STAT's largest message count in the session
	StatSeen bool   // a STAT was answered
}

// Error implements error.
func (e *POP3ListingError) Error() string {
	stat := ""
	if e.StatSeen {
		stat = fmt.Sprintf(" (STAT counted %d messages)", e.Stat)
	}
	return fmt.Sprintf("the server's %s answer has more than %d lines%s: it is broken or does not end, so Mailwright stopped reading and closed the connection", e.Command, e.Limit, stat)
}
