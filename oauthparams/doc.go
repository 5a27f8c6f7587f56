// Package oauthparams will hold Mailwright's named OAuth 2.0 parameter sets: the model and
// its validation, the store with secrets kept apart, provider presets, browser and device
// sign-in, silent token refresh and import/export. It is the bottom of the import graph
// (app → task → actions → oauthparams) and imports no other Mailwright package.
package oauthparams
