package oauthparams

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// defaultSignInTimeout is how long Authorize and AuthorizeDevice wait for the user.
const defaultSignInTimeout = 5 * time.Minute

// successPage is shown in the browser after a successful sign-in.
const successPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Mailwright: signed in</title></head>
<body><h1>Successfully Authenticated</h1>
<p>Successfully Authenticated. You can now close this tab/window and return to the application.</p>
</body></html>
`

// AuthorizeOptions configure Store.Authorize.
type AuthorizeOptions struct {
	// OpenBrowser opens url in the user's browser. When nil: unless NoBrowser, the
	// command in $BROWSER if set, else xdg-open, open or rundll32 as the OS has it.
	OpenBrowser func(url string) error
	// NoBrowser only prints the sign-in URL to Prompt and waits (headless use).
	NoBrowser bool
	// Prompt receives the messages for the user ("Open this URL...", "Waiting for
	// sign-in..."); nil discards them.
	Prompt io.Writer
	// Timeout is how long to wait for the sign-in; default 5 minutes.
	Timeout time.Duration
	// HTTPClient makes the request to the token endpoint; default a client with a 30 s
	// timeout. Its transport is wrapped with CheckedTransport.
	HTTPClient *http.Client
}

// callback is a sign-in redirect with the right state, handed from the listener to
// Authorize; the page shown in the browser waits for reply.
type callback struct {
	query url.Values
	reply chan error
}

// Authorize runs "Get Refresh Token" for the set named name: the authorization code flow
// with PKCE (S256) and state, with a one-shot listener on 127.0.0.1 (a random port, or
// the port of the set's RedirectURL) receiving the browser's redirect. On success it saves
// the refresh token, access token, GrantedScope and LastRefresh, clears SignInNeeded and
// LastError (all in one Store.Update), and returns the saved set. On failure, cancellation
// of ctx or timeout the stored set is left untouched. A TokenManager that cached an access
// token for the set should be told with Forget.
func (s *Store) Authorize(ctx context.Context, name string, opts AuthorizeOptions) (ParamSet, error) {
	p, err := s.Get(name)
	if err != nil {
		return ParamSet{}, fmt.Errorf("get refresh token: %w", err)
	}
	if err := p.Validate(); err != nil {
		return ParamSet{}, fmt.Errorf("get refresh token for parameter set %s: the set is incomplete: %w", p.Name, err)
	}
	prompt := cmp.Or[io.Writer](opts.Prompt, io.Discard)
	timeout := cmp.Or(opts.Timeout, defaultSignInTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	l, redirectURL, path, err := listenLoopback(p.RedirectURL)
	if err != nil {
		return ParamSet{}, fmt.Errorf("get refresh token for parameter set %s: %w", p.Name, err)
	}
	cfg := p.OAuth2Config(redirectURL)
	state, verifier := rand.Text(), oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(state, append(p.AuthCodeOptions(), oauth2.S256ChallengeOption(verifier))...)

	calls, done := make(chan callback), make(chan struct{})
	srv := &http.Server{Handler: callbackHandler(path, state, calls, done), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }() // returns when shut down
	defer func() {
		close(done) // first: a handler waiting to hand over a redirect gives up
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}()

	open := opts.OpenBrowser
	if open == nil && !opts.NoBrowser {
		open = openBrowser
	}
	switch {
	case open == nil:
		fmt.Fprintf(prompt, "Open this URL in a browser to sign in:\n\n  %s\n\n", authURL)
	default:
		if err := open(authURL); err != nil {
			fmt.Fprintf(prompt, "Could not open a browser (%v).\nOpen this URL in a browser to sign in:\n\n  %s\n\n", err, authURL)
		} else {
			fmt.Fprintf(prompt, "Opening the browser to sign in. If it does not open, visit:\n\n  %s\n\n", authURL)
		}
	}
	fmt.Fprintf(prompt, "Waiting for sign-in (up to %v)...\n", timeout)

	for {
		select {
		case <-ctx.Done():
			err := ctx.Err()
			if errors.Is(err, context.DeadlineExceeded) {
				return ParamSet{}, fmt.Errorf("get refresh token for parameter set %s: no sign-in within %v: %w", p.Name, timeout, err)
			}
			return ParamSet{}, fmt.Errorf("get refresh token for parameter set %s: canceled: %w", p.Name, err)
		case c := <-calls:
			saved, err := s.finishSignIn(ctx, p, c.query, func(ctx context.Context, code string) (*oauth2.Token, error) {
				return cfg.Exchange(oauthContext(ctx, checkedClient(opts.HTTPClient)), code, oauth2.VerifierOption(verifier))
			})
			c.reply <- err // buffered
			if err != nil {
				return ParamSet{}, err
			}
			fmt.Fprintln(prompt, "Signed in.")
			return saved, nil
		}
	}
}

// finishSignIn turns a sign-in redirect into tokens with exchange and saves them.
func (s *Store) finishSignIn(ctx context.Context, p ParamSet, q url.Values,
	exchange func(ctx context.Context, code string) (*oauth2.Token, error)) (ParamSet, error) {
	if err := ExplainRedirectError(q); err != nil {
		return ParamSet{}, fmt.Errorf("get refresh token for parameter set %s: %w", p.Name, err)
	}
	tok, err := exchange(ctx, q.Get("code"))
	if err != nil {
		if ctx.Err() != nil {
			return ParamSet{}, fmt.Errorf("get refresh token for parameter set %s: %w", p.Name, ctx.Err())
		}
		return ParamSet{}, fmt.Errorf("get refresh token for parameter set %s: %w", p.Name, ExplainAt(p.TokenURL, err))
	}
	return s.saveSignIn(p, tok)
}

// saveSignIn stores the tokens of a completed sign-in of p (by p's name) and returns the
// saved set. A sign-in that returned no refresh token is an error.
func (s *Store) saveSignIn(p ParamSet, tok *oauth2.Token) (ParamSet, error) {
	if tok.RefreshToken == "" {
		return ParamSet{}, fmt.Errorf("get refresh token for parameter set %s: the provider returned no refresh token: "+
			"add the scope offline_access or the extra parameter access_type=offline (see the preset notes) and sign in again", p.Name)
	}
	requested := strings.Join(strings.Fields(p.Scope), " ")
	var saved ParamSet
	err := s.Update(p.Name, func(cur *ParamSet) error {
		saveToken(cur, tok, time.Now(), requested)
		saved = cur.Clone()
		saved.Secrets = cur.Secrets
		return nil
	})
	if err != nil {
		return ParamSet{}, fmt.Errorf("get refresh token for parameter set %s: save the tokens: %w", p.Name, err)
	}
	return saved, nil
}

// listenLoopback listens where the sign-in redirect will arrive: on the host and port of
// fixed (a set's RedirectURL) or, when it is empty, on 127.0.0.1 with a random port. It
// returns the redirect URL to send and the path to serve.
func listenLoopback(fixed string) (l net.Listener, redirectURL, path string, err error) {
	if fixed = strings.TrimSpace(fixed); fixed == "" {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, "", "", fmt.Errorf("listen for the sign-in redirect on 127.0.0.1: %w", err)
		}
		return l, fmt.Sprintf("http://127.0.0.1:%d/", l.Addr().(*net.TCPAddr).Port), "/", nil
	}
	u, err := url.Parse(fixed)
	if err != nil {
		return nil, "", "", fmt.Errorf("redirect_url %q: %w", fixed, err)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	if l, err = net.Listen("tcp", net.JoinHostPort(host, u.Port())); err != nil {
		return nil, "", "", fmt.Errorf("listen for the sign-in redirect on %s (redirect_url): %w: close the program using that port, or clear Redirect URL to use a random port", u.Host, err)
	}
	return l, fixed, cmp.Or(u.Path, "/"), nil
}

// callbackHandler serves the sign-in redirect at path: the first request there with the
// right state is handed to calls and answered with the outcome; others get an error page.
// Any other path is 404.
func callbackHandler(path, state string, calls chan<- callback, done <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path != path || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
			page(w, http.StatusBadRequest, "Sign-in not accepted",
				"This response does not belong to the sign-in Mailwright is waiting for (state mismatch). Return to the application and try again.")
			return
		}
		if q.Get("code") == "" && q.Get("error") == "" {
			page(w, http.StatusBadRequest, "Sign-in not accepted", "The response carries neither a code nor an error.")
			return
		}
		c := callback{query: q, reply: make(chan error, 1)}
		select {
		case calls <- c:
		case <-done:
			page(w, http.StatusGone, "Sign-in no longer awaited", "Mailwright is no longer waiting for this sign-in. Return to the application and try again.")
			return
		}
		if err := <-c.reply; err != nil {
			page(w, http.StatusBadRequest, "Sign-in failed", err.Error()+"\n\nReturn to the application for details.")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, successPage)
	})
}

// page writes a small HTML page with a title and a message.
func page(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Mailwright: %s</title></head><body><h1>%s</h1><p>%s</p></body></html>\n",
		html.EscapeString(title), html.EscapeString(title), strings.ReplaceAll(html.EscapeString(msg), "\n", "<br>"))
}

// openBrowser opens url with $BROWSER (its first command, the URL as the last argument)
// or the OS's opener, without waiting for the browser to exit.
func openBrowser(u string) error {
	var name string
	var args []string
	if b := strings.TrimSpace(strings.Split(os.Getenv("BROWSER"), string(os.PathListSeparator))[0]); b != "" {
		f := strings.Fields(b)
		name, args = f[0], f[1:]
	} else {
		switch runtime.GOOS {
		case "windows":
			name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
		case "darwin":
			name = "open"
		default:
			name = "xdg-open"
		}
	}
	cmd := exec.Command(name, append(args, u)...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
