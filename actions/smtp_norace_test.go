//go:build !race

package actions

// smtpAllocBound bounds the bytes a 30 MB send may allocate.
const smtpAllocBound = 4 << 20
