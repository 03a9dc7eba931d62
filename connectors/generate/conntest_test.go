package generate_test

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func TestConformance(t *testing.T) {
	for _, bounded := range []bool{true, false} {
		t.Run(fmt.Sprintf("bounded=%v", bounded), func(t *testing.T) {
			conntest.TestSource(t, conntest.SourceHarness{
				Unbounded: !bounded,
				Setup: func(t *testing.T, n int) conntest.SourceFactory {
					count := int64(n)
					if !bounded {
						count = 0 // forever; the suite stops once it has seen the n records it expects
					}
					cfg := conntest.Config(t, generate.Component().Spec, map[string]any{"template": `{"seq":{{seq}}}`, "count": count, "batch_size": 64})
					return func() (connector.Source, error) { return generate.New(cfg, connector.Env{}) }
				},
				Identity: func(r connector.Record) string { return string(r.Value) },
			})
		})
	}
}
