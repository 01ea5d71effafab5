//go:build race

package e2e

// raceEnabled builds the latch binary with the race detector too.
const raceEnabled = true
