package aggregate

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Keys and event times extracted ahead, on another goroutine while the previous batch is
// processed, give exactly what Process finds itself: the same actions, rejections (with their
// reasons), alerts, late records and windows, for keys and times in the value, the record's
// key, the whole value and processing time. An extraction of another batch is ignored.
func TestExtractedAheadGivesTheSameResults(t *testing.T) {
	odd := []connector.Record{
		{Value: []byte(`{"ts":1}`)},                         // no key
		{Value: []byte(`{"k":"a","ts":"yesterday","v":1}`)}, // bad time
		{Value: []byte(`{"k":{"x":1},"ts":5,"v":1}`)},       // a key that is not text
		{Value: []byte(`{"k":"a","ts":1000}`)},              // no v: the guest rejects it
		{Value: []byte(`{"k":"a","ts":2000,"v":-5}`)},       // an alert
		{Value: []byte(`{"k":"é\u00e9","ts":"2023-11-14T22:13:20Z","v":2}`)},
		{Value: []byte(`not json`)},
	}
	recs := append(dataset(3000, 50, 7), odd...)
	for i := range recs {
		if i%3 == 0 {
			recs[i].Key = []byte(fmt.Sprintf("rk%d", i%17))
		}
	}
	configs := map[string]Config{
		"key and time in the value": tumblingConfig(),
		"record key":                {Time: mustPath("$.ts"), Window: Window{Kind: Tumbling, Size: time.Minute}, Lateness: 2 * time.Second},
		"whole value":               {WholeValue: true, Time: mustPath("$.ts"), Window: Window{Kind: Hopping, Size: time.Minute, Every: 20 * time.Second}},
		"processing time":           {Key: mustPath("$.k"), Window: Window{Kind: Tumbling, Size: time.Hour}},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			clock := func() time.Time { return time.UnixMilli(1_700_000_000_000) }
			cfg.Clock = clock
			ctx := context.Background()
			open := func() *Operator {
				db := openDB(t, t.TempDir())
				t.Cleanup(func() { db.Close() })
				o, err := New(cfg, &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
				if err != nil {
					t.Fatal(err)
				}
				return o
			}
			plain, ahead := open(), open()
			const batch = 113
			var batches [][]connector.Record
			for lo := 0; lo < len(recs); lo += batch {
				batches = append(batches, recs[lo:min(lo+batch, len(recs))])
			}
			next := make(chan *Extracted, 1)
			next <- ahead.Extract(batches[0])
			rejected := 0
			for b, in := range batches {
				ex := <-next
				if b+1 < len(batches) {
					go func() { next <- ahead.Extract(batches[b+1]) }()
				}
				want, err := plain.Process(ctx, uint64(b+1), in)
				if err != nil {
					t.Fatal(err)
				}
				if b == 1 {
					ex = ahead.Extract(batches[0]) // another batch's: ignored
				}
				got, err := ahead.ProcessExtracted(ctx, uint64(b+1), in, ex)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("batch %d: extracted ahead %+v\nprocessed %+v", b, got, want)
				}
				rejected += len(want.Rejected)
			}
			if rejected == 0 {
				t.Fatal("no record was rejected: the test does not compare the reasons")
			}
		})
	}
}
