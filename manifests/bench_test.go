package manifests_test

import (
	"testing"

	"github.com/sluicehq/sluice/manifests"
)

// BenchmarkLoad measures loading the two-pipeline manifest with every section.
func BenchmarkLoad(b *testing.B) {
	opts := testOptions()
	for b.Loop() {
		if _, diags := manifests.Load([]string{"testdata/good/full.yaml"}, opts); len(diags) > 0 {
			b.Fatal(diags)
		}
	}
}

// BenchmarkJSONSchema measures generating the schema from the registered components.
func BenchmarkJSONSchema(b *testing.B) {
	for b.Loop() {
		if _, err := manifests.JSONSchema(testCatalog); err != nil {
			b.Fatal(err)
		}
	}
}
