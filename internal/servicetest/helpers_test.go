package servicetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// uniqueName returns a name that no other run of the test has used, so tests never see each
// other's data on the long-lived servers.
func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(t.Name()))
	return fmt.Sprintf("%s_%s_%d", prefix, clean, time.Now().UnixNano())
}

// testContext returns a context that ends with the test or after d.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
