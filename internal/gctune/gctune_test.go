package gctune

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	if v, set := os.LookupEnv("GOGC"); set {
		t.Setenv("GOGC", v) // restored after the test
		os.Unsetenv("GOGC")
	}
	if got := Apply(); got != Percent || debug.SetGCPercent(Percent) != Percent {
		t.Fatalf("without GOGC: Apply = %d, want %d in force", got, Percent)
	}
	// With GOGC in the environment the setting in force (the runtime read GOGC at start-up; here
	// the 77 set below) is kept.
	t.Setenv("GOGC", "77")
	debug.SetGCPercent(77)
	if got := Apply(); got != 77 || debug.SetGCPercent(77) != 77 {
		t.Fatalf("with GOGC=77: Apply = %d, want 77 kept", got)
	}
}
