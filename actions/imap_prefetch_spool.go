package actions

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// prefetchSpool holds message bodies the IMAP and POP3 mail loops fetched ahead of their
// body steps (one pipelined request per window of messages) in a temporary file, so that
// CurrentMessage.Open serves them without a round trip to the server. Bodies stream
// through it: memory does not grow with the size or number of messages (a 64 KiB write
// buffer and a 32 KiB copy buffer). The file is a cache, never the user's copy: nothing
// is fsynced, it is unlinked as soon as it is created where the system allows that (so a
// crash leaves nothing behind) and removed by close otherwise.
//
// A spool is filled by one goroutine (copyIn or write, then finish) and read afterwards,
// or, with flush after each write, while it is being filled; readers may be used from any
// goroutine. Keys are UIDs (IMAP).
type prefetchSpool struct {
	f        *os.File
	name     string // removed by close when it could not be unlinked at once
	unlinked bool
	bufs     *prefetchBuf // returned to prefetchBuffers by finish
	w        *bufio.Writer
	buf      []byte
	size     int64 // bytes written
	werr     error // first write error: later bodies are drained, not stored
	spans    map[uint64]prefetchSpan

	mu     sync.Mutex
	closed bool
}

// prefetchBuf is a spool's write and copy buffers, reused from spool to spool.
type prefetchBuf struct {
	w   *bufio.Writer
	buf []byte
}

var prefetchBuffers = sync.Pool{New: func() any {
	return &prefetchBuf{w: bufio.NewWriterSize(nil, 64<<10), buf: make([]byte, 32<<10)}
}}

// prefetchSpan is where one message's body lies in the spool file.
type prefetchSpan struct{ off, n int64 }

// newPrefetchSpool creates an empty spool file in env's temporary folder.
func newPrefetchSpool(env *Env) (*prefetchSpool, error) {
	f, err := env.tempFile("mailwright-spool-*")
	if err != nil {
		return nil, fmt.Errorf("create a temporary file for messages fetched ahead: %w", err)
	}
	b := prefetchBuffers.Get().(*prefetchBuf)
	b.w.Reset(f)
	s := &prefetchSpool{f: f, name: f.Name(), bufs: b, w: b.w, buf: b.buf, spans: map[uint64]prefetchSpan{}}
	s.unlinked = os.Remove(f.Name()) == nil // fails on Windows while the file is open
	return s, nil
}

// copyIn reads r to its end into the spool under key. It returns an error only when
// reading r fails (the connection broke); then nothing is stored. When the spool cannot be
// written (a full disk), r is still read to its end, so the protocol stays in step, and
// stored is false: the message is then fetched from the server when it is opened. want
// is the number of bytes r must give (-1: any); a different count is not stored.
func (s *prefetchSpool) copyIn(key uint64, r io.Reader, want int64) (stored bool, err error) {
	sp, stored, err := s.write(r, want)
	if stored {
		s.spans[key] = sp
	}
	return stored, err
}

// write is copyIn without a key: it returns where the body lies.
func (s *prefetchSpool) write(r io.Reader, want int64) (sp prefetchSpan, stored bool, err error) {
	start := s.size
	var n int64
	for {
		m, rerr := r.Read(s.buf)
		if m > 0 {
			n += int64(m)
			if s.werr == nil {
				if _, werr := s.w.Write(s.buf[:m]); werr != nil {
					s.werr = werr
				}
				s.size += int64(m)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return prefetchSpan{}, false, rerr
		}
	}
	if s.werr != nil || (want >= 0 && n != want) {
		return prefetchSpan{}, false, nil
	}
	return prefetchSpan{off: start, n: n}, true, nil
}

// flush makes the bodies written so far readable while more are written; it returns the
// spool's write error, if any (nothing more is stored then).
func (s *prefetchSpool) flush() error {
	if s.werr == nil {
		s.werr = s.w.Flush()
	}
	return s.werr
}

// drop forgets key's body (it turned out not to be what the server announced).
func (s *prefetchSpool) drop(key uint64) { delete(s.spans, key) }

// finish makes the stored bodies readable. After a write error nothing stored under a
// key is readable (spans returned by write and flushed stay valid). Neither copyIn nor
// write may be called afterwards.
func (s *prefetchSpool) finish() error {
	if s.werr == nil {
		s.werr = s.w.Flush()
	}
	if s.bufs != nil {
		s.bufs.w.Reset(nil)
		prefetchBuffers.Put(s.bufs)
		s.bufs, s.w, s.buf = nil, nil, nil
	}
	if s.werr != nil {
		clear(s.spans)
		return fmt.Errorf("write messages fetched ahead to %s: %w", s.name, s.werr)
	}
	return nil
}

// count returns the number of bodies stored.
func (s *prefetchSpool) count() int { return len(s.spans) }

// open returns a reader of key's body, or false when the spool does not hold it.
func (s *prefetchSpool) open(key uint64) (io.ReadCloser, bool) {
	sp, ok := s.spans[key]
	if !ok {
		return nil, false
	}
	return s.reader(sp), true
}

// reader returns a reader of the body at sp (written and flushed).
func (s *prefetchSpool) reader(sp prefetchSpan) io.ReadCloser {
	return &prefetchReader{r: io.NewSectionReader(s.f, sp.off, sp.n), want: sp.n}
}

// close removes the spool file. Readers still open fail from then on.
func (s *prefetchSpool) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.f.Close()
	if !s.unlinked {
		os.Remove(s.name)
	}
}

// prefetchReader reads one spooled body and checks that all of it came back.
type prefetchReader struct {
	r    *io.SectionReader
	n    int64
	want int64
}

func (p *prefetchReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if err == io.EOF && p.n != p.want {
		return n, fmt.Errorf("message fetched ahead: read %d of its %d bytes back from the temporary file", p.n, p.want)
	}
	if err != nil && err != io.EOF {
		if errors.Is(err, os.ErrClosed) {
			err = errors.New("message fetched ahead: the loop has moved on to other messages")
		}
		return n, err
	}
	return n, err
}

func (p *prefetchReader) Close() error { return nil }
