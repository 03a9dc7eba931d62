package e2e

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/examples/commodity-prices/pricerecord"
)

// TestQuantileInterpolatesInBuckets checks the percentiles read from bucket counts against
// histogram_quantile's rule: linear inside the bucket that holds the rank.
func TestQuantileInterpolatesInBuckets(t *testing.T) {
	// 100 observations: 50 in (0, 0.01], 40 in (0.01, 0.1], 10 in (0.1, 1].
	h := hist{bounds: []float64{0.01, 0.1, 1, math.Inf(1)}, counts: []float64{50, 40, 10, 0}}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.01}, {0.25, 0.005}, {0.7, 0.055}, {0.95, 0.55}, {0.99, 0.91}} {
		if got := h.quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := h.max(); got != 1 {
		t.Errorf("max = %v, want the upper bound of the highest bucket hit, 1", got)
	}
	if !math.IsNaN((hist{bounds: h.bounds, counts: make([]float64, 4)}).quantile(0.5)) {
		t.Error("the quantile of an empty histogram is a number")
	}
	// Observations above the largest bound: the lower edge is all that is known.
	over := hist{bounds: []float64{1, math.Inf(1)}, counts: []float64{0, 3}}
	if got := over.quantile(0.5); got != 1 {
		t.Errorf("quantile above the last bound = %v, want 1", got)
	}
}

// TestFromDTOUncumulates checks the conversion of a scraped (cumulative) histogram into counts per
// bucket, with +Inf from the sample count.
func TestFromDTOUncumulates(t *testing.T) {
	b := func(ub float64, n uint64) *dto.Bucket {
		return &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(n)}
	}
	h := fromDTO(&dto.Histogram{SampleCount: proto.Uint64(12), Bucket: []*dto.Bucket{b(0.1, 7), b(0.01, 5), b(1, 10)}})
	want := []float64{5, 2, 3, 2}
	if len(h.counts) != 4 || !math.IsInf(h.bounds[3], 1) {
		t.Fatalf("got bounds %v counts %v", h.bounds, h.counts)
	}
	for i := range want {
		if h.counts[i] != want[i] {
			t.Fatalf("counts %v, want %v", h.counts, want)
		}
	}
	var sum hist
	sum.add(h)
	sum.add(h)
	if sum.total() != 24 {
		t.Errorf("two histograms added hold %v observations, want 24", sum.total())
	}
}

// TestRecordsAreShapedLikeThePriceAPI checks the fed records: valid ones and outliers parse with
// every field of the API's records; each malformed form is malformed the way the API's is.
func TestRecordsAreShapedLikeThePriceAPI(t *testing.T) {
	m := newMarket(7, 0.2, 0.05)
	seen := map[pricerecord.Kind]bool{}
	for i := range 20000 {
		p := m.draw()
		p.tsMS = 1767600000000 + int64(i)
		b := appendJSON(nil, int64(i+1), p)
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		seen[p.kind] = true
		price, isNum := v["price"].(float64)
		ts, _ := v["ts"].(string)
		switch p.kind {
		case pricerecord.Valid, pricerecord.Outlier:
			if v["commodity"] != goods[p.commodity].name || !isNum || price != p.price || price <= 0 || v["unit"] != goods[p.commodity].unit ||
				!strings.HasSuffix(ts, "Z") || v["seq"] != float64(i+1) {
				t.Fatalf("valid record %s", b)
			}
		case pricerecord.PriceString:
			if _, ok := v["price"].(string); !ok {
				t.Fatalf("price_string record %s", b)
			}
		case pricerecord.PriceNegative:
			if !isNum || price >= 0 {
				t.Fatalf("price_negative record %s", b)
			}
		case pricerecord.PriceMissing, pricerecord.PriceNull:
			if v["price"] != nil {
				t.Fatalf("%v record %s", p.kind, b)
			}
		case pricerecord.CommodityMissing:
			if _, ok := v["commodity"]; ok {
				t.Fatalf("commodity_missing record %s", b)
			}
		case pricerecord.TSMissing:
			if _, ok := v["ts"]; ok {
				t.Fatalf("ts_missing record %s", b)
			}
		case pricerecord.TSNotATime:
			if ts != "yesterday" {
				t.Fatalf("ts_not_a_time record %s", b)
			}
		}
	}
	for k := pricerecord.Valid; k <= pricerecord.PriceNull; k++ {
		if !seen[k] {
			t.Errorf("no record of kind %d in 20,000", k)
		}
	}
}
