package testmail

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// FaultKind selects what a FaultProxy does to the traffic it relays; see Fault.
type FaultKind int

// The faults a FaultProxy can inject.
const (
	// FaultPass relays every byte (the default).
	FaultPass FaultKind = iota
	// FaultCut closes every relayed connection (FIN on both sides) when a byte beyond
	// Fault.After more bytes would go in Fault.Dir (exactly After bytes get through);
	// After 0 cuts at once. It fires once: afterwards the
	// proxy passes again, so a reconnection works (a dropped network that came back).
	FaultCut
	// FaultReset is FaultCut with a TCP reset (RST) instead of a clean close, as a
	// crashed peer or a firewall would send: the client reads ECONNRESET.
	FaultReset
	// FaultStall relays nothing in either direction, on open and new connections, until
	// the fault changes; connections stay open (a silent server). Held data flows on. With
	// After > 0, After more bytes in Dir pass first (a server that stops mid-reply).
	FaultStall
	// FaultRefuse closes the listening port, so new connections are refused
	// (ECONNREFUSED), as when the server is down; open connections go on. Setting
	// another fault listens again on the same port.
	FaultRefuse
)

// Direction is the direction of relayed bytes.
type Direction int

// The two directions.
const (
	ToServer Direction = iota // client → target
	ToClient                  // target → client
)

// Fault is a FaultProxy's mode.
type Fault struct {
	Kind  FaultKind
	Dir   Direction // for FaultCut, FaultReset and FaultStall: which direction's bytes count
	After int64     // for FaultCut, FaultReset and FaultStall: bytes to relay first, counted from Set, over all connections
}

// FaultProxy is a TCP proxy on 127.0.0.1 that relays to a target (a harness server) and
// injects network faults set at runtime: cut or reset after N bytes in either direction,
// stall, refuse, pass. Point a client at Addr instead of the server. It is safe for
// concurrent use and stops in t.Cleanup.
type FaultProxy struct {
	Host string // Host
	Port int    // the port it listens on (the same for its whole life)

	t      testing.TB
	target string

	mu       sync.Mutex
	cond     *sync.Cond // broadcast when the fault changes or the proxy closes
	ln       net.Listener
	fault    Fault
	left     int64 // bytes in fault.Dir still allowed before a Cut/Reset fires or a Stall begins
	conns    map[*faultConn]bool
	accepted int
	fired    int
	relayed  [2]int64
	closed   bool
	wg       sync.WaitGroup
}

// faultConn is one relayed connection: the client's side and the target's.
type faultConn struct {
	client, server *net.TCPConn
	once           sync.Once
}

// close closes both sides, with RST when reset.
func (fc *faultConn) close(reset bool) {
	fc.once.Do(func() {
		if reset {
			_ = fc.client.SetLinger(0)
			_ = fc.server.SetLinger(0)
		}
		_ = fc.client.Close()
		_ = fc.server.Close()
	})
}

// StartFaultProxy listens on a free port of 127.0.0.1 and relays each connection to
// target ("host:port"), passing everything until Set says otherwise.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatalf("testmail: fault proxy listen: %v", err)
	}
	p := &FaultProxy{Host: Host, Port: ln.Addr().(*net.TCPAddr).Port, t: t, target: target, ln: ln, conns: map[*faultConn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// Addr returns "127.0.0.1:port", where clients connect.
func (p *FaultProxy) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// Set changes the fault for open and new connections. A Cut or Reset with After 0 acts
// at once on the open connections.
func (p *FaultProxy) Set(f Fault) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.fault, p.left = f, f.After
	p.cond.Broadcast()
	var victims []*faultConn
	if (f.Kind == FaultCut || f.Kind == FaultReset) && f.After <= 0 {
		victims = p.fireLocked()
	}
	var stopLn net.Listener
	if f.Kind == FaultRefuse && p.ln != nil {
		stopLn, p.ln = p.ln, nil
	}
	if f.Kind != FaultRefuse && p.ln == nil {
		ln, err := net.Listen("tcp", p.Addr())
		if err != nil {
			p.mu.Unlock()
			p.t.Errorf("testmail: fault proxy: listen again on %s: %v", p.Addr(), err)
			return
		}
		p.ln = ln
		p.wg.Add(1)
		go p.serve(ln)
	}
	p.mu.Unlock()
	if stopLn != nil {
		_ = stopLn.Close()
	}
	for _, fc := range victims {
		fc.close(f.Kind == FaultReset)
	}
}

// Pass makes the proxy relay everything again.
func (p *FaultProxy) Pass() { p.Set(Fault{}) }

// CutAll closes every open connection now (with RST when reset), leaving the fault as it
// is: with FaultRefuse set first, this is a server going down.
func (p *FaultProxy) CutAll(reset bool) {
	p.mu.Lock()
	victims := p.openLocked()
	p.fired++
	p.mu.Unlock()
	for _, fc := range victims {
		fc.close(reset)
	}
}

// Fired returns how many times a cut or reset has fired (CutAll included).
func (p *FaultProxy) Fired() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fired
}

// Accepted returns how many connections were relayed to the target so far.
func (p *FaultProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Relayed returns the bytes relayed in direction d so far.
func (p *FaultProxy) Relayed(d Direction) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.relayed[d]
}

// fireLocked records a fired cut, returns the proxy to passing and returns the open
// connections, which the caller closes after releasing the lock.
func (p *FaultProxy) fireLocked() []*faultConn {
	p.fired++
	p.fault, p.left = Fault{}, 0
	p.cond.Broadcast()
	return p.openLocked()
}

func (p *FaultProxy) openLocked() []*faultConn {
	out := make([]*faultConn, 0, len(p.conns))
	for fc := range p.conns {
		out = append(out, fc)
	}
	return out
}

func (p *FaultProxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.handle(c.(*net.TCPConn))
	}
}

func (p *FaultProxy) handle(c *net.TCPConn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil { // the target is down: the client sees the connection end at once
		c.Close()
		return
	}
	fc := &faultConn{client: c, server: s.(*net.TCPConn)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		fc.close(false)
		return
	}
	p.conns[fc] = true
	p.accepted++
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.relay(fc, ToServer, fc.server, fc.client) }()
	go func() { defer wg.Done(); p.relay(fc, ToClient, fc.client, fc.server) }()
	wg.Wait()
	fc.close(false)
	p.mu.Lock()
	delete(p.conns, fc)
	p.mu.Unlock()
}

// relay copies src to dst under the proxy's fault. At EOF it half-closes dst, so the
// other direction can finish (as TCP does).
func (p *FaultProxy) relay(fc *faultConn, dir Direction, dst, src *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		chunk := buf[:n]
		for len(chunk) > 0 {
			allowed, victims, reset, ok := p.admit(dir, len(chunk))
			if !ok {
				fc.close(false)
				return
			}
			if allowed > 0 {
				if _, werr := dst.Write(chunk[:allowed]); werr != nil {
					fc.close(false)
					return
				}
				chunk = chunk[allowed:]
			}
			if victims != nil {
				for _, v := range victims {
					v.close(reset)
				}
				return
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			_ = dst.CloseWrite()
			return
		}
	}
}

// admit waits while the proxy stalls and says how many of n bytes in dir may pass; when a
// cut fires it returns the connections to close (after writing the allowed bytes). ok is
// false when the proxy has closed.
func (p *FaultProxy) admit(dir Direction, n int) (allowed int, victims []*faultConn, reset, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.fault.Kind == FaultStall && p.left <= 0 && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		return 0, nil, false, false
	}
	f := p.fault
	counted := (f.Kind == FaultCut || f.Kind == FaultReset || f.Kind == FaultStall) && f.Dir == dir
	switch {
	case counted && int64(n) > p.left:
		allowed = int(p.left)
		p.relayed[dir] += int64(allowed)
		if f.Kind == FaultStall {
			p.left = 0 // from now on everything waits
			return allowed, nil, false, true
		}
		return allowed, p.fireLocked(), f.Kind == FaultReset, true
	case counted:
		p.left -= int64(n)
	}
	p.relayed[dir] += int64(n)
	return n, nil, false, true
}

// close stops the proxy: no more connections, open ones closed, goroutines ended.
func (p *FaultProxy) close() {
	p.mu.Lock()
	p.closed = true
	ln := p.ln
	p.ln = nil
	victims := p.openLocked()
	p.cond.Broadcast()
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, fc := range victims {
		fc.close(false)
	}
	p.wg.Wait()
}
