package actions

import (
	"context"
	"fmt"

	"github.com/mailwright/mailwright/oauthparams"
	"golang.org/x/oauth2"
)

// storeTokens is the TokenProvider over a parameter-set store and its token manager.
type storeTokens struct {
	store *oauthparams.Store
	tm    *oauthparams.TokenManager
}

// NewTokenProvider returns the TokenProvider a run uses: tokens from tm, accounts from store.
func NewTokenProvider(store *oauthparams.Store, tm *oauthparams.TokenManager) TokenProvider {
	return storeTokens{store: store, tm: tm}
}

func (s storeTokens) Token(ctx context.Context, set string) (*oauth2.Token, error) {
	return s.tm.Token(ctx, set)
}

func (s storeTokens) ForceRefresh(ctx context.Context, set, rejected string) (*oauth2.Token, error) {
	return s.tm.ForceRefresh(ctx, set, rejected)
}

func (s storeTokens) Account(set string) (string, error) {
	p, err := s.store.Get(set)
	if err != nil {
		return "", fmt.Errorf("parameter set %q: %w", set, err)
	}
	return p.Account, nil
}
