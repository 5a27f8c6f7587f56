//go:build race

package actions

// smtpAllocBound bounds the bytes a 30 MB send may allocate under the race detector,
// which disables the tiny-object allocator (every 2-byte CRLF of go-message's base64 line
// wrapper then costs 16 bytes).
const smtpAllocBound = 12 << 20
