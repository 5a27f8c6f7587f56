package oauthparams

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DeviceOptions configure Store.AuthorizeDevice.
type DeviceOptions struct {
	// Prompt receives "To sign in, open <verification URI> and enter the code <user code>"
	// and the progress messages; nil discards them.
	Prompt io.Writer
	// OnCode, when set, is called with the user code and verification URI as soon as the
	// provider has issued them (for a window that shows them, or a test that approves).
	OnCode func(userCode, verificationURI string)
	// HTTPClient makes the requests to the device and token endpoints; default a client
	// with a 30 s timeout. Its transport is wrapped with CheckedTransport.
	HTTPClient *http.Client
	// Timeout is how long to wait for the user; default 5 minutes (less if the provider's
	// code expires sooner).
	Timeout time.Duration
}

// AuthorizeDevice runs "Get Refresh Token" for the set named name with the device
// authorization flow (RFC 8628), for machines without a browser: it asks the set's
// DeviceURL for a code, tells the user where to enter it, polls the token endpoint at the
// interval the provider asks for, and saves the tokens as Authorize does. The set must
// have a DeviceURL. On failure, cancellation or timeout the stored set is left untouched.
func (s *Store) AuthorizeDevice(ctx context.Context, name string, opts DeviceOptions) (ParamSet, error) {
	p, err := s.Get(name)
	if err != nil {
		return ParamSet{}, fmt.Errorf("device sign-in: %w", err)
	}
	fail := func(format string, args ...any) (ParamSet, error) {
		return ParamSet{}, fmt.Errorf("device sign-in for parameter set %s: "+format, append([]any{p.Name}, args...)...)
	}
	if strings.TrimSpace(p.DeviceURL) == "" {
		return fail("the set has no device_url (Device Authorization URL): enter the provider's device endpoint " +
			"or use Load Predefined Endpoints; not every provider offers the device flow for mail")
	}
	if err := p.Validate(); err != nil {
		return fail("the set is incomplete: %w", err)
	}
	prompt := cmp.Or[io.Writer](opts.Prompt, io.Discard)
	timeout := cmp.Or(opts.Timeout, defaultSignInTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	octx := oauthContext(ctx, checkedClient(opts.HTTPClient))
	cfg := p.OAuth2Config("") // the client secret, if any, goes to the token endpoint only

	da, err := cfg.DeviceAuth(octx)
	if err != nil {
		if ctx.Err() != nil {
			return fail("%w", ctx.Err())
		}
		return fail("%w", ExplainAt(p.DeviceURL, err))
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return fail("the device endpoint %s answered without a device code, user code or verification URI", cleanURL(p.DeviceURL))
	}
	fmt.Fprintf(prompt, "To sign in, open %s and enter the code %s\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(prompt, "(or open %s)\n", da.VerificationURIComplete)
	}
	fmt.Fprintf(prompt, "Waiting for sign-in (up to %v)...\n", timeout)
	if opts.OnCode != nil {
		opts.OnCode(da.UserCode, da.VerificationURI)
	}

	tok, err := cfg.DeviceAccessToken(octx, da)
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fail("the code %s expired before sign-in finished: start the device sign-in again: %w", da.UserCode, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fail("no sign-in within %v: %w", timeout, err)
	case ctx.Err() != nil:
		return fail("canceled: %w", ctx.Err())
	default:
		return fail("%w", ExplainAt(p.TokenURL, err))
	}
	saved, err := s.saveSignIn(p, tok)
	if err != nil {
		return ParamSet{}, err
	}
	fmt.Fprintln(prompt, "Signed in.")
	return saved, nil
}
