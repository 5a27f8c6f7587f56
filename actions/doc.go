// Package actions holds Mailwright's email actions: the steps a task runs against a mail
// account, and the connection code they share, such as the OAuth 2.0 SASL clients (XOAUTH2,
// OAUTHBEARER) and POP3 dialing with implicit TLS, STLS and SASL AUTH. The action registry
// will live here too.
package actions
