package wasmhost_test

import (
	"os"
	"testing"
)

// goGuestTmp holds guests built during the test run.
var goGuestTmp string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasmhost-test-")
	if err != nil {
		panic(err)
	}
	goGuestTmp = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
