//go:build race

package wasmhost_test

// raceEnabled: the race detector multiplies memory use, so peak-RSS bounds do not apply.
const raceEnabled = true
