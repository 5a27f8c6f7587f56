// Package oauthparams holds Mailwright's named OAuth 2.0 parameter sets.
//
// A ParamSet names everything a mail action needs to get an access token for one mailbox:
// client ID, endpoints, scope, extra authorization parameters and, kept apart in Secrets,
// the client secret and tokens. ParamSet.Normalize and ParamSet.Validate check a set and
// report every problem at once in words; ParamSet.OAuth2Config and AuthCodeOptions turn it
// into a golang.org/x/oauth2 configuration; ParamSet.Status says whether it is ready or the
// user must click Get Refresh Token, and why. Store keeps the sets of a data folder, with
// the secrets in a SecretBackend (the OS keyring or an encrypted file).
//
// Presets are the "Load Predefined Endpoints" data for the common mail providers (Google,
// Microsoft and its authorities and sovereign clouds, Yahoo, AOL, Fastmail, Yandex,
// Mail.ru, Zoho, Comcast): endpoints, scopes per protocol, required extra parameters, mail
// servers and the notes users need. Explain and ExplainRedirectError turn token-endpoint
// and sign-in failures into a ProviderError that keeps the provider's code visible, says
// what to do and never carries a token or secret.
//
// The package is the bottom of the import graph (app → task → actions → oauthparams) and
// imports no other Mailwright package.
package oauthparams
