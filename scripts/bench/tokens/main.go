// Command tokens counts OAuth token-endpoint requests over many IMAP logins made within one
// access-token lifetime (issue 7): it starts the harness's OAuth server and a Dovecot that
// accepts XOAUTH2 through the server's introspection endpoint, stores a parameter set with a
// fresh refresh token (file secrets backend, as on a server), and runs the Check for Email
// action -n times in this one process, each a new connection and login, with the token
// provider a task run uses. It prints one JSON object with the counts; the target is one
// token-endpoint request (the first refresh) for any number of logins.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
	"github.com/mailwright/mailwright/scripts/bench/internal/benchtb"
)

const scope = "https://mail.test/imap https://mail.test/pop https://mail.test/smtp"

// result is what the program prints.
type result struct {
	Logins         int     `json:"logins"`
	TokenEndpoint  int     `json:"token_endpoint_requests"` // every grant type together
	TokenRefresh   int     `json:"token_refresh_requests"`
	Introspections int     `json:"introspection_requests"` // one per login: Dovecot checks each token
	Seconds        float64 `json:"seconds"`
	AccessTTL      string  `json:"access_token_ttl"`
}

func main() {
	n := flag.Int("n", 1000, "logins")
	ttl := flag.Duration("ttl", time.Hour, "access-token lifetime on the OAuth server")
	flag.Parse()
	tb := benchtb.New("tokens", os.Stderr)
	defer tb.Close()

	oauth := testmail.StartOAuthServer(tb, testmail.OAuthOptions{AccessTokenTTL: *ttl})
	dc := testmail.StartDovecot(tb, testmail.DovecotOptions{OAuthIntrospectionURL: oauth.IntrospectURL})
	user := testmail.DefaultUser().Name

	store, err := oauthparams.Open(tb.TempDir(), oauthparams.StoreOptions{Backend: oauthparams.BackendFile})
	if err != nil {
		tb.Fatalf("open parameter-set store: %v", err)
	}
	_, refresh := oauth.Mint(user, scope)
	if err := store.Put(oauthparams.ParamSet{Name: "Bench", Account: user, ClientID: testmail.OAuthTestClientID,
		AuthURL: oauth.AuthURL, TokenURL: oauth.TokenURL, Scope: scope, GrantedScope: scope,
		Secrets: oauthparams.Secrets{ClientSecret: testmail.OAuthTestClientSecret, RefreshToken: refresh}}); err != nil {
		tb.Fatalf("store parameter set: %v", err)
	}
	tokens := actions.NewTokenProvider(store, oauthparams.NewTokenManager(store, nil))

	check := actions.NewCheckEmail()
	vals, err := check.Schema().Resolve(map[string]string{
		"protocol": "imap", "host": "localhost", "port": strconv.Itoa(dc.IMAPPort), "security": "starttls",
		"auth": "oauth", "param_set": "Bench", "ca_file": dc.Certs.CertFile, "count": actions.CheckAll,
	})
	if err != nil {
		tb.Fatalf("Check for Email parameters: %v", err)
	}
	before := oauth.Counts()
	ctx := context.Background()
	start := time.Now()
	for i := range *n {
		env := &actions.Env{Params: vals, Sessions: actions.NewSessions(), Tokens: tokens,
			Log: slog.New(slog.DiscardHandler)}
		if err := check.Run(ctx, env); err != nil {
			tb.Fatalf("login %d: %v", i+1, err)
		}
	}
	elapsed := time.Since(start)
	after := oauth.Counts()
	tokenReqs := func(c testmail.OAuthCounts) int { return c.TokenCode + c.TokenRefresh + c.TokenDevice }
	out, _ := json.Marshal(result{
		Logins: *n, TokenEndpoint: tokenReqs(after) - tokenReqs(before), TokenRefresh: after.TokenRefresh - before.TokenRefresh,
		Introspections: after.Introspect - before.Introspect, Seconds: elapsed.Seconds(), AccessTTL: ttl.String(),
	})
	fmt.Println(string(out))
}
