package iceberg_test

import (
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func TestConformanceSink(t *testing.T) {
	schema := []any{map[string]any{"name": "n", "type": "long", "required": true}}
	conntest.TestSink(t, conntest.SinkHarness{
		Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
			d := sqliteDest(t)
			name := uniqueTable(t, d)
			cfg := conntest.Config(t, spec, map[string]any{"catalog": d.catalog, "table": name, "schema": schema})
			return func() (connector.Sink, error) {
					return newSinkFromConfig(cfg)
				}, func(t *testing.T) []connector.Record {
					var out []connector.Record
					for _, row := range readRows(t, d, name) {
						out = append(out, connector.Record{Value: []byte(row)})
					}
					return out
				}
		},
		Poison: func(i int) connector.Record {
			return connector.Record{Value: []byte(`{"n":"not a number"}`), Position: connector.Position{Offset: int64(i)}}
		},
		Broken: func(t *testing.T) (connector.Sink, error) {
			cfg := conntest.Config(t, spec, map[string]any{
				"catalog": map[string]any{"type": "rest", "uri": "http://127.0.0.1:1"}, "table": "a.b", "schema": schema,
			})
			return newSinkFromConfig(cfg)
		},
	})
}
