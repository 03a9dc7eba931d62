package csvconn_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/examples/plugin-csv/csvconn"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	out := filepath.Join(dir, "out.csv")
	if err := os.WriteFile(in, []byte("sku,price,note\nA1,1.50,\"x, y\"\nB2,2,plain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name    string
		src     connector.Config
		columns []any
		values  []string
		want    string
	}{
		{"header", connector.Config{"path": in, "batch_size": int64(1)}, []any{"price", "sku", "missing"},
			[]string{`{"sku":"A1","price":"1.50","note":"x, y"}`, `{"sku":"B2","price":"2","note":"plain"}`},
			"price,sku,missing\n1.50,A1,\n2,B2,\n"},
		{"semicolon out", connector.Config{"path": in}, []any{"note"},
			[]string{`{"sku":"A1","price":"1.50","note":"x, y"}`, `{"sku":"B2","price":"2","note":"plain"}`},
			"note\n\"x, y\"\nplain\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(out)
			src, err := csvconn.NewSource(tt.src, connector.Env{})
			if err != nil {
				t.Fatal(err)
			}
			if err := src.Open(ctx, nil); err != nil {
				t.Fatal(err)
			}
			defer src.Close(ctx)
			var recs []connector.Record
			for {
				b, err := src.Read(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, b...)
			}
			if len(recs) != len(tt.values) {
				t.Fatalf("read %d records, want %d", len(recs), len(tt.values))
			}
			for i, r := range recs {
				if string(r.Value) != tt.values[i] {
					t.Errorf("record %d = %s, want %s", i, r.Value, tt.values[i])
				}
			}
			snk, err := csvconn.NewSink(connector.Config{"path": out, "columns": tt.columns}, connector.Env{})
			if err != nil {
				t.Fatal(err)
			}
			if err := snk.Open(ctx); err != nil {
				t.Fatal(err)
			}
			if err := snk.Write(ctx, recs); err != nil {
				t.Fatal(err)
			}
			if err := snk.Close(ctx); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(out)
			if string(b) != tt.want {
				t.Fatalf("out.csv = %q, want %q", b, tt.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   connector.Config
		field string
	}{
		{"no path", connector.Config{}, "path"},
		{"bad delimiter", connector.Config{"path": "x", "delimiter": "ab"}, "delimiter"},
		{"key without header", connector.Config{"path": "x", "header": false, "key_column": "id"}, "key_column"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := csvconn.NewSource(tt.cfg, connector.Env{})
			var ce *connector.ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want a config error on %s", err, tt.field)
			}
		})
	}
}
