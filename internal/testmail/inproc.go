package testmail

import (
	"crypto/tls"
	"net"
	"strconv"
	"testing"
)

// Endpoint is where an in-process test server listens and how to trust it.
type Endpoint struct {
	Host     string // Host
	Port     int    // the port it listens on
	Security string // "none", "starttls" or "tls"
	Certs    *Certs // the certificate it presents (nil in "none" mode)
}

// Addr returns "127.0.0.1:port".
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// ClientTLS returns a client TLS config that trusts the server's certificate, for server
// name 127.0.0.1. It is nil in "none" mode.
func (e Endpoint) ClientTLS() *tls.Config {
	if e.Certs == nil {
		return nil
	}
	return e.Certs.ClientTLS(e.Host)
}

// serveInProc listens on 127.0.0.1 (behind TLS from the first byte in "tls" mode), runs
// serve in a goroutine and, when the test ends, calls stop and waits for serve to return.
// It returns the port.
func serveInProc(t testing.TB, what, security string, serverTLS *tls.Config, serve func(net.Listener) error, stop func() error) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatalf("testmail: %s listen: %v", what, err)
	}
	if security == "tls" {
		l = tls.NewListener(l, serverTLS)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(l) // returns once stop was called
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	return l.Addr().(*net.TCPAddr).Port
}
