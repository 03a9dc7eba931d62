package main

import (
	"flag"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/transform"
	"github.com/sluicehq/sluice/transforms/internal/vectors"
)

var update = flag.Bool("update", false, "rewrite testdata/expected_*.jsonl")

func TestVectors(t *testing.T) {
	vectors.Check(t, "testdata", vectors.Local, *update)
}

// A config whose schema is not a valid JSON Schema is refused in one line that names the keyword.
func TestInvalidSchemaMessage(t *testing.T) {
	_, err := transform.RunLocal([]byte(`{"schema":{"properties":{"price":{"minimum":"zero"}}}}`), nil)
	want := "init: config: schema: not a valid JSON Schema (draft 2020-12): /properties/price/minimum: must be number, not string"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}
