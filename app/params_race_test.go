//go:build race

package app

// paramsRaceEnabled reports whether the race detector is on (scrypt is then very slow).
const paramsRaceEnabled = true
