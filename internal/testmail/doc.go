// Package testmail is Mailwright's test harness of real servers: Dovecot (IMAP, POP3,
// submission) started from Debian's binaries on 127.0.0.1, a strict local OAuth 2.0
// authorization server, and in-process go-imap and go-smtp servers.
//
// Every helper takes a testing.TB, binds to 127.0.0.1 on free ports, waits for its port by
// polling (never sleeping) and stops itself in t.Cleanup. Under CI=true a missing Dovecot is
// a test failure, not a skip.
package testmail
