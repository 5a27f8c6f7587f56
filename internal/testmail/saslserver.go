package testmail

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
)

// TokenCheck reports whether token is a valid OAuth 2.0 access token for user. With an
// OAuthServer: func(user, tok string) bool { u, _, ok := srv.ValidAccessToken(tok); return ok && u == user }.
type TokenCheck func(user, token string) bool

// TokenRejectedError is the error the OAuth SASL servers end a failed exchange with, after
// the client answered the error challenge as its mechanism requires. The in-process servers
// turn it into NO [AUTHENTICATIONFAILED] (IMAP) and 535 5.7.8 (SMTP).
type TokenRejectedError struct {
	Mech string
	User string // the user the client named
}

// Error implements error.
func (e *TokenRejectedError) Error() string {
	return fmt.Sprintf("testmail: %s: access token of %q rejected", e.Mech, e.User)
}

// SASLProtocolError is the error the OAuth SASL servers end an exchange with when the client
// breaks the mechanism's rules: a malformed initial response, or a wrong answer to the
// error challenge (XOAUTH2 wants an empty one, OAUTHBEARER a single 0x01). The in-process
// servers turn it into BAD (IMAP) and 501 5.5.2 (SMTP), so tests can tell it from a
// refused token.
type SASLProtocolError struct {
	Mech   string
	Reason string
}

// Error implements error.
func (e *SASLProtocolError) Error() string {
	return fmt.Sprintf("testmail: %s protocol error: %s", e.Mech, e.Reason)
}

// OAuth SASL mechanism names.
const (
	MechXOAuth2     = "XOAUTH2"
	MechOAuthBearer = "OAUTHBEARER"
)

// saslOAuthServer is the server side of XOAUTH2 and OAUTHBEARER. go-sasl has no XOAUTH2
// server, and its OAUTHBEARER server indexes response[0] of an empty answer to its error
// challenge and panics (oauthbearer.go: `len(response) != 1 && response[0] != 0x01`), so
// both are implemented here.
type saslOAuthServer struct {
	mech          string
	check         TokenCheck
	scope         string
	authenticated func(user string) error

	state int    // 0: waiting for the initial response, 1: sent the error challenge, 2: done
	user  string // the user named in the initial response
}

// NewXOAuth2Server returns the server side of XOAUTH2. The client's response must be
// "user=<user>\x01auth=Bearer <token>\x01\x01". When check accepts the token,
// authenticated(user) is called and its error, if any, ends the exchange. When it refuses
// the token the server sends the challenge {"status":"401","schemes":"Bearer","scope":scope},
// expects an empty answer and then fails with a *TokenRejectedError (a *SASLProtocolError when
// the answer was not empty).
func NewXOAuth2Server(check TokenCheck, scope string, authenticated func(user string) error) sasl.Server {
	return &saslOAuthServer{mech: MechXOAuth2, check: check, scope: scope, authenticated: authenticated}
}

// NewOAuthBearerServer returns the server side of OAUTHBEARER (RFC 7628). The client's
// response must be "n,a=<user>,\x01...auth=Bearer <token>\x01...\x01" (host= and port= are
// accepted and ignored). Success and failure go as with NewXOAuth2Server, except that the
// error challenge must be answered with the single byte 0x01 (RFC 7628 section 3.2.3).
func NewOAuthBearerServer(check TokenCheck, scope string, authenticated func(user string) error) sasl.Server {
	return &saslOAuthServer{mech: MechOAuthBearer, check: check, scope: scope, authenticated: authenticated}
}

func (s *saslOAuthServer) protocolError(format string, args ...any) ([]byte, bool, error) {
	s.state = 2
	return nil, true, &SASLProtocolError{Mech: s.mech, Reason: fmt.Sprintf(format, args...)}
}

// Next implements sasl.Server.
func (s *saslOAuthServer) Next(response []byte) ([]byte, bool, error) {
	switch s.state {
	case 0:
		if response == nil {
			// No initial response: ask for it with an empty challenge.
			return []byte{}, false, nil
		}
		var user, token string
		var ok bool
		if s.mech == MechXOAuth2 {
			user, token, ok = parseXOAuth2Response(response)
		} else {
			user, token, ok = parseOAuthBearerResponse(response)
		}
		if !ok {
			return s.protocolError("malformed initial response")
		}
		s.user = user
		if s.check != nil && s.check(user, token) {
			s.state = 2
			if s.authenticated != nil {
				if err := s.authenticated(user); err != nil {
					return nil, true, err
				}
			}
			return nil, true, nil
		}
		s.state = 1
		challenge, err := json.Marshal(map[string]string{"status": "401", "schemes": "Bearer", "scope": s.scope})
		if err != nil {
			return s.protocolError("encode challenge: %v", err)
		}
		return challenge, false, nil
	case 1:
		s.state = 2
		want := []byte{}
		if s.mech == MechOAuthBearer {
			want = []byte{0x01}
		}
		if !bytes.Equal(response, want) {
			return s.protocolError("answer to the error challenge is %q, want %q", response, want)
		}
		return nil, true, &TokenRejectedError{Mech: s.mech, User: s.user}
	default:
		return s.protocolError("exchange already finished")
	}
}

// parseXOAuth2Response splits "user=<u>\x01auth=Bearer <t>\x01\x01".
func parseXOAuth2Response(b []byte) (user, token string, ok bool) {
	rest, found := strings.CutSuffix(string(b), "\x01\x01")
	if !found {
		return "", "", false
	}
	var haveUser, haveAuth bool
	for _, kv := range strings.Split(rest, "\x01") {
		k, v, found := strings.Cut(kv, "=")
		if !found {
			return "", "", false
		}
		switch k {
		case "user":
			user, haveUser = v, true
		case "auth":
			token, haveAuth = bearerToken(v)
			if !haveAuth {
				return "", "", false
			}
		}
	}
	return user, token, haveUser && haveAuth && user != ""
}

// parseOAuthBearerResponse splits "n,a=<u>,\x01k=v\x01...\x01auth=Bearer <t>\x01\x01".
func parseOAuthBearerResponse(b []byte) (user, token string, ok bool) {
	gs2, kvs, found := strings.Cut(string(b), "\x01")
	if !found || !strings.HasPrefix(gs2, "n,") || !strings.HasSuffix(gs2, ",") {
		return "", "", false
	}
	authzid := strings.TrimSuffix(strings.TrimPrefix(gs2, "n,"), ",")
	if !strings.HasPrefix(authzid, "a=") || strings.Contains(authzid, ",") {
		return "", "", false
	}
	user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(strings.TrimPrefix(authzid, "a="))
	rest, found := strings.CutSuffix(kvs, "\x01\x01")
	if !found {
		return "", "", false
	}
	var haveAuth bool
	for _, kv := range strings.Split(rest, "\x01") {
		k, v, found := strings.Cut(kv, "=")
		if !found {
			return "", "", false
		}
		if k == "auth" {
			token, haveAuth = bearerToken(v)
			if !haveAuth {
				return "", "", false
			}
		}
	}
	return user, token, haveAuth && user != ""
}

// bearerToken takes the token out of "Bearer <token>" (scheme case-insensitive).
func bearerToken(v string) (string, bool) {
	scheme, tok, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// saslErrorMapper wraps a sasl.Server and rewrites the error it ends with, so each protocol
// can answer with its own codes.
type saslErrorMapper struct {
	sasl.Server
	mapErr func(error) error
}

func (m saslErrorMapper) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := m.Server.Next(response)
	if err != nil {
		err = m.mapErr(err)
	}
	return challenge, done, err
}
