//go:build race

package integration

// raceEnabled: the broker binary is built with the race detector when the
// tests are.
const raceEnabled = true
