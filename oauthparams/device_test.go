package oauthparams

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mailwright/mailwright/internal/testmail"
)

func TestAuthorizeDevice(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{DeviceInterval: 10 * time.Millisecond})
	s := tokStore(t, t.TempDir())
	if err := s.Put(serverSet(srv, "work")); err != nil {
		t.Fatal(err)
	}
	var prompt bytes.Buffer
	var code string
	saved, err := s.AuthorizeDevice(context.Background(), "work", DeviceOptions{Prompt: &prompt,
		OnCode: func(userCode, uri string) {
			code = userCode
			go func() {
				if err := srv.ApproveDevice(userCode); err != nil {
					t.Error(err)
				}
			}()
		}})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("To sign in, open %s/device/verify and enter the code %s\n", srv.URL, code)
	if !strings.HasPrefix(prompt.String(), want) {
		t.Errorf("prompt %q, want it to start with %q", prompt.String(), want)
	}
	p, _ := s.Get("work")
	noSecrets(t, prompt.String(), p.Secrets.RefreshToken, p.Secrets.AccessToken)
	if st := p.Status(time.Now()); st.State != StateReady || p.GrantedScope != tokScope || p.Secrets.RefreshToken != saved.Secrets.RefreshToken {
		t.Fatalf("after device sign-in: %+v, granted %q", st, p.GrantedScope)
	}
	if c := srv.Counts(); c.Device != 1 || c.TokenDevice < 1 {
		t.Errorf("counts %+v", c)
	}
	if _, err := NewTokenManager(s, nil).ForceRefresh(context.Background(), "work", ""); err != nil {
		t.Errorf("refresh with the device-flow refresh token: %v", err)
	}
}

func TestAuthorizeDeviceNoDeviceURL(t *testing.T) {
	srv := testmail.StartOAuthServer(t, testmail.OAuthOptions{})
	s := tokStore(t, t.TempDir())
	p := serverSet(srv, "work")
	p.DeviceURL = ""
	if err := s.Put(p); err != nil {
		t.Fatal(err)
	}
	_, err := s.AuthorizeDevice(context.Background(), "work", DeviceOptions{})
	if err == nil || !strings.Contains(err.Error(), "device_url") {
		t.Fatalf("err = %v, want one naming device_url", err)
	}
}

// stubDevice is a device-flow provider whose token endpoint always answers tokenErr.
func stubDevice(t *testing.T, tokenErr string, expiresIn int) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"device_code":"dc-secret-device-code","user_code":"BCDF-GHJK",`+
			`"verification_uri":"http://127.0.0.1/verify","expires_in":%d,"interval":1}`, expiresIn)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":%q}`, tokenErr)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func TestAuthorizeDeviceRefused(t *testing.T) {
	for _, tc := range []struct {
		code string
		kind ErrorKind
		want string
	}{
		{"access_denied", KindAccessDenied, "access was denied"},
		{"expired_token", KindInvalidGrant, "device code expired"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			ts := stubDevice(t, tc.code, 600)
			s := tokStore(t, t.TempDir())
			p := ParamSet{Name: "work", ClientID: "cid", AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token",
				DeviceURL: ts.URL + "/device", Scope: tokScope, Secrets: Secrets{RefreshToken: "rt-old-refresh"}}
			if err := s.Put(p); err != nil {
				t.Fatal(err)
			}
			_, err := s.AuthorizeDevice(context.Background(), "work", DeviceOptions{})
			pe, ok := errors.AsType[*ProviderError](err)
			if !ok || pe.Kind != tc.kind || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %s saying %q", err, tc.kind, tc.want)
			}
			noSecrets(t, err.Error(), "dc-secret-device-code")
			if got, _ := s.Get("work"); got.Secrets.RefreshToken != "rt-old-refresh" || got.SignInNeeded != "" {
				t.Fatal("a refused device sign-in changed the stored set")
			}
		})
	}
}

func TestAuthorizeDeviceTimeout(t *testing.T) {
	ts := stubDevice(t, "authorization_pending", 600)
	s := tokStore(t, t.TempDir())
	p := ParamSet{Name: "work", ClientID: "cid", AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token",
		DeviceURL: ts.URL + "/device", Scope: tokScope}
	if err := s.Put(p); err != nil {
		t.Fatal(err)
	}
	_, err := s.AuthorizeDevice(context.Background(), "work", DeviceOptions{Timeout: 1500 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no sign-in within") {
		t.Fatalf("err = %v", err)
	}
}

func TestAuthorizeDeviceCodeExpires(t *testing.T) {
	ts := stubDevice(t, "authorization_pending", 1)
	s := tokStore(t, t.TempDir())
	p := ParamSet{Name: "work", ClientID: "cid", AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token",
		DeviceURL: ts.URL + "/device", Scope: tokScope}
	if err := s.Put(p); err != nil {
		t.Fatal(err)
	}
	_, err := s.AuthorizeDevice(context.Background(), "work", DeviceOptions{})
	if err == nil || !strings.Contains(err.Error(), "expired before sign-in finished") {
		t.Fatalf("err = %v", err)
	}
}
