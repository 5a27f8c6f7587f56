package task

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/actions"
	"github.com/mailwright/mailwright/internal/testmail"
	"github.com/mailwright/mailwright/oauthparams"
)

// TestFaultTokenEndpoint runs a task that opens an IMAP connection with an OAuth parameter
// set, under a retry policy, while the token endpoint fails:
//   - 503 with an HTML page, a 200 that is not JSON, no answer in time: each is a
//     temporary error — the step is retried with backoff and the run succeeds once the
//     endpoint answers; the set is not marked;
//   - invalid_grant: not retried (one token request), the set is marked sign-in needed,
//     and the run fails with words that say what to do ("click Get Refresh Token"); the
//     next run does not ask the provider again and says the same.
func TestFaultTokenEndpoint(t *testing.T) {
	oauth := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{OAuthIntrospectionURL: oauth.IntrospectURL})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "INBOX", 2, 500)
	const scope = "https://mail.test/imap offline_access"
	store, err := oauthparams.Open(t.TempDir(), oauthparams.StoreOptions{Backend: oauthparams.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	_, refresh := oauth.Mint(user, scope)
	if err := store.Put(oauthparams.ParamSet{Name: "Local", Account: user, ClientID: testmail.OAuthTestClientID,
		AuthURL: oauth.AuthURL, TokenURL: oauth.TokenURL, Scope: scope, GrantedScope: scope,
		Secrets: oauthparams.Secrets{ClientSecret: testmail.OAuthTestClientSecret, RefreshToken: refresh}}); err != nil {
		t.Fatal(err)
	}
	tm := oauthparams.NewTokenManager(store, &http.Client{Timeout: 2 * time.Second})
	rig := newFaultRig(t, actions.NewTokenProvider(store, tm))
	tk := &Task{Name: "Check mail", OnError: &OnError{Policy: PolicyRetry, Retries: 3, Backoff: "20ms"}, Steps: []Step{
		{Action: "imap.open", Params: map[string]string{"host": dc.Host, "port": strconv.Itoa(dc.IMAPSPort), "auth": "oauth",
			"param_set": "Local", "ca_file": dc.Certs.CertFile}},
		{Action: "imap.select", Params: map[string]string{"folder": "INBOX"}},
	}}
	// needRefresh drops the cached access token, so the next run must ask the endpoint.
	needRefresh := func() {
		t.Helper()
		if err := store.Update("Local", func(p *oauthparams.ParamSet) error {
			p.Secrets.AccessToken, p.Secrets.AccessExpiry = "", time.Time{}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		tm.Forget("Local")
	}

	for _, c := range []struct {
		name string
		fail testmail.Failure
	}{
		{"503", testmail.Failure{Kind: testmail.FailServerError, Count: 2}},
		{"not JSON", testmail.Failure{Kind: testmail.FailNotJSON, Count: 2}},
		{"timeout", testmail.Failure{Kind: testmail.FailSlow, Count: 1, Delay: 10 * time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			needRefresh()
			before := oauth.Counts().TokenRefresh
			start := len(rig.logs.String())
			oauth.SetFailure(c.fail)
			res := rig.run(tk)
			log := rig.logs.String()[start:]
			if res.Outcome != OutcomeSuccess {
				t.Fatalf("run: %s: %v\n%s", res.Outcome, res.Err, log)
			}
			if n := strings.Count(log, "temporary error; retrying"); n != c.fail.Count {
				t.Fatalf("%d retries logged, want %d\n%s", n, c.fail.Count, log)
			}
			if n := oauth.Counts().TokenRefresh - before; n != c.fail.Count+1 {
				t.Fatalf("%d token requests, want %d", n, c.fail.Count+1)
			}
			p, err := store.Get("Local")
			if err != nil || p.SignInNeeded != "" {
				t.Fatalf("a temporary failure marked the set: %q %v", p.SignInNeeded, err)
			}
		})
	}

	t.Run("invalid_grant", func(t *testing.T) {
		needRefresh()
		before := oauth.Counts().TokenRefresh
		start := len(rig.logs.String())
		oauth.SetFailure(testmail.Failure{Kind: testmail.FailInvalidGrant})
		t.Cleanup(func() { oauth.SetFailure(testmail.Failure{}) })
		res := rig.run(tk)
		log := rig.logs.String()[start:]
		if res.Outcome != OutcomeFailed || strings.Contains(log, "retrying") {
			t.Fatalf("run: %s (%v), retried: %v\n%s", res.Outcome, res.Err, strings.Contains(log, "retrying"), log)
		}
		if n := oauth.Counts().TokenRefresh - before; n != 1 {
			t.Fatalf("%d token requests, want 1 (invalid_grant is final)", n)
		}
		msg := res.Err.Error()
		if !strings.Contains(msg, "Local") || !strings.Contains(msg, "invalid_grant") || !strings.Contains(msg, "click Get Refresh Token") {
			t.Fatalf("the error does not tell the user what to do: %s", msg)
		}
		p, err := store.Get("Local")
		if err != nil || p.SignInNeeded == "" {
			t.Fatalf("the set is not marked sign-in needed: %+v %v", p, err)
		}
		// The next run fails the same way without bothering the provider.
		res = rig.run(tk)
		if res.Outcome != OutcomeFailed || !strings.Contains(res.Err.Error(), "needs a new sign-in") ||
			!strings.Contains(res.Err.Error(), "click Get Refresh Token") || oauth.Counts().TokenRefresh-before != 1 {
			t.Fatalf("second run: %v (token requests %d)", res.Err, oauth.Counts().TokenRefresh-before)
		}
		t.Logf("what the user reads: %s", msg)
	})
}
