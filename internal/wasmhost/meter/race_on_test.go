//go:build race

package meter_test

// raceEnabled: the race detector slows compiling and running modules several times over, so the
// tests run fewer of them.
const raceEnabled = true
