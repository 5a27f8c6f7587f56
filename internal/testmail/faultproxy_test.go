package testmail

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// faultEcho is a target that records what it receives and answers each connection with
// greeting, then echoes.
type faultEcho struct {
	ln       net.Listener
	received chan []byte // everything one connection sent, when it ends
}

func startFaultEcho(t *testing.T, greeting []byte) *faultEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &faultEcho{ln: ln, received: make(chan []byte, 10)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(greeting)
				var got bytes.Buffer
				io.Copy(io.MultiWriter(&got, c), c)
				e.received <- got.Bytes()
			}()
		}
	}()
	return e
}

func dialProxy(t *testing.T, p *FaultProxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestFaultProxyModes: each mode does to the bytes exactly what it says.
func TestFaultProxyModes(t *testing.T) {
	greeting := bytes.Repeat([]byte("g"), 100_000)
	echo := startFaultEcho(t, greeting)
	p := StartFaultProxy(t, echo.ln.Addr().String())

	t.Run("pass", func(t *testing.T) {
		c := dialProxy(t, p)
		got := make([]byte, len(greeting))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, greeting) {
			t.Fatalf("greeting: %v", err)
		}
		c.Write([]byte("hello"))
		c.(*net.TCPConn).CloseWrite()
		rest, _ := io.ReadAll(c)
		if string(rest) != "hello" || string(<-echo.received) != "hello" {
			t.Fatalf("echo %q", rest)
		}
	})

	t.Run("cut to client after N", func(t *testing.T) {
		p.Set(Fault{Kind: FaultCut, Dir: ToClient, After: 12_345})
		c := dialProxy(t, p)
		got, err := io.ReadAll(c)
		if len(got) != 12_345 || err != nil {
			t.Fatalf("got %d bytes (%v), want exactly 12345 then EOF", len(got), err)
		}
		<-echo.received
		if p.Fired() != 1 {
			t.Fatalf("fired %d", p.Fired())
		}
		// It fired once: the next connection passes.
		c2 := dialProxy(t, p)
		if _, err := io.ReadFull(c2, make([]byte, len(greeting))); err != nil {
			t.Fatalf("after the cut: %v", err)
		}
		c2.Close()
		<-echo.received
	})

	t.Run("cut to server after N", func(t *testing.T) {
		c := dialProxy(t, p)
		io.ReadFull(c, make([]byte, len(greeting)))
		p.Set(Fault{Kind: FaultCut, Dir: ToServer, After: 1000})
		c.Write(bytes.Repeat([]byte("x"), 5000))
		if got := <-echo.received; len(got) != 1000 {
			t.Fatalf("server got %d bytes, want 1000", len(got))
		}
	})

	t.Run("reset", func(t *testing.T) {
		c := dialProxy(t, p)
		io.ReadFull(c, make([]byte, len(greeting)))
		p.Set(Fault{Kind: FaultReset})
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 10))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read after reset: %v, want ECONNRESET", err)
		}
		<-echo.received
	})

	t.Run("stall", func(t *testing.T) {
		p.Set(Fault{Kind: FaultStall})
		c := dialProxy(t, p)
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(make([]byte, 10)); n != 0 || !errors.Is(err, syscall.EAGAIN) && !isTimeout(err) {
			t.Fatalf("stalled proxy relayed %d bytes (%v)", n, err)
		}
		p.Pass()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, len(greeting))); err != nil {
			t.Fatalf("after the stall: %v", err)
		}
		c.Close()
		<-echo.received
	})

	t.Run("stall after N", func(t *testing.T) {
		p.Set(Fault{Kind: FaultStall, Dir: ToClient, After: 7000})
		c := dialProxy(t, p)
		got := make([]byte, len(greeting))
		if _, err := io.ReadFull(c, got[:7000]); err != nil {
			t.Fatalf("before the stall: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(got[7000:]); n != 0 || !isTimeout(err) {
			t.Fatalf("stalled after 7000 bytes, yet read %d more (%v)", n, err)
		}
		p.Pass()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, got[7000:]); err != nil || !bytes.Equal(got, greeting) {
			t.Fatalf("after the stall: %v", err)
		}
		c.Close()
		<-echo.received
	})

	t.Run("refuse", func(t *testing.T) {
		open := dialProxy(t, p)
		io.ReadFull(open, make([]byte, len(greeting)))
		p.Set(Fault{Kind: FaultRefuse})
		if _, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial while refusing: %v", err)
		}
		// Open connections go on.
		open.Write([]byte("still"))
		if _, err := io.ReadFull(open, make([]byte, 5)); err != nil {
			t.Fatalf("open connection while refusing: %v", err)
		}
		p.CutAll(false)
		if _, err := io.ReadAll(open); err != nil {
			t.Fatalf("after CutAll: %v", err)
		}
		<-echo.received
		p.Pass()
		c := dialProxy(t, p)
		if _, err := io.ReadFull(c, make([]byte, len(greeting))); err != nil {
			t.Fatalf("after refusing, on the same port: %v", err)
		}
	})
	if p.Accepted() < 6 || p.Relayed(ToClient) == 0 || p.Relayed(ToServer) == 0 {
		t.Fatalf("counters: %d accepted, %d/%d bytes", p.Accepted(), p.Relayed(ToClient), p.Relayed(ToServer))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
