package wasmhost_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestExplodeArrayFanOutKept runs transforms/explode_array over orders of about 4.7 KB, each with
// 20 items and a 4,000-character notes field, in batches of 1,024: every batch keeps about 90 MB
// of order lines, which the stage's output budget must hold, so that no legitimate record is
// dead-lettered as an invalid result.
func TestExplodeArrayFanOutKept(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, filepath.Join("..", "..", "transforms", "explode_array", "explode_array.wasm"),
		wasmhost.StageConfig{Name: "lines", Config: []byte(`{"field":"items","as":"item","index_field":"line"}`)})
	notes := strings.Repeat("n", 4000)
	var items []string
	for k := 0; k < 20; k++ {
		items = append(items, fmt.Sprintf(`{"sku":"SKU-%05d","qty":%d,"price":12.5}`, k, k+1))
	}
	const batch, batches = 1024, 2
	for b := 0; b < batches; b++ {
		recs := make([]connector.Record, batch)
		for i := range recs {
			n := b*batch + i
			recs[i] = connector.Record{
				Key:      []byte(fmt.Sprintf("order-%d", n)),
				Value:    []byte(fmt.Sprintf(`{"order":%d,"customer":"c-%d","notes":"%s","items":[%s],"total":250}`, n, n%97, notes, strings.Join(items, ","))),
				Position: connector.Position{Offset: int64(n)},
			}
		}
		res, err := s.Process(context.Background(), recs)
		if err != nil {
			t.Fatal(err)
		}
		var bytes int
		for _, e := range res.Emitted {
			bytes += e.Record.Size()
		}
		if len(res.Rejected) != 0 {
			t.Fatalf("batch %d: %d of %d orders rejected, the first with %q (%d records of %d bytes kept)", b, len(res.Rejected), batch, res.Rejected[0].Reason, len(res.Emitted), bytes)
		}
		if len(res.Emitted) != 20*batch {
			t.Fatalf("batch %d: %d order lines, want %d", b, len(res.Emitted), 20*batch)
		}
		t.Logf("batch %d: %d order lines of %d MB in all", b, len(res.Emitted), bytes/1e6)
	}
}
