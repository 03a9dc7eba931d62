package conntest

import (
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Config builds the configuration a factory receives from a manifest, through the connector's
// spec: defaults applied, types checked (connector.Spec.Config). It fails the test when the spec
// refuses values, so a harness never hands a factory a configuration a manifest could not give.
func Config(t testing.TB, spec connector.Spec, values map[string]any) connector.Config {
	t.Helper()
	cfg, err := spec.Config(values)
	if err != nil {
		t.Fatalf("conntest: config of %s %q: %v", spec.Kind, spec.Name, err)
	}
	return cfg
}
