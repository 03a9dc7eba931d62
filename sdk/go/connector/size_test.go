package connector_test

import (
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestRecordSizeChargesHeaders: a record of many empty headers is not small; each header counts
// HeaderOverhead bytes besides its key and value, so a buffer bounded by Size applies
// back-pressure to it.
func TestRecordSizeChargesHeaders(t *testing.T) {
	r := connector.Record{Value: []byte("v"), Headers: make([]connector.Header, 100000)}
	if got, min := r.Size(), 100000*connector.HeaderOverhead; got < min {
		t.Fatalf("Size of a record with 100,000 empty headers = %d, want at least %d", got, min)
	}
	r.Headers = []connector.Header{{Key: "k", Value: []byte("value")}}
	if got, want := r.Size(), 1+64+connector.HeaderOverhead+1+5; got != want {
		t.Fatalf("Size = %d, want %d", got, want)
	}
}
