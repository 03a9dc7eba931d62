package main

import (
	"flag"
	"testing"

	"github.com/sluicehq/sluice/transforms/internal/vectors"
)

var update = flag.Bool("update", false, "rewrite ../testdata/expected_*.jsonl from this implementation")

// TestVectors checks the shared vectors of ../SPEC.md natively; transforms/wasm_test.go checks the
// built module through the host against the same files.
func TestVectors(t *testing.T) {
	vectors.Check(t, "../testdata", vectors.Local, *update)
}
