package testenv

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// Missing reports a tool or service the test cannot run without: it fails the test with
// t.Fatalf under CI=true, where everything `make test` installs must be there, and skips it
// otherwise. msg says what is missing and how to get it.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s [CI=true: a missing tool or service is a failure]", msg)
		return
	}
	t.Skipf("%s", msg)
}

// Chromium returns the path of a headless Chromium: $SLUICE_CHROMIUM, else chromium,
// chromium-browser or google-chrome on PATH. Without one it calls Missing.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Missing(t, "no headless Chromium (chromium, chromium-browser or google-chrome on PATH, or $SLUICE_CHROMIUM): run `make chromium` (scripts/setup-chromium.sh)")
	return ""
}

// ChromiumProfile returns a new directory for a Chromium's --user-data-dir, removed when the
// test ends. Chromium's helper processes (crash handler, zygote) can outlive the browser for a
// moment and still write there, which fails t.TempDir's removal ("directory not empty"); this
// one retries the removal for a few seconds and then only logs what is left.
func ChromiumProfile(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; ; i++ {
			err := os.RemoveAll(dir)
			if err == nil {
				return
			}
			if i == 50 {
				t.Logf("chromium profile %s not removed: %v", dir, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return dir
}
