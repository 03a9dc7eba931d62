package main

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		config     string
		wantMax    float64
		wantReason string
		wantErr    string
	}{
		{``, 1e9, "price: must be at most 1000000000", ""},
		{`null`, 1e9, "price: must be at most 1000000000", ""},
		{` {} `, 1e9, "price: must be at most 1000000000", ""},
		{`{"max_price": 1e9}`, 1e9, "price: must be at most 1e9", ""},
		{`{"max_price":250.50}`, 250.5, "price: must be at most 250.50", ""},
		{`{"max_price":1e+09}`, 1e9, "price: must be at most 1e+09", ""},
		{`{"max_price":"5"}`, 0, "", "must be a number"},
		{`{"max_price":0}`, 0, "", "greater than 0"},
		{`{"max_price":-1}`, 0, "", "greater than 0"},
		{`{"max_price":1,"min_price":0}`, 0, "", "unknown key"},
		{`[1]`, 0, "", "JSON object"},
		{`{"max_price":1`, 0, "", "not valid JSON"},
		{`{"max_price":1} x`, 0, "", "not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.config, func(t *testing.T) {
			l, err := parseConfig([]byte(tc.config))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.max != tc.wantMax || l.maxReason != tc.wantReason {
				t.Fatalf("got (%v, %q), want (%v, %q)", l.max, l.maxReason, tc.wantMax, tc.wantReason)
			}
		})
	}
}

// The hot path allocates nothing, for valid and rejected records alike.
func TestCheckDoesNotAllocate(t *testing.T) {
	l := defaultLimits()
	recs := [][]byte{
		[]byte(`{"commodity":"gold","price":1923.45,"ts":"2024-01-15T10:30:00.123Z"}`),
		[]byte(`{"commodity":"gold","price":1923.45,"ts":1700000000000}`),
		[]byte(`{"c\u006fmmodity":"gold","price":-1,"ts":1}`),
		[]byte(`not json`),
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, r := range recs {
			check(r, &l)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per run, want 0", allocs)
	}
}

func BenchmarkCheck(b *testing.B) {
	l := defaultLimits()
	rec := []byte(`{"commodity":"gold","price":1923.45,"ts":"2024-01-15T10:30:00Z","venue":"LBMA","unit":"oz"}`)
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		check(rec, &l)
	}
}

// The fast path of toFloat must agree with strconv.ParseFloat bit for bit.
func TestToFloatMatchesStrconv(t *testing.T) {
	toks := []string{"0", "-0", "0.0", "-0.0", "1", "1923.45", "0.1", "0.000001", "123456789012345", "1234567890123456",
		"0.0000000000000000000001", "0.00000000000000000000001", "999999999.9999999", "1000000000.0000001",
		"1000000000.00000005", "250.50000000000003", "5e-324", "1e3", "12.5e-1", "1E9", "-5", "3.141592653589793",
		"9007199254740993", "0.30000000000000004", "100000000000000000000000", "00", "1.5", "-1923.45"}
	for i := 0; i < 2000; i++ {
		toks = append(toks, strconv.FormatFloat(float64(i)*1.37+0.001*float64(i%7), 'f', i%12, 64))
	}
	for _, tok := range toks {
		want, _ := strconv.ParseFloat(tok, 64)
		if got := toFloat([]byte(tok)); math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("toFloat(%s) = %v, strconv says %v", tok, got, want)
		}
	}
}
