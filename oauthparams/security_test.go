package oauthparams

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// secRecorder is an http.RoundTripper that keeps the form bodies of token requests.
type secRecorder struct {
	mu    sync.Mutex
	forms []url.Values
}

func (r *secRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		if f, err := url.ParseQuery(string(b)); err == nil {
			r.mu.Lock()
			r.forms = append(r.forms, f)
			r.mu.Unlock()
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

// secNoRedirect is a "browser" that does not follow the provider's redirect, so the test
// holds the sign-in callback URL itself.
var secNoRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// secCallback visits authURL at the provider and returns the redirect it answers with:
// the loopback callback URL carrying code and state.
func secCallback(authURL string) (string, error) {
	resp, err := secNoRedirect.Get(authURL)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "" {
		return loc, nil
	}
	return "", fmt.Errorf("the provider answered %d without a redirect", resp.StatusCode)
}

// secLocalIPs returns this machine's addresses other than loopback ones.
func secLocalIPs() []net.IP {
	addrs, _ := net.InterfaceAddrs()
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	return ips
}

// TestSecurityLoopbackListener: the sign-in listener binds 127.0.0.1 only (no other
// address of the machine, not even ::1, reaches it), ignores requests with a wrong state
// without giving up, and serves exactly one callback: of two simultaneous deliveries of
// the right one only one is exchanged, and after the sign-in nothing listens any more.
func TestSecurityLoopbackListener(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	if err := s.Put(serverSet(srv, "work")); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		statuses []int
		err      error
	}
	var callback string
	results := make(chan outcome, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(authURL string) error {
		go func() {
			var o outcome
			defer func() {
				if o.err != nil {
					cancel() // no sign-in will come
				}
				results <- o
			}()
			redirect, err := url.Parse(redirectOf(t, authURL))
			if err != nil {
				o.err = err
				return
			}
			if redirect.Hostname() != "127.0.0.1" {
				o.err = fmt.Errorf("redirect_uri host %q, want 127.0.0.1", redirect.Hostname())
				return
			}
			port := redirect.Port()
			for _, ip := range append(secLocalIPs(), net.IPv6loopback) {
				if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), time.Second); err == nil {
					c.Close()
					o.err = fmt.Errorf("the sign-in listener answers on %s", ip)
					return
				}
			}
			q := redirect.Query()
			q.Set("state", "forged")
			q.Set("code", "stolen-code")
			redirect.RawQuery = q.Encode()
			if pg := visit(redirect.String(), nil); pg.status != http.StatusBadRequest || !strings.Contains(pg.body, "state mismatch") {
				o.err = fmt.Errorf("wrong state: %d %q", pg.status, pg.body)
				return
			}
			if callback, o.err = secCallback(authURL); o.err != nil {
				return
			}
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			for i := range statuses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = visit(callback, nil).status
				}()
			}
			wg.Wait()
			o.statuses = statuses
		}()
		return nil
	}
	_, err := s.Authorize(ctx, "work", AuthorizeOptions{OpenBrowser: open, Timeout: 30 * time.Second})
	o := <-results
	if o.err != nil {
		t.Fatal(o.err)
	}
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	ok := 0
	for _, st := range o.statuses {
		if st == http.StatusOK {
			ok++
		} else if st != http.StatusGone && st != 0 {
			t.Errorf("second delivery of the callback: status %d, want 410 or no answer", st)
		}
	}
	if ok != 1 {
		t.Errorf("callback statuses %v: want exactly one success", o.statuses)
	}
	if c := srv.Counts(); c.TokenCode != 1 {
		t.Errorf("%d code exchanges, want 1", c.TokenCode)
	}
	// The sign-in is over: the listener is gone, a replayed callback reaches nobody.
	if pg := visit(callback, nil); pg.err == nil {
		t.Errorf("a replayed callback got an answer after the sign-in: %d %q", pg.status, pg.body)
	}
}

// TestSecurityLoopbackListenerLocalhost: a fixed redirect URL naming localhost is served
// on 127.0.0.1 only, not on ::1 or every address.
func TestSecurityLoopbackListenerLocalhost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ln, redirect, path, err := listenLoopback(fmt.Sprintf("http://localhost:%d/cb", port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if a := ln.Addr().(*net.TCPAddr); !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port != port {
		t.Fatalf("listening on %v, want 127.0.0.1:%d", a, port)
	}
	if redirect != fmt.Sprintf("http://localhost:%d/cb", port) || path != "/cb" {
		t.Fatalf("redirect %q path %q", redirect, path)
	}
	// A set whose redirect URL is not loopback never gets that far: Validate refuses it.
	for _, bad := range []string{"http://0.0.0.0:8765/", "http://192.168.1.10:8765/", "http://[::]:8765/"} {
		p := psValid()
		p.RedirectURL = bad
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "redirect_url") {
			t.Errorf("redirect_url %s accepted: %v", bad, err)
		}
	}
}

// TestSecurityPKCEAlways: every sign-in uses PKCE with S256, for confidential clients
// (with a client secret) as for public ones: the authorization URL carries the challenge
// and the code exchange the verifier that hashes to it. A stored set cannot turn it off
// through its extra parameters.
func TestSecurityPKCEAlways(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	for _, public := range []bool{false, true} {
		t.Run(fmt.Sprintf("public=%v", public), func(t *testing.T) {
			s := tokStore(t, t.TempDir())
			p := serverSet(srv, "work")
			if public {
				p.ClientID, p.Secrets.ClientSecret = testmail.OAuthPublicClientID, ""
			}
			if err := s.Put(p); err != nil {
				t.Fatal(err)
			}
			var authURL string
			open, pages := browser(func(u string) visited { authURL = u; return visit(u, nil) })
			rec := &secRecorder{}
			if _, err := s.Authorize(context.Background(), "work", AuthorizeOptions{OpenBrowser: open,
				HTTPClient: &http.Client{Transport: rec, Timeout: 10 * time.Second}}); err != nil {
				t.Fatal(err)
			}
			<-pages
			u, err := url.Parse(authURL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			challenge := q.Get("code_challenge")
			if q.Get("code_challenge_method") != "S256" || len(challenge) != 43 {
				t.Fatalf("authorization URL without an S256 challenge: %s", authURL)
			}
			if len(q.Get("state")) < 20 {
				t.Errorf("state %q is too short to be unguessable", q.Get("state"))
			}
			if len(rec.forms) != 1 {
				t.Fatalf("%d token requests recorded, want 1", len(rec.forms))
			}
			verifier := rec.forms[0].Get("code_verifier")
			sum := sha256.Sum256([]byte(verifier))
			if verifier == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
				t.Fatalf("the code exchange's verifier %q does not match the challenge %q", verifier, challenge)
			}
		})
	}
	p := psValid()
	p.ExtraParams = map[string]string{"code_challenge_method": "plain", "Code_Challenge": "x", "state": "fixed", "prompt": "consent"}
	if n := len(p.AuthCodeOptions()); n != 1 {
		t.Fatalf("AuthCodeOptions passed %d options, want only prompt", n)
	}
}

// TestSecurityTokenEndpointTLSVerified: token requests verify the endpoint's certificate:
// a token endpoint with a certificate no trusted authority signed gets no request at all
// (not even the refresh token), and the error says why.
func TestSecurityTokenEndpointTLSVerified(t *testing.T) {
	var hits atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"a","token_type":"Bearer","expires_in":3600}`)
	}))
	defer ts.Close()
	s := tokStore(t, t.TempDir())
	if err := s.Put(ParamSet{Name: "tls", ClientID: "c", AuthURL: ts.URL + "/auth", TokenURL: ts.URL + "/token", Scope: "mail",
		Secrets: Secrets{ClientSecret: "cs-tls-secret", RefreshToken: "rt-tls-secret"}}); err != nil {
		t.Fatal(err)
	}
	_, err := NewTokenManager(s, nil).Token(context.Background(), "tls")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("refresh against an untrusted certificate: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the token endpoint received the request")
	}
	noSecrets(t, err.Error(), "cs-tls-secret", "rt-tls-secret")
}
