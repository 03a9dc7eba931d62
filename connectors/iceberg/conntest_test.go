package iceberg_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connectors/iceberg"
	"github.com/sluicehq/sluice/internal/testenv"

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

// txHarness runs the transactional checks on the destinations d makes; with a proxy, the sink
// goes through it and BreakCommit makes the proxy refuse the next commit.
func txHarness(d func(t *testing.T) (dest, *commitProxy), breakable bool) conntest.TransactionalSinkHarness {
	schema := []any{map[string]any{"name": "n", "type": "long", "required": true}}
	var proxy *commitProxy
	h := conntest.TransactionalSinkHarness{
		Setup: func(t *testing.T) (conntest.TxSinkFactory, func(t *testing.T) []connector.Record) {
			var dst dest
			dst, proxy = d(t)
			name := uniqueTable(t, dst)
			cat := dst.catalog
			if proxy != nil { // the sink talks to the catalog through the proxy
				proxy.table = name[strings.LastIndexByte(name, '.')+1:]
				cat = map[string]any{"type": "rest", "uri": proxy.srv.URL}
			}
			cfg := conntest.Config(t, spec, map[string]any{"catalog": cat, "table": name, "schema": schema})
			return func(e connector.Env) (connector.TransactionalSink, error) {
					return iceberg.NewSink(cfg, e)
				}, func(t *testing.T) []connector.Record {
					var out []connector.Record
					for _, row := range readRows(t, dst, name) {
						out = append(out, connector.Record{Value: []byte(row)})
					}
					return out
				}
		},
		Poison: func(i int) connector.Record { return connector.Record{Value: []byte(`{"n":null}`)} },
		Shared: true,
	}
	if breakable {
		h.BreakCommit = func(t *testing.T) func() {
			proxy.mode.Store(proxyRefuse)
			return func() { proxy.mode.Store(proxyPass) }
		}
	}
	return h
}

func TestConformanceTransactionalSink(t *testing.T) {
	conntest.TestTransactionalSink(t, txHarness(func(t *testing.T) (dest, *commitProxy) { return sqliteDest(t), nil }, false))
}

// TestConformanceTransactionalSinkRESTIntegration includes SharedPositions, three sinks committing
// at once. Iceberg's REST test server over SQLite must then wait for the database's lock (a JDBC
// URI ending in ?busy_timeout=30000): without it a concurrent commit fails with SQLITE_BUSY and
// may leave the server's catalog locked.
func TestConformanceTransactionalSinkRESTIntegration(t *testing.T) {
	uri := testenv.Require(t, "ICEBERG_REST_URI")
	conntest.TestTransactionalSink(t, txHarness(func(t *testing.T) (dest, *commitProxy) {
		return restDest(t, uri), newCommitProxy(t, uri)
	}, true))
}
