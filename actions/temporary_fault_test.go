package actions

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
)

// TestFaultTemporaryTokenEndpoint: errors of a real token refresh are classified for the
// retry policy as the token manager judged them: a 503 page, a 200 that is not JSON and
// no answer in time are temporary; invalid_grant and a TLS failure are not (the TLS error
// is a net.Error underneath, which alone would have looked temporary).
func TestFaultTemporaryTokenEndpoint(t *testing.T) {
	oauth := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	store, err := oauthparams.Open(t.TempDir(), oauthparams.StoreOptions{Backend: oauthparams.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, tokenURL string) {
		_, refresh := oauth.Mint("alice@example.test", "https://mail.test/imap")
		if err := store.Put(oauthparams.ParamSet{Name: name, Account: "alice@example.test", ClientID: testmail.OAuthTestClientID,
			AuthURL: oauth.AuthURL, TokenURL: tokenURL, Scope: "https://mail.test/imap",
			Secrets: oauthparams.Secrets{ClientSecret: testmail.OAuthTestClientSecret, RefreshToken: refresh}}); err != nil {
			t.Fatal(err)
		}
	}
	put("Local", oauth.TokenURL)
	// A TLS server whose certificate nobody trusts (a proxy intercepting HTTPS).
	untrusted := httptest.NewUnstartedServer(http.NotFoundHandler())
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	untrusted.StartTLS()
	t.Cleanup(untrusted.Close)
	put("Untrusted", untrusted.URL+"/token")
	tokens := NewTokenProvider(store, oauthparams.NewTokenManager(store, &http.Client{Timeout: 2 * time.Second}))
	for _, c := range []struct {
		name, set string
		fail      testmail.Failure
		temporary bool
	}{
		{"503", "Local", testmail.Failure{Kind: testmail.FailServerError, Count: 1}, true},
		{"not JSON", "Local", testmail.Failure{Kind: testmail.FailNotJSON, Count: 1}, true},
		{"timeout", "Local", testmail.Failure{Kind: testmail.FailSlow, Count: 1, Delay: 10 * time.Second}, true},
		{"TLS", "Untrusted", testmail.Failure{}, false},
		{"invalid_grant", "Local", testmail.Failure{Kind: testmail.FailInvalidGrant, Count: 1}, false},
	} {
		oauth.SetFailure(c.fail)
		_, err := tokens.Token(context.Background(), c.set)
		if err == nil {
			t.Fatalf("%s: no error", c.name)
		}
		if got := Temporary(err); got != c.temporary {
			t.Errorf("%s: Temporary = %v, want %v: %v", c.name, got, c.temporary, err)
		}
	}
}
