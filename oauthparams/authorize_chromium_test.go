package oauthparams

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

// TestAuthorizeWithHeadlessChromium runs Get Refresh Token with a real browser: Debian's
// Chromium, started through $BROWSER exactly as a user's browser would be, follows the
// sign-in redirect to the one-shot loopback listener.
func TestAuthorizeWithHeadlessChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	testmail.Require(t, err == nil, "Chromium (Debian package chromium)")
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	p := serverSet(srv, "Chromium")
	if err := s.Put(p); err != nil {
		t.Fatal(err)
	}
	// Chromium may still be writing its profile when the test ends (it runs detached, as a
	// user's browser would), so the profile is removed with retries rather than by t.TempDir.
	profile, err := os.MkdirTemp("", "mw-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	// The flags keep Chromium off the network (this machine has none) and quiet; --dump-dom
	// makes it load the page, print it and exit.
	t.Setenv("BROWSER", strings.Join([]string{bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--user-data-dir=" + profile, "--dump-dom"}, " "))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	got, err := s.Authorize(ctx, "Chromium", AuthorizeOptions{Timeout: 90 * time.Second})
	if err != nil {
		t.Fatalf("sign-in through Chromium: %v", err)
	}
	if st := got.Status(time.Now()); st.State != StateReady || got.Secrets.RefreshToken == "" {
		t.Fatalf("after sign-in: %s (%s)", st.State, st.Reason)
	}
	if c := srv.Counts(); c.Authorize != 1 || c.TokenCode != 1 {
		t.Fatalf("authorize requests %d, code exchanges %d; want 1 each", c.Authorize, c.TokenCode)
	}
}
