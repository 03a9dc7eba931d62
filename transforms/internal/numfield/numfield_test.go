package numfield

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/aggregate"
)

func TestNumber(t *testing.T) {
	f, err := New("quote.bid")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		value  string
		want   float64
		code   aggregate.Code
		reason string
	}{
		{`{"quote":{"bid":12.5}}`, 12.5, 0, ""},
		{` {"quote":{"bid":"-3e2"},"x":1} `, -300, 0, ""},
		{`{"quote":{"b\u0069d":7}}`, 7, 0, ""},
		{`{"quote":{"bid":1e400}}`, 0, 3, "quote.bid: out of the range of a double"},
		{`{"quote":{"bid":"NaN"}}`, 0, 2, "quote.bid: must be a number or a string holding one"},
		{`{"quote":{"bid":" 1"}}`, 0, 2, "quote.bid: must be a number or a string holding one"},
		{`{"quote":{"bid":"0x10"}}`, 0, 2, "quote.bid: must be a number or a string holding one"},
		{`{"quote":{"bid":true}}`, 0, 2, "quote.bid: must be a number or a string holding one"},
		{`{"quote":{"bid":null}}`, 0, 2, "quote.bid: must be a number or a string holding one"},
		{`{"quote":{"bid":1,"bid":2}}`, 0, 2, "quote.bid: duplicate key"},
		{`{"quote":{"ask":1}}`, 0, 2, "quote.bid: missing"},
		{`{"quote":[{"bid":1}]}`, 0, 2, "quote.bid: missing"},
		{`{"bid":1}`, 0, 2, "quote.bid: missing"},
		{`[1]`, 0, 1, "not a JSON object"},
		{`{"quote":`, 0, 1, "not valid JSON"},
		{"{\"quote\":{\"bid\":\"\xff\"}}", 0, 1, "not valid JSON"},
	}
	for _, tc := range tests {
		got, err := f.Number([]byte(tc.value))
		if tc.reason == "" {
			if err != nil || got != tc.want {
				t.Errorf("%s: %v, %v; want %v", tc.value, got, err, tc.want)
			}
			continue
		}
		var re *aggregate.RejectError
		if !errors.As(err, &re) || re.Code != tc.code || re.Reason != tc.reason {
			t.Errorf("%s: %v; want code %d %q", tc.value, err, tc.code, tc.reason)
		}
	}
	for _, bad := range []string{"", ".", "a..b", "a."} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

func TestIsNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "12": true, "1.5": true, "1e5": true, "1E+5": true, "-2.5e-3": true,
		"": false, "-": false, "01": false, "1.": false, ".5": false, "+1": false, "1e": false, "1e+": false,
		"Inf": false, "NaN": false, "1_000": false, "0x1p3": false, "1 ": false,
	} {
		if IsNumber(s) != want {
			t.Errorf("IsNumber(%q) = %v", s, !want)
		}
	}
}

func TestAppend(t *testing.T) {
	var b []byte
	for _, v := range []float64{1e6, 0.1, -2, math.Inf(1), math.NaN(), 1.0 / 3} {
		b = append(AppendFloat(b, v), ' ')
	}
	if got := string(b); got != "1e+06 0.1 -2 null null 0.3333333333333333 " {
		t.Fatalf("%q", got)
	}
	b = AppendKey(nil, &aggregate.Slot{Key: []byte("co\"rn\xff")})
	b = AppendKey(append(b, ' '), &aggregate.Slot{KeyNull: true})
	if got := string(b); got != `"co\"rn\ufffd" null` {
		t.Fatalf("%q", got)
	}
	if !strings.HasPrefix(ErrNotJSON.Error(), "not valid") {
		t.Fatal(ErrNotJSON)
	}
}
