package iceberg

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

func TestParseInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		bits int
		want int64
		ok   bool
	}{
		{"0", 64, 0, true},
		{"-12", 32, -12, true},
		{"2147483647", 32, math.MaxInt32, true},
		{"2147483648", 32, 0, false},
		{"-2147483648", 32, math.MinInt32, true},
		{"9223372036854775807", 64, math.MaxInt64, true},
		{"-9223372036854775808", 64, math.MinInt64, true},
		{"9223372036854775808", 64, 0, false},
		{"99999999999999999999999", 64, 0, false},
		{"1.5", 64, 0, false},
		{"1e3", 64, 0, false},
		{"01", 64, 0, false},
		{"-", 64, 0, false},
	} {
		got, err := parseInt([]byte(tc.in), tc.bits)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseInt(%q, %d) = %d, %v; want %d, ok=%v", tc.in, tc.bits, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseFloat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		bits int
		want float64
		ok   bool
	}{
		{"1.5", 64, 1.5, true},
		{"-0.25e2", 64, -25, true},
		{"3", 32, 3, true},
		{"1e39", 32, 0, false},
		{"1e309", 64, 0, false},
		{".5", 64, 0, false},
		{"1.", 64, 0, false},
		{"+1", 64, 0, false},
		{"0x10", 64, 0, false},
		{"Inf", 64, 0, false},
	} {
		got, err := parseFloat([]byte(tc.in), tc.bits)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseFloat(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	for _, tc := range []struct {
		in     string
		p, s   int
		want   string // the unscaled value
		errHas string
	}{
		{"12.34", 10, 2, "1234", ""},
		{"12.3", 10, 2, "1230", ""},
		{"12", 10, 2, "1200", ""},
		{"-0.01", 10, 2, "-1", ""},
		{"0", 10, 2, "0", ""},
		{"0.000", 10, 2, "0", ""},
		{"12.340", 10, 2, "1234", ""},
		{"12.345", 10, 2, "", "decimal places"},
		{"1.2e1", 10, 2, "1200", ""},
		{"1234e-2", 10, 2, "1234", ""},
		{"1235e-3", 10, 2, "", "decimal places"},
		{"99999999.99", 10, 2, "9999999999", ""},
		{"100000000", 10, 2, "", "does not fit"},
		{"0000001.5", 3, 1, "", "not a number"},
		{"0.0015e3", 3, 1, "15", ""},
		{"12345678901234567890123456789012345678", 38, 0, "12345678901234567890123456789012345678", ""},
		{"123456789012345678901234567890123456789", 38, 0, "", "does not fit"},
		{"1.5e-400", 10, 2, "", "decimal places"},
		{"1e2000", 10, 2, "", "range"},
		{"abc", 10, 2, "", "not a number"},
	} {
		got, err := parseDecimal([]byte(tc.in), tc.p, tc.s)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("parseDecimal(%q, %d, %d) = %v, %v; want an error with %q", tc.in, tc.p, tc.s, got, err, tc.errHas)
			}
			continue
		}
		want, _ := decimal128.FromString(tc.want, 38, 0)
		if err != nil || got != want {
			t.Errorf("parseDecimal(%q, %d, %d) = %s, %v; want %s", tc.in, tc.p, tc.s, got.BigInt(), err, tc.want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	us := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMicro()
	}
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2026-12-02T15:24:43Z", us("2026-12-02T15:24:43Z"), true},
		{"2026-12-02T15:24:43.123Z", us("2026-12-02T15:24:43.123Z"), true},
		{"2026-12-02T15:24:43.1234567Z", us("2026-12-02T15:24:43.123456Z"), true},
		{"2026-12-02 15:24:43", us("2026-12-02T15:24:43Z"), true},
		{"2026-12-02T15:24:43+02:00", us("2026-12-02T13:24:43Z"), true},
		{"2026-12-02T15:24:43-0130", us("2026-12-02T16:54:43Z"), true},
		{"1969-12-31T23:59:59Z", -1e6, true},
		{"1900-03-01T00:00:00Z", us("1900-03-01T00:00:00Z"), true},
		{"2024-02-29", us("2024-02-29T00:00:00Z"), true},
		{"2026-02-29T00:00:00Z", 0, false},
		{"2026-12-02T25:00:00Z", 0, false},
		{"2026-12-02T15:24:43Q", 0, false},
		{"yesterday", 0, false},
	} {
		got, err := parseTimestamp([]byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseTimestamp(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if d, err := parseDate([]byte("2000-01-01")); err != nil || d != 10957 {
		t.Errorf("parseDate(2000-01-01) = %d, %v; want 10957", d, err)
	}
	if tm, err := parseTime([]byte("13:14:15.5")); err != nil || tm != (13*3600+14*60+15)*1e6+500000 {
		t.Errorf("parseTime(13:14:15.5) = %d, %v", tm, err)
	}
}

func TestParseUUID(t *testing.T) {
	u, err := parseUUID([]byte("123e4567-e89b-12d3-a456-426614174000"))
	if err != nil || u[0] != 0x12 || u[15] != 0x00 || u[6] != 0x12 {
		t.Errorf("parseUUID = %x, %v", u, err)
	}
	for _, bad := range []string{"123e4567e89b-12d3-a456-426614174000x", "zz3e4567-e89b-12d3-a456-426614174000", ""} {
		if _, err := parseUUID([]byte(bad)); err == nil {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	got, err := unescape(nil, []byte(`a\"b\\c\/\n\u00e9\ud83d\ude00`))
	if err != nil || string(got) != "a\"b\\c/\né😀" {
		t.Errorf("unescape = %q, %v", got, err)
	}
	if _, err := unescape(nil, []byte(`\x`)); err == nil {
		t.Error(`unescape(\x) accepted`)
	}
}
