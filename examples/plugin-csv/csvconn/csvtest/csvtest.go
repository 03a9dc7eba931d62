// Package csvtest holds the conntest harnesses of the csv connector, shared by the compiled-in
// conformance test and the one that runs the plugin binary: both build the connector from the
// same configuration, only the factory differs.
package csvtest

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// NewSource builds a source from a configuration (compiled in or through a plugin host).
type NewSource func(cfg connector.Config) (connector.Source, error)

// NewSink builds a sink from a configuration.
type NewSink func(cfg connector.Config) (connector.Sink, error)

// SourceHarness prepares CSV files of n rows and reads them with sources from newSource.
func SourceHarness(newSource NewSource) conntest.SourceHarness {
	return conntest.SourceHarness{
		Records: 1000,
		Setup: func(t *testing.T, n int) conntest.SourceFactory {
			path := filepath.Join(t.TempDir(), "in.csv")
			var b strings.Builder
			b.WriteString("id,name,note\n")
			for i := range n {
				fmt.Fprintf(&b, "%d,item %d,\"quoted, with comma\"\n", i, i)
			}
			if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := connector.Config{"path": path, "header": true, "key_column": "id", "batch_size": int64(64)}
			return func() (connector.Source, error) { return newSource(cfg) }
		},
		Broken: func(t *testing.T) (connector.Source, error) {
			return newSource(connector.Config{"path": filepath.Join(t.TempDir(), "missing.csv")})
		},
		Identity: func(r connector.Record) string { return string(r.Key) },
	}
}

// SinkHarness writes into a fresh CSV file with sinks from newSink and reads it back.
func SinkHarness(newSink NewSink) conntest.SinkHarness {
	return conntest.SinkHarness{
		Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
			path := filepath.Join(t.TempDir(), "out.csv")
			cfg := connector.Config{"path": path, "columns": []any{"id", "name"}, "header": true}
			readBack := func(t *testing.T) []connector.Record {
				f, err := os.Open(path)
				if err != nil {
					t.Fatalf("read back: %v", err)
				}
				defer f.Close()
				rows, err := csv.NewReader(f).ReadAll()
				if err != nil {
					t.Fatalf("read back: %v", err)
				}
				var out []connector.Record
				for _, row := range rows[1:] {
					v, _ := json.Marshal(map[string]string{"id": row[0], "name": row[1]})
					out = append(out, connector.Record{Key: []byte(row[0]), Value: v})
				}
				return out
			}
			return func() (connector.Sink, error) { return newSink(cfg) }, readBack
		},
		Broken: func(t *testing.T) (connector.Sink, error) {
			return newSink(connector.Config{"path": filepath.Join(t.TempDir(), "no-such-dir", "out.csv"), "columns": []any{"id"}})
		},
		Record: func(i int) connector.Record {
			return connector.Record{Key: fmt.Appendf(nil, "%d", i), Value: fmt.Appendf(nil, `{"id":"%d","name":"item %d"}`, i, i)}
		},
		Poison: func(i int) connector.Record {
			return connector.Record{Key: fmt.Appendf(nil, "%d", i), Value: []byte(`not json`)}
		},
		Identity: func(r connector.Record) string { return string(r.Key) },
	}
}
