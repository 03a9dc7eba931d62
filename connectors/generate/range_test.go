package generate_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// read renders n records of tmpl with a fixed seed and returns their values.
func read(t *testing.T, tmpl string, n int64) []string {
	t.Helper()
	s, err := generate.New(connector.Config{"count": n, "seed": int64(3), "template": tmpl}, connector.Env{})
	if err != nil {
		t.Fatalf("template %q: %v", tmpl, err)
	}
	s.Open(context.Background(), nil)
	recs, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func TestRandIntCoversTheWholeInt64Range(t *testing.T) {
	for _, c := range []struct {
		tmpl   string
		lo, hi int64
	}{
		{"{{rand_int 0 9223372036854775807}}", 0, math.MaxInt64},
		{"{{rand_int -1 9223372036854775807}}", -1, math.MaxInt64},
		{"{{rand_int -9223372036854775808 9223372036854775807}}", math.MinInt64, math.MaxInt64},
		{"{{rand_int -9223372036854775808 -9223372036854775808}}", math.MinInt64, math.MinInt64},
		{"{{rand_int 9223372036854775806 9223372036854775807}}", math.MaxInt64 - 1, math.MaxInt64},
	} {
		seen := map[int64]bool{}
		for _, v := range read(t, c.tmpl, 200) {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < c.lo || n > c.hi {
				t.Fatalf("%s: rendered %q, want an integer in [%d, %d]", c.tmpl, v, c.lo, c.hi)
			}
			seen[n] = true
		}
		span := uint64(c.hi) - uint64(c.lo)
		if span > 1000 && len(seen) < 190 || span <= 1000 && uint64(len(seen)) != span+1 {
			t.Errorf("%s: %d distinct values in 200 draws", c.tmpl, len(seen))
		}
	}
}

func TestRandFloatIsAlwaysAJSONNumber(t *testing.T) {
	for _, tmpl := range []string{
		"{{rand_float -1e308 1e308}}",
		"{{rand_float -1.7976931348623157e308 1.7976931348623157e308}}",
		"{{rand_float 1.7976931348623157e308 1.7976931348623157e308}}",
		"{{rand_float 0 1}}",
	} {
		for _, v := range read(t, tmpl, 100) {
			var f float64
			if err := json.Unmarshal([]byte(v), &f); err != nil {
				t.Fatalf("%s rendered %.40q, not a JSON number: %v", tmpl, v, err)
			}
		}
	}
}

func TestTemplateRefusesNonFiniteAndNonIntegerArguments(t *testing.T) {
	for tmpl, want := range map[string]string{
		"{{rand_float 0 Inf}}":                                 "finite",
		"{{rand_float NaN 1}}":                                 "finite",
		"{{rand_int 0 1e3}}":                                   "",
		"{{rand_int 0 1e300}}":                                 "not an integer",
		"{{rand_int 0 9223372036854775808}}":                   "not an integer",
		"{{rand_string NaN}}":                                  "not an integer",
		"{{rand_string -1}}":                                   "N must be in",
		"{{rand_int 1.5 2}}":                                   "not an integer",
		"{{rand_float 1e309 1e310}}":                           "finite",
		"{{rand_int 9223372036854775807 -1}}":                  "MAX is below MIN",
		"{{rand_float 0x1p-2 -0x1p-2}}":                        "MAX is below MIN",
		"{{rand_string 18446744073709551616}}":                 "not an integer",
		"{{rand_string 9223372036854775807}}":                  "N must be in",
		"{{rand_int -9223372036854775809 0}}":                  "not an integer",
		"{{rand_float -1e308 1e308 and more}}":                 "takes 2 argument(s)",
		"{{rand_int 0x10 0x20}}":                               "not an integer",
		"{{rand_string 0}}":                                    "",
		"{{rand_int -0 +0}}":                                   "",
		"{{rand_float -0 0}}":                                  "",
		"{{rand_int 9223372036854775807 9223372036854775807}}": "",
	} {
		_, err := generate.New(connector.Config{"template": tmpl}, connector.Env{})
		if want == "" {
			if err != nil {
				t.Errorf("template %q: %v, want it accepted", tmpl, err)
			}
			continue
		}
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != "template" || !strings.Contains(err.Error(), want) {
			t.Errorf("template %q: err = %v, want a template ConfigError containing %q", tmpl, err, want)
		}
	}
}

// FuzzTemplate: no template, accepted or not, panics when parsed or rendered, and an accepted
// rand_int/rand_float placeholder renders a JSON number.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		`{"seq":{{seq}},"ts":"{{now}}","value":{{rand_float 0 100}}}`,
		"{{rand_int 0 9223372036854775807}}", "{{rand_int -1 9223372036854775807}}",
		"{{rand_float -1e308 1e308}}", "{{rand_string 3}}", "{{pick a b c}}", "{{now_ms}}{{seq}}",
		"{{rand_string NaN}}", "{{rand_float NaN Inf}}", "{{{{}}}}", "{{rand_int 1e3 1e4}}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		s, err := generate.New(connector.Config{"count": int64(3), "seed": int64(1), "template": tmpl, "key": tmpl}, connector.Env{})
		if err != nil {
			return
		}
		s.Open(context.Background(), nil)
		recs, err := s.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(tmpl, "{{rand_int ") || strings.HasPrefix(tmpl, "{{rand_float ") {
			if i := strings.Index(tmpl, "}}"); i == len(tmpl)-2 {
				for _, r := range recs {
					var n json.Number
					if err := json.Unmarshal(r.Value, &n); err != nil {
						t.Fatalf("%q rendered %q: %v", tmpl, r.Value, err)
					}
				}
			}
		}
	})
}
