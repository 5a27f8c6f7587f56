package testmail

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// Host is the loopback address every harness server binds to.
const Host = "127.0.0.1"

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. A server started
// on it right away almost always gets it; WaitPort then confirms it is up.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatalf("testmail: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitPort polls addr until it accepts a TCP connection or timeout passes. alive, when not
// nil, is called between attempts and may return an error (the server process died) to stop
// early with that error.
func WaitPort(addr string, timeout time.Duration, alive func() error) error {
	deadline := time.Now().Add(timeout)
	delay := 2 * time.Millisecond
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if alive != nil {
			if aerr := alive(); aerr != nil {
				return fmt.Errorf("wait for %s: %w", addr, aerr)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for %s: not listening after %s: %w", addr, timeout, err)
		}
		time.Sleep(delay) // poll interval between connection attempts, not a wait for readiness
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// InCI reports whether the tests run under CI (CI=true), where a missing server is a
// failure rather than a skip.
func InCI() bool {
	return os.Getenv("CI") == "true"
}

// Require fails the test under CI, and skips it elsewhere, when a needed part is missing.
func Require(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("testmail: %s is missing (CI=true makes this a failure; run `make test`, which installs it)", what)
	}
	t.Skipf("testmail: %s is missing; run `make test` to install it", what)
}
