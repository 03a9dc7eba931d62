package main

import (
	"flag"
	"testing"

	"github.com/sluicehq/sluice/transforms/internal/vectors"
)

var update = flag.Bool("update", false, "rewrite testdata/expected_*.jsonl")

func TestVectors(t *testing.T) {
	vectors.Check(t, "testdata", vectors.Local, *update)
}
