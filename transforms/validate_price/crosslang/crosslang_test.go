package crosslang_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/transforms/internal/vectors"
)

// languages are the four implementations; all must be present.
var languages = []string{"go", "rust", "c", "assemblyscript"}

const testdata = "../testdata"

func modulePath(lang string) string {
	return filepath.Join("..", lang, "validate_price.wasm")
}

// fixture is one loaded module per language on a shared host.
type fixture struct {
	h       *wasmhost.Host
	modules map[string]*wasmhost.Module
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "..", "..", "build", "wasm-cache")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	f := &fixture{h: h, modules: map[string]*wasmhost.Module{}}
	for _, lang := range languages {
		p := modulePath(lang)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: the %s module is missing (build it with make wasm-go wasm-guests): %v", p, lang, err)
		}
		m, err := h.Load(ctx, p, "")
		if err != nil {
			t.Fatalf("load %s: %v", p, err)
		}
		if meta := m.Meta(); meta.Name != "validate_price" || meta.ABI != "1.0" {
			t.Fatalf("%s: meta %+v, want name validate_price and abi 1.0", p, meta)
		}
		f.modules[lang] = m
	}
	return f
}

// run passes values through a fresh stage of lang's module in frames of batch records.
func (f *fixture) run(t testing.TB, lang string, config []byte, values [][]byte, batch int) []vectors.Outcome {
	t.Helper()
	ctx := context.Background()
	st, err := f.h.NewStage(ctx, f.modules[lang], wasmhost.StageConfig{Name: "validate_price", Config: config, Instances: 1})
	if err != nil {
		t.Fatalf("%s: new stage: %v", lang, err)
	}
	defer st.Close(ctx)
	out, err := vectors.Stage(ctx, st, values, batch)
	if err != nil {
		t.Fatalf("%s: process: %v", lang, err)
	}
	if s := st.Stats(); s.Traps+s.Timeouts+s.MemoryFaults+s.GuestErrors+s.InvalidResults+s.Poison != 0 {
		t.Fatalf("%s: the host had to step in: %+v", lang, s)
	}
	return out
}

// TestSharedVectors runs every case of ../testdata through the four modules, in one frame and
// in frames of 1 and 7 records: each language's rendered output must equal the expected files
// (kept byte for byte, rejects by line, code, reason and value) and the other languages' output
// byte for byte.
func TestSharedVectors(t *testing.T) {
	f := newFixture(t)
	cases, err := vectors.Cases(testdata)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 2 {
		t.Fatalf("%d vector cases in %s, want the default case and max250", len(cases), testdata)
	}
	for _, c := range cases {
		name := c.Name
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			var ref map[string][]byte
			for _, lang := range languages {
				for _, batch := range []int{len(c.Input), 7, 1} {
					got, err := vectors.Render(c, f.run(t, lang, c.Config, c.Input, batch))
					if err != nil {
						t.Fatalf("%s: %v", lang, err)
					}
					if ref == nil {
						ref = got
						checkExpected(t, c, got)
						continue
					}
					for file, want := range ref {
						if !bytes.Equal(got[file], want) {
							t.Errorf("%s (batch %d) %s differs from %s:\n--- %s\n%s--- %s\n%s",
								lang, batch, file, languages[0], lang, got[file], languages[0], want)
						}
					}
				}
			}
		})
	}
}

// checkExpected compares rendered files with the expected files of the case.
func checkExpected(t *testing.T, c vectors.Case, got map[string][]byte) {
	t.Helper()
	suffix := ""
	if c.Name != "" {
		suffix = "_" + c.Name
	}
	kept, err := os.ReadFile(filepath.Join(testdata, "expected_kept"+suffix+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got["expected_kept"+suffix+".jsonl"], kept) {
		t.Errorf("kept output differs from expected_kept%s.jsonl:\n--- got\n%s--- want\n%s", suffix, got["expected_kept"+suffix+".jsonl"], kept)
	}
	want, err := os.ReadFile(filepath.Join(testdata, "expected_rejects"+suffix+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	gr, wr := rejectLines(t, got["expected_rejects"+suffix+".jsonl"]), rejectLines(t, want)
	if !reflect.DeepEqual(gr, wr) {
		t.Errorf("rejects differ from expected_rejects%s.jsonl:\n--- got\n%s--- want\n%s", suffix, got["expected_rejects"+suffix+".jsonl"], want)
	}
	if len(wr) == 0 || len(kept) == 0 {
		t.Fatalf("case %q expects %d rejects and %d kept bytes: the vectors check nothing", c.Name, len(wr), len(kept))
	}
}

func rejectLines(t *testing.T, b []byte) []vectors.RejectLine {
	t.Helper()
	var out []vectors.RejectLine
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var r vectors.RejectLine
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("reject line %s: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// TestGeneratedInputs feeds the four modules generated records (hard-to-round prices around the
// configured bound and zero, timestamps at calendar edges, escaped names) and random byte-level
// mutations of the shared vectors, under several configs: every language must decide every
// record exactly as the others do. The Go module, whose number conversion is strconv's, is the
// reference; the price decisions are also checked against strconv directly.
func TestGeneratedInputs(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewSource(3))
	configs := []struct {
		json string
		max  float64
	}{
		{`{}`, 1e9},
		{`{"max_price":250.5}`, 250.5},
		{`{"max_price":1.7976931348623157e308}`, math.MaxFloat64},
		{`{"max_price":5e-324}`, 5e-324},
		{`{"max_price":0.1}`, 0.1},
	}
	cases, err := vectors.Cases(testdata)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range configs {
		t.Run(cfg.json, func(t *testing.T) {
			prices := pricesAround(rng, cfg.max)
			prices = append(prices, pricesAround(rng, 0)...)
			var values [][]byte
			for i, p := range prices {
				values = append(values, []byte(fmt.Sprintf(`{"commodity":"c%d","price":%s,"ts":%s}`, i, p, timestamp(rng))))
			}
			nPrices := len(values)
			for i := 0; i < 3000; i++ {
				values = append(values, vectors.Mutate(rng, cases[0].Input[rng.Intn(len(cases[0].Input))]))
			}
			ref := f.run(t, "go", []byte(cfg.json), values, 512)
			passed, above := 0, 0
			for i, p := range prices {
				x, _ := strconv.ParseFloat(p, 64)
				o := ref[i]
				tooBig := o.Action == vectors.Reject && strings.HasPrefix(o.Reason, "price: must be at most ")
				tooSmall := o.Action == vectors.Reject && o.Reason == "price: must be greater than 0"
				if tooBig != (x > 0 && !(x <= cfg.max)) || tooSmall != !(x > 0) {
					t.Fatalf("go module on price %s (%v) with max %v: %+v", p, x, cfg.max, o)
				}
				if tooBig {
					above++
				} else if !tooSmall {
					passed++
				}
			}
			if passed == 0 || (above == 0 && cfg.max < math.MaxFloat64) {
				t.Fatalf("generated prices: %d within the bound, %d above it: the cases do not straddle the bound", passed, above)
			}
			for _, lang := range languages[1:] {
				got := f.run(t, lang, []byte(cfg.json), values, 512)
				bad := 0
				for i := range values {
					if !reflect.DeepEqual(got[i], ref[i]) {
						if bad++; bad <= 5 {
							t.Errorf("%s on %q: %+v, go: %+v", lang, values[i], got[i], ref[i])
						}
					}
				}
				if bad > 0 {
					t.Errorf("%s differs from go on %d of %d inputs (%d generated prices)", lang, bad, len(values), nPrices)
				}
			}
		})
	}
}

// pricesAround returns number tokens at and around bound: the exact decimal midpoints between
// bound and its neighbouring doubles, those midpoints nudged by one digit in the 40th place,
// long-digit and exponent spellings, and random values.
func pricesAround(rng *rand.Rand, bound float64) []string {
	var out []string
	exact := func(x *big.Float) string {
		s := x.Text('f', 1100)
		if strings.Contains(s, ".") {
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
		return s
	}
	b := new(big.Float).SetPrec(2000).SetFloat64(bound)
	for _, nb := range []float64{math.Nextafter(bound, math.Inf(1)), math.Nextafter(bound, math.Inf(-1))} {
		if math.IsInf(nb, 0) || nb < 0 {
			continue
		}
		mid := new(big.Float).SetPrec(2000).Add(b, new(big.Float).SetPrec(2000).SetFloat64(nb))
		mid.Quo(mid, big.NewFloat(2).SetPrec(2000))
		m := exact(mid)
		out = append(out, m)
		tiny := new(big.Float).SetPrec(2000).SetMantExp(big.NewFloat(1), -1200)
		out = append(out, exact(new(big.Float).SetPrec(2000).Add(mid, tiny)))
		if mid.Sign() > 0 {
			out = append(out, exact(new(big.Float).SetPrec(2000).Sub(mid, tiny)))
		}
		out = append(out, strconv.FormatFloat(nb, 'g', -1, 64), strconv.FormatFloat(nb, 'e', 30, 64))
	}
	if bound > 0 {
		f := strconv.FormatFloat(bound, 'f', -1, 64)
		if !strings.Contains(f, ".") {
			f += "."
		}
		out = append(out, strconv.FormatFloat(bound, 'g', -1, 64), strconv.FormatFloat(bound, 'e', 25, 64),
			f+"000000000000000000000001")
	}
	for i := 0; i < 300; i++ {
		var s string
		switch i % 4 {
		case 0:
			s = strconv.FormatFloat(bound*(0.5+rng.Float64()), 'g', 1+rng.Intn(17), 64)
		case 1: // many digits
			d := make([]byte, 1+rng.Intn(40))
			for j := range d {
				d[j] = byte('0' + rng.Intn(10))
			}
			d[0] = byte('1' + rng.Intn(9))
			s = string(d)
			if k := rng.Intn(len(d) + 1); k > 0 && k < len(d) {
				s = s[:k] + "." + s[k:]
			}
		case 2: // exponents across the whole range
			s = fmt.Sprintf("%d.%de%d", 1+rng.Intn(9), rng.Intn(1000000), rng.Intn(700)-350)
		default:
			s = strconv.FormatFloat(math.Float64frombits(rng.Uint64()>>1), 'e', rng.Intn(20), 64)
		}
		if strings.Contains(s, "Inf") || strings.Contains(s, "NaN") {
			s = "1e308"
		}
		if rng.Intn(5) == 0 {
			s = "-" + s
		}
		out = append(out, s)
	}
	return out
}

// timestamp returns a ts value: valid and invalid RFC 3339 strings near calendar edges, epoch
// milliseconds near the bounds, and other JSON values.
func timestamp(rng *rand.Rand) string {
	switch rng.Intn(4) {
	case 0:
		return strconv.FormatInt(rng.Int63n(253402300800010)-5, 10)
	case 1:
		year := []int{0, 1900, 2000, 2023, 2024, 2100, 2400, 9999}[rng.Intn(8)]
		frac := []string{"", ".1", ".123456789", ".1234567890", "."}[rng.Intn(5)]
		zone := []string{"Z", "z", "+00:00", "-23:59", "+24:00", "+05:60", "+0500", ""}[rng.Intn(8)]
		return fmt.Sprintf(`"%04d-%02d-%02d%c%02d:%02d:%02d%s%s"`, year, rng.Intn(14), rng.Intn(33),
			"Tt "[rng.Intn(3)], rng.Intn(25), rng.Intn(61), rng.Intn(61), frac, zone)
	case 2:
		return `"2024-02-29T23:59:59.999\u005a"`
	default:
		return []string{"1e3", "1.0", "-0", "null", `"1700000000000"`, "[1]", "0"}[rng.Intn(7)]
	}
}

// TestConfigs checks SPEC section 1 through the host: which configs start a stage, in every
// language, and that the configured bound and its MAXTEXT reach the reject reason verbatim.
func TestConfigs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		config string
		ok     bool
		langs  []string // nil: all four
	}{
		{``, true, nil},
		{`{}`, true, nil},
		{` {"max_price" : 1e+09 } `, true, nil},
		{`{"max_price":1,"max_price":2}`, true, nil},
		{`{"max_price":0}`, false, nil},
		{`{"max_price":-1}`, false, nil},
		{`{"max_price":1e-400}`, false, nil},
		{`{"max_price":"1"}`, false, nil},
		{`{"max_price":null}`, false, nil},
		{`{"other":1}`, false, nil},
		{`[1]`, false, nil},
		// SPEC: max_price must be finite after conversion.
		{`{"max_price":1e400}`, false, nil},
	}
	for _, c := range cases {
		langs := c.langs
		if langs == nil {
			langs = languages
		}
		for _, lang := range langs {
			st, err := f.h.NewStage(ctx, f.modules[lang], wasmhost.StageConfig{Name: "v", Config: []byte(c.config), Instances: 1})
			if (err == nil) != c.ok {
				t.Errorf("%s with config %q: err = %v, want ok = %v", lang, c.config, err, c.ok)
			}
			if st != nil {
				st.Close(ctx)
			}
		}
	}
	in := [][]byte{[]byte(`{"commodity":"x","price":1000000001,"ts":1}`), []byte(`{"commodity":"x","price":7,"ts":1}`)}
	for _, c := range []struct{ config, reason string }{
		{` {"max_price" : 1e+09 } `, "price: must be at most 1e+09"},
		{`{"max_price":6.50}`, "price: must be at most 6.50"},
		{`{"max_price":1,"max_price":250.5}`, "price: must be at most 250.5"},
	} {
		for _, lang := range languages {
			out := f.run(t, lang, []byte(c.config), in, 2)
			if out[0].Action != vectors.Reject || out[0].Reason != c.reason || out[0].Code != 3 {
				t.Errorf("%s with config %s: %+v, want code 3 %q", lang, c.config, out[0], c.reason)
			}
		}
	}
}
