package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/examples/commodity-prices/pricerecord"
)

func testMarket(seed uint64, total int64) *market {
	m := newMarket(marketConfig{seed: seed, rate: 1, malformed: 0.05, outlier: 0.02, total: total,
		start: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), goods: commodities})
	m.advance(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	return m
}

type page struct {
	Data []map[string]any `json:"data"`
	Next *string          `json:"next"`
}

func get(t *testing.T, srv *httptest.Server, path string, into any) int {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode
}

// all pages through /v1/prices with page size n, following next.
func all(t *testing.T, srv *httptest.Server, n int) []map[string]any {
	var out []map[string]any
	next := fmt.Sprintf("/v1/prices?page_size=%d", n)
	for pages := 0; next != ""; pages++ {
		var p page
		if code := get(t, srv, next, &p); code != http.StatusOK {
			t.Fatalf("%s: status %d", next, code)
		}
		if len(p.Data) > n {
			t.Fatalf("%s: %d records on a page of %d", next, len(p.Data), n)
		}
		out = append(out, p.Data...)
		next = ""
		if p.Next != nil {
			next = *p.Next
		}
		if pages > 10000 {
			t.Fatal("pagination does not end")
		}
	}
	return out
}

// TestPagesAreTheSameRecordsWhateverThePageSize: paging with any page size yields every record
// once, in seq order, and the same seed yields the same records.
func TestPagesAreTheSameRecordsWhateverThePageSize(t *testing.T) {
	const total = 2503
	srv := httptest.NewServer(handler(testMarket(3, total)))
	defer srv.Close()
	ref := all(t, srv, 10000)
	if len(ref) != total {
		t.Fatalf("%d records, want %d", len(ref), total)
	}
	for i, r := range ref {
		if int64(r["seq"].(float64)) != int64(i+1) {
			t.Fatalf("record %d has seq %v", i, r["seq"])
		}
	}
	for _, n := range []int{1, 7, 1000, 2503} {
		if got := all(t, srv, n); !reflect.DeepEqual(got, ref) {
			t.Errorf("page size %d gives other records", n)
		}
	}
	again := httptest.NewServer(handler(testMarket(3, total)))
	defer again.Close()
	if !reflect.DeepEqual(all(t, again, 500), ref) {
		t.Error("the same seed gave other records")
	}
	other := httptest.NewServer(handler(testMarket(4, total)))
	defer other.Close()
	if reflect.DeepEqual(all(t, other, 500), ref) {
		t.Error("another seed gave the same records")
	}
	var p page
	get(t, srv, fmt.Sprintf("/v1/prices?since=%d", total), &p)
	if len(p.Data) != 0 || p.Next != nil {
		t.Errorf("after the last record: %d records, next %v", len(p.Data), p.Next)
	}
}

// TestStatsCountWhatWasServed: /v1/stats counts exactly the records the API serves, by what they
// are, and its seqs name them.
func TestStatsCountWhatWasServed(t *testing.T) {
	const total = 20000
	srv := httptest.NewServer(handler(testMarket(9, total)))
	defer srv.Close()
	recs := all(t, srv, 1000)
	var s stats
	get(t, srv, "/v1/stats?seqs=1", &s)
	if !s.Done || s.Produced != total || s.Valid+s.Malformed != total || int64(len(s.MalformedSeqs)) != s.Malformed || int64(len(s.OutlierSeqs)) != s.Outliers {
		t.Fatalf("stats: %+v", s.counts)
	}
	// About 5% malformed and 2% outliers (the outliers not in the warm-up).
	if math.Abs(float64(s.Malformed)/total-0.05) > 0.01 || math.Abs(float64(s.Outliers)/total-0.02) > 0.01 {
		t.Errorf("%d malformed and %d outliers of %d", s.Malformed, s.Outliers, total)
	}
	malformed := map[int64]bool{}
	for _, seq := range s.MalformedSeqs {
		malformed[seq] = true
	}
	var bad int64
	for _, r := range recs {
		seq := int64(r["seq"].(float64))
		price, isNum := r["price"].(float64)
		_, hasCom := r["commodity"].(string)
		ts, _ := r["ts"].(string)
		_, tsErr := time.Parse(time.RFC3339, ts)
		ok := isNum && price > 0 && hasCom && tsErr == nil
		if ok == malformed[seq] {
			t.Errorf("seq %d: %v, malformed per stats: %v", seq, r, malformed[seq])
		}
		if !ok {
			bad++
		}
	}
	if bad != s.Malformed {
		t.Errorf("%d malformed records served, stats say %d", bad, s.Malformed)
	}
	if len(s.MalformedKind) != len(pricerecord.MalformedKinds) {
		t.Errorf("malformed kinds seen: %v", s.MalformedKind)
	}
}

// TestLiveProduction: without backfill, prices come as event time passes, and stop at -total.
func TestLiveProduction(t *testing.T) {
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	m := newMarket(marketConfig{seed: 1, rate: 2, total: 45, start: start, goods: commodities[:3]})
	m.advance(start.Add(time.Second)) // ticks at 0, 0.5 s and 1 s
	if got := m.stats(false); got.Produced != 9 || got.Done {
		t.Fatalf("after 1 s: %+v", got)
	}
	m.advance(start.Add(time.Hour))
	if got := m.stats(false); got.Produced != 45 || !got.Done {
		t.Fatalf("after an hour: %+v", got)
	}
}

func TestBadRequests(t *testing.T) {
	srv := httptest.NewServer(handler(testMarket(1, 10)))
	defer srv.Close()
	for _, path := range []string{"/v1/prices?since=x", "/v1/prices?since=-1", "/v1/prices?page_size=0", "/v1/prices?page_size=10001", "/v1/nothing"} {
		var e map[string]string
		if code := get(t, srv, path, &e); code < 400 || e["error"] == "" {
			t.Errorf("%s: status %d, %v", path, code, e)
		}
	}
	for _, args := range [][]string{{"-rate", "0"}, {"-malformed", "0.9", "-outlier", "0.2"}, {"-total", "-1"}, {"-commodities", "tulips"}, {"-start", "monday"}, {"-speed", "0"}} {
		if err := run(args); err == nil {
			t.Errorf("priceapi %v: no error", args)
		}
	}
}
