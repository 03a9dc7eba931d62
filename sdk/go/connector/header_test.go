package connector_test

import (
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestIsReservedHeader(t *testing.T) {
	for key, want := range map[string]bool{
		connector.HeaderMalformed: true,
		"Sluice-Malformed":        true,
		"SLUICE-anything":         true,
		"sluice-":                 true,
		"sluice":                  false,
		"x-sluice-malformed":      false,
		"":                        false,
		"content-type":            false,
	} {
		if got := connector.IsReservedHeader(key); got != want {
			t.Errorf("IsReservedHeader(%q) = %v, want %v", key, got, want)
		}
	}
}
