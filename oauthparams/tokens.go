package oauthparams

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// expiryMargin is how long before its expiry a cached access token is refreshed, so that
// a token handed out is still valid when the mail server checks it.
const expiryMargin = 60 * time.Second

// defaultHTTPTimeout bounds a request to a token endpoint when the caller gives no client.
const defaultHTTPTimeout = 30 * time.Second

// TokenManager hands out access tokens for the parameter sets of a Store, refreshing them
// silently. It caches each set's access token in memory and refreshes it at most once
// however many goroutines ask at the same time (a mutex per set), and at most once across
// processes sharing the data folder: a per-set lock file serialises refreshes, and the
// stored token is re-read under it. The store's own lock is held only to read and save,
// so a slow token endpoint never blocks other store operations. Create one with NewTokenManager
// and keep it for the life of the program; it is safe for concurrent use.
type TokenManager struct {
	store  *Store
	client *http.Client
	now    func() time.Time // the clock; tests replace it

	mu   sync.Mutex            // guards sets
	sets map[string]*setTokens // by NameKey
}

// setTokens is the per-set state of a TokenManager.
type setTokens struct {
	mu     sync.Mutex // held while checking the cache and refreshing
	access string     // cached access token ("" when none)
	expiry time.Time  // its expiry (zero: unknown, treated as valid)
}

// NewTokenManager returns a TokenManager for the sets of store. Requests to token
// endpoints go through httpClient (a client with a 30 s timeout when nil), whose transport
// is wrapped with CheckedTransport.
func NewTokenManager(store *Store, httpClient *http.Client) *TokenManager {
	return &TokenManager{store: store, client: checkedClient(httpClient), now: time.Now,
		sets: map[string]*setTokens{}}
}

// checkedClient returns a copy of c (or of a default client) whose transport is wrapped
// with CheckedTransport.
func checkedClient(c *http.Client) *http.Client {
	var cc http.Client
	if c != nil {
		cc = *c
	} else {
		cc.Timeout = defaultHTTPTimeout
	}
	cc.Transport = CheckedTransport(cc.Transport)
	return &cc
}

// oauthContext returns ctx carrying client for golang.org/x/oauth2.
func oauthContext(ctx context.Context, client *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, client)
}

func (m *TokenManager) set(name string) *setTokens {
	key := NameKey(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.sets[key]
	if st == nil {
		st = &setTokens{}
		m.sets[key] = st
	}
	return st
}

// fresh reports whether an access token expiring at expiry can still be handed out.
func (m *TokenManager) fresh(access string, expiry time.Time) bool {
	return access != "" && (expiry.IsZero() || m.now().Add(expiryMargin).Before(expiry))
}

// Token returns a valid access token for the set named name: the cached one until about
// a minute before it expires, else a new one from the set's refresh token, saved with any
// rotated refresh token, LastRefresh and GrantedScope. A refresh the provider refuses
// for good (invalid_grant, ...) marks the set sign-in needed and returns a *ProviderError;
// a set so marked is not sent to the provider again until the user signs in. Temporary
// failures (network, 5xx) are returned as a *ProviderError with Temporary set, without
// marking the set; retrying is up to the caller.
func (m *TokenManager) Token(ctx context.Context, name string) (*oauth2.Token, error) {
	return m.token(ctx, name, false, "")
}

// ForceRefresh gets a new access token for the set named name even though the cached one
// looks valid: for a mail server that rejected rejectedAccessToken. When the stored token
// already differs from rejectedAccessToken (another goroutine or process refreshed in the
// meantime) that one is returned without a refresh, so that many connections rejected at
// once cause one refresh. An empty rejectedAccessToken always refreshes. Errors are as for
// Token.
func (m *TokenManager) ForceRefresh(ctx context.Context, name, rejectedAccessToken string) (*oauth2.Token, error) {
	return m.token(ctx, name, true, rejectedAccessToken)
}

// Source returns an oauth2.TokenSource for the set named name that calls Token with
// context.Background (oauth2.TokenSource has no context); prefer Token where a context is
// at hand.
func (m *TokenManager) Source(name string) oauth2.TokenSource {
	return tokenSource{m: m, name: name}
}

// Forget drops the access token cached in memory for the set named name, e.g. after the
// user signed in again or deleted the set; the next Token reads the store.
func (m *TokenManager) Forget(name string) {
	st := m.set(name)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.access, st.expiry = "", time.Time{}
}

type tokenSource struct {
	m    *TokenManager
	name string
}

// Token implements oauth2.TokenSource.
func (ts tokenSource) Token() (*oauth2.Token, error) {
	return ts.m.Token(context.Background(), ts.name)
}

func (m *TokenManager) token(ctx context.Context, name string, force bool, rejected string) (*oauth2.Token, error) {
	name = NormalizeName(name)
	st := m.set(name)
	st.mu.Lock()
	defer st.mu.Unlock()
	usable := func(access string, expiry time.Time) bool {
		if force {
			return rejected != "" && access != "" && access != rejected && m.fresh(access, expiry)
		}
		return m.fresh(access, expiry)
	}
	if usable(st.access, st.expiry) {
		return bearer(st.access, st.expiry), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("access token for parameter set %q: %w", name, err)
	}

	// One refresh per set at a time across processes; the store itself is locked only for
	// the short read and save, never while the token endpoint is asked.
	release, err := lockFile(ctx, m.store.refreshLockPath(name), true, refreshLockWait)
	if err != nil {
		return nil, fmt.Errorf("access token for parameter set %q: %w", name, err)
	}
	defer release()
	p, err := m.store.Get(name)
	if err != nil {
		return nil, fmt.Errorf("access token for parameter set %q: %w", name, err)
	}
	result := bearer(p.Secrets.AccessToken, p.Secrets.AccessExpiry)
	if !usable(p.Secrets.AccessToken, p.Secrets.AccessExpiry) { // else refreshed by another process
		if result, err = m.refresh(ctx, p); err != nil {
			return nil, err
		}
	}
	st.access, st.expiry = result.AccessToken, result.Expiry
	return result, nil
}

// refresh spends p's refresh token and saves what the provider answers at once: a rotated
// refresh token lost here would break the next run. The caller holds the set's refresh lock.
func (m *TokenManager) refresh(ctx context.Context, p ParamSet) (*oauth2.Token, error) {
	if err := refreshable(p); err != nil {
		return nil, err
	}
	spent := p.Secrets.RefreshToken
	// stillOurs skips the save when the user signed in again while we refreshed: their new
	// refresh token wins. An Update whose fn changes nothing writes nothing.
	stillOurs := func(q *ParamSet) bool { return q.Secrets.RefreshToken == spent }
	tok, err := p.OAuth2Config("").TokenSource(oauthContext(ctx, m.client),
		&oauth2.Token{RefreshToken: spent}).Token()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("refresh the access token of parameter set %q: %w", p.Name, ctxErr)
		}
		pe := ExplainAt(p.TokenURL, err)
		if pe.Temporary {
			return nil, pe // the caller's retry policy decides; the set stays as it is
		}
		uerr := m.store.Update(p.Name, func(q *ParamSet) error {
			if stillOurs(q) {
				q.RecordRefreshError(err) // saved: the user must sign in again
			}
			return nil
		})
		if uerr != nil {
			return nil, errors.Join(pe, fmt.Errorf("record the failure on parameter set %q: %w", p.Name, uerr))
		}
		return nil, pe
	}
	uerr := m.store.Update(p.Name, func(q *ParamSet) error {
		if stillOurs(q) {
			saveToken(q, tok, m.now(), "")
		}
		return nil
	})
	if uerr != nil {
		return nil, fmt.Errorf("parameter set %q: the provider issued new tokens but saving them failed (%w); if the next run reports an expired token, click Get Refresh Token", p.Name, uerr)
	}
	return bearer(tok.AccessToken, tok.Expiry), nil
}

// refreshable says why p cannot be refreshed, or returns nil.
func refreshable(p ParamSet) error {
	switch {
	case strings.TrimSpace(p.SignInNeeded) != "":
		return fmt.Errorf("parameter set %s needs a new sign-in (%s): click Get Refresh Token (or `mailwright params authorize %s`)",
			p.Name, strings.TrimSpace(p.SignInNeeded), p.Name)
	case p.Secrets.RefreshToken == "":
		return fmt.Errorf("parameter set %s has no refresh token: click Get Refresh Token (or `mailwright params authorize %s`)",
			p.Name, p.Name)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("parameter set %s is incomplete: %w", p.Name, err)
	}
	return nil
}

// bearer returns an access token as handed out: no refresh token.
func bearer(access string, expiry time.Time) *oauth2.Token {
	return &oauth2.Token{AccessToken: access, TokenType: "Bearer", Expiry: expiry}
}

// saveToken records a token just obtained in p: tokens (a refresh token only when the
// provider sent one), GrantedScope (the token's "scope", else requested when not empty),
// LastRefresh, and clears LastError and SignInNeeded.
func saveToken(p *ParamSet, tok *oauth2.Token, now time.Time, requested string) {
	if tok.RefreshToken != "" {
		p.Secrets.RefreshToken = tok.RefreshToken
	}
	p.Secrets.AccessToken, p.Secrets.AccessExpiry = tok.AccessToken, tok.Expiry
	if scope, ok := tok.Extra("scope").(string); ok && strings.TrimSpace(scope) != "" {
		p.GrantedScope = strings.Join(strings.Fields(scope), " ")
	} else if requested != "" {
		p.GrantedScope = requested
	}
	p.LastRefresh = now.UTC()
	p.LastError, p.SignInNeeded = "", ""
}
