package crosslang_test

import (
	"context"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// The probe modules of sdk/{c,rust,assemblyscript}/testdata/probe.*, built by make wasm-guests
// (c_batch is the C probe through the SDK's per-batch entry point).
var probeLanguages = []string{"c", "c_batch", "rust", "assemblyscript"}

// exampleLanguages are the SDKs with a positive_amount example.
var exampleLanguages = []string{"c", "rust", "assemblyscript"}

func probePath(lang string) string {
	return filepath.Join("..", "..", "..", "build", "wasm", "sdktest", "probe_"+lang+".wasm")
}

// needBuilt skips (or, under CI=true, fails) when make wasm-guests has not built path.
func needBuilt(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: make wasm-guests builds it (make test does so first)", path)
		}
		t.Skipf("%s is missing: run make wasm-guests", path)
	}
}

// TestSDKConformance runs the same command records through the probe module of each SDK and
// checks every disposition the ABI offers: pass, drop, reject, last-call-wins, emits on two ports,
// explicit and null keys, explicit and inherited time, empty and 100 kB values, reading the key,
// time and headers. The three SDKs must agree exactly, and with the expectations below.
func TestSDKConformance(t *testing.T) {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "..", "..", "build", "wasm-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	at := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	hdrs := []connector.Header{{Key: "h1", Value: []byte("v1")}, {Key: "h2", Value: []byte("")}, {Key: "h1", Value: []byte("again")}}
	cmds := []string{"pass", "drop", "reject", "undo", "emit", "key", "nullkey", "empty", "big", "time", "keyecho", "headers", "what"}
	var recs []connector.Record
	for _, c := range cmds {
		recs = append(recs, connector.Record{Key: []byte("kk"), Value: []byte(c), Headers: hdrs, Time: at})
	}
	recs = append(recs, connector.Record{Value: []byte("keyecho")}) // null key, no time

	type emitted struct {
		Input       int
		Port, Key   string
		KeyNil      bool
		Value       string
		Millis      int64
		HeaderCount int
	}
	type outcome struct {
		Actions  []transform.Action
		Emitted  []emitted
		Rejected []transform.Rejected
	}
	results := map[string]outcome{}
	for _, lang := range probeLanguages {
		p := probePath(lang)
		needBuilt(t, p)
		m, err := h.Load(ctx, p, "")
		if err != nil {
			t.Fatalf("%s: %v", lang, err)
		}
		if _, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "probe", Config: []byte(`{"fail":true}`)}); err == nil ||
			!strings.Contains(err.Error(), "probe: fail requested") {
			t.Errorf("%s: init with a failing config: %v, want the guest's message", lang, err)
		}
		for _, batch := range []int{len(recs), 1} {
			st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "probe", Instances: 1})
			if err != nil {
				t.Fatalf("%s: %v", lang, err)
			}
			var o outcome
			for start := 0; start < len(recs); start += batch {
				end := min(start+batch, len(recs))
				res, err := st.Process(ctx, recs[start:end])
				if err != nil {
					t.Fatalf("%s: %v", lang, err)
				}
				o.Actions = append(o.Actions, res.Actions...)
				for _, e := range res.Emitted {
					port := e.Port
					if port == "" {
						port = abi.DefaultPort
					}
					o.Emitted = append(o.Emitted, emitted{Input: start + e.Input, Port: port, Key: string(e.Record.Key),
						KeyNil: e.Record.Key == nil, Value: string(e.Record.Value), Millis: e.Record.Time.UnixMilli(),
						HeaderCount: len(e.Record.Headers)})
				}
				for _, r := range res.Rejected {
					r.Input += start
					o.Rejected = append(o.Rejected, r)
				}
			}
			st.Close(ctx)
			if s := st.Stats(); s.Traps+s.GuestErrors+s.InvalidResults+s.Poison != 0 {
				t.Fatalf("%s: the host had to step in: %+v", lang, s)
			}
			if prev, ok := results[lang]; ok && !reflect.DeepEqual(prev, o) {
				t.Errorf("%s: batch of 1 differs from one frame:\n%+v\n%+v", lang, o, prev)
			}
			results[lang] = o
		}
	}

	ms := at.UnixMilli()
	big := strings.Repeat("x", 100000)
	want := outcome{
		Actions: []transform.Action{transform.Pass, transform.Drop, transform.Reject, transform.Pass, transform.Emit,
			transform.Emit, transform.Emit, transform.Emit, transform.Emit, transform.Emit, transform.Emit, transform.Emit,
			transform.Reject, transform.Emit},
		Emitted: []emitted{
			{Input: 4, Port: "main", Key: "kk", Value: "one", Millis: ms, HeaderCount: 3},
			{Input: 4, Port: "alerts", Key: "kk", Value: "two", Millis: ms, HeaderCount: 3},
			{Input: 5, Port: "main", Key: "k1", Value: "keyed", Millis: 1234, HeaderCount: 3},
			{Input: 6, Port: "main", KeyNil: true, Value: "nokey", Millis: ms, HeaderCount: 3},
			{Input: 7, Port: "main", Key: "kk", Value: "", Millis: ms, HeaderCount: 3},
			{Input: 8, Port: "main", Key: "kk", Value: big, Millis: ms, HeaderCount: 3},
			{Input: 9, Port: "main", Key: "kk", Value: strconv.FormatInt(ms, 10), Millis: ms, HeaderCount: 3},
			{Input: 10, Port: "main", Key: "kk", Value: "kk", Millis: ms, HeaderCount: 3},
			{Input: 11, Port: "main", Key: "kk", Value: "h1=v1", Millis: ms, HeaderCount: 3},
			{Input: 11, Port: "main", Key: "kk", Value: "h2=", Millis: ms, HeaderCount: 3},
			{Input: 11, Port: "main", Key: "kk", Value: "h1=again", Millis: ms, HeaderCount: 3},
			{Input: 13, Port: "main", KeyNil: true, Value: "<null>", Millis: recs[13].Time.UnixMilli()},
		},
		Rejected: []transform.Rejected{{Input: 2, Code: 7, Reason: "probe reject"}, {Input: 12, Code: 8, Reason: "unknown command"}},
	}
	for _, lang := range probeLanguages {
		got := results[lang]
		if !reflect.DeepEqual(got.Actions, want.Actions) {
			t.Errorf("%s actions %v, want %v", lang, got.Actions, want.Actions)
		}
		if !reflect.DeepEqual(got.Rejected, want.Rejected) {
			t.Errorf("%s rejected %+v, want %+v", lang, got.Rejected, want.Rejected)
		}
		if len(got.Emitted) != len(want.Emitted) {
			t.Errorf("%s emitted %d records, want %d: %+v", lang, len(got.Emitted), len(want.Emitted), got.Emitted)
			continue
		}
		for i := range want.Emitted {
			if g, w := got.Emitted[i], want.Emitted[i]; !reflect.DeepEqual(g, w) {
				if len(g.Value) > 40 {
					g.Value = g.Value[:40] + "..."
				}
				if len(w.Value) > 40 {
					w.Value = w.Value[:40] + "..."
				}
				t.Errorf("%s emitted[%d] = %+v, want %+v", lang, i, g, w)
			}
		}
	}
}

// TestExamples runs the positive_amount example of each SDK (examples/transform-*) on its
// sample input: the three must agree, and decide each line as the example's README says.
func TestExamples(t *testing.T) {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "..", "..", "build", "wasm-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	want := []transform.Rejected{
		{Input: 1, Code: 3, Reason: "amount: must be a number greater than 0"},
		{Input: 2, Code: 2, Reason: "amount: missing"},
		{Input: 3, Code: 3, Reason: "amount: must be a number greater than 0"},
		{Input: 4, Code: 1, Reason: "not a JSON object"},
	}
	for _, lang := range exampleLanguages {
		t.Run(lang, func(t *testing.T) {
			p := filepath.Join("..", "..", "..", "build", "wasm", "examples", "positive_amount_"+lang+".wasm")
			needBuilt(t, p)
			in, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "transform-"+lang, "input.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			var recs []connector.Record
			for _, l := range strings.Split(strings.TrimSuffix(string(in), "\n"), "\n") {
				recs = append(recs, connector.Record{Value: []byte(l)})
			}
			m, err := h.Load(ctx, p, "")
			if err != nil {
				t.Fatal(err)
			}
			st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "example", Instances: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close(ctx)
			res, err := st.Process(ctx, recs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Rejected, want) || len(res.Actions) != 6 || res.Actions[0] != transform.Pass || res.Actions[5] != transform.Pass {
				t.Fatalf("actions %v rejected %+v, want lines 1 and 6 passed and rejected %+v", res.Actions, res.Rejected, want)
			}
		})
	}
}

// TestSDKNumbers converts thousands of JSON number tokens with each SDK's number parser (the probe
// command "num:TOKEN" emits the bits of the result) and compares the bits with strconv.ParseFloat:
// exact decimal midpoints between neighbouring doubles and their one-ulp-of-a-digit neighbours,
// subnormals, overflow, long digit strings, and random spellings.
func TestSDKNumbers(t *testing.T) {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "..", "..", "build", "wasm-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	rng := rand.New(rand.NewSource(7))
	var tokens []string
	for _, b := range []float64{1e9, 250.5, 0, 1, 0.1, math.MaxFloat64, math.SmallestNonzeroFloat64, 0x1p-1022, 123456.789} {
		tokens = append(tokens, pricesAround(rng, b)...)
	}
	for i := 0; i < 1500; i++ {
		x := math.Float64frombits(rng.Uint64() >> 1)
		if math.IsInf(x, 0) || math.IsNaN(x) {
			continue
		}
		tokens = append(tokens, pricesAround(rand.New(rand.NewSource(int64(i))), x)[:4]...)
	}
	var recs []connector.Record
	for _, tok := range tokens {
		recs = append(recs, connector.Record{Value: []byte("num:" + tok)})
	}
	for _, lang := range exampleLanguages { // one number parser per SDK
		t.Run(lang, func(t *testing.T) {
			p := probePath(lang)
			needBuilt(t, p)
			m, err := h.Load(ctx, p, "")
			if err != nil {
				t.Fatal(err)
			}
			st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "numbers", Instances: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close(ctx)
			bad := 0
			for start := 0; start < len(recs); start += 1024 {
				end := min(start+1024, len(recs))
				res, err := st.Process(ctx, recs[start:end])
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Emitted) != end-start {
					t.Fatalf("%d outputs for %d numbers: %+v", len(res.Emitted), end-start, res.Rejected)
				}
				for _, e := range res.Emitted {
					tok := tokens[start+e.Input]
					want, _ := strconv.ParseFloat(tok, 64)
					got, err := strconv.ParseUint(string(e.Record.Value), 16, 64)
					if err != nil || got != math.Float64bits(want) {
						if bad++; bad <= 5 {
							t.Errorf("%s: bits %s (%v), strconv %016x (%v)", tok, e.Record.Value,
								math.Float64frombits(got), math.Float64bits(want), want)
						}
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d numbers differ from strconv", bad, len(tokens))
			}
		})
	}
}

// TestSDKBatchError fails a batch from the guest (C's per-batch callback returning an error, Rust's
// Transform::end_batch): the host must retry and bisect, isolate exactly the failing record with
// the guest error code and the guest's message, and pass the others.
func TestSDKBatchError(t *testing.T) {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "..", "..", "build", "wasm-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	var recs []connector.Record
	for i := 0; i < 10; i++ {
		v := "pass"
		if i == 6 {
			v = "failbatch"
		}
		recs = append(recs, connector.Record{Value: []byte(v)})
	}
	for _, lang := range []string{"c_batch", "rust"} {
		t.Run(lang, func(t *testing.T) {
			p := probePath(lang)
			needBuilt(t, p)
			m, err := h.Load(ctx, p, "")
			if err != nil {
				t.Fatal(err)
			}
			st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "probe", Instances: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close(ctx)
			res, err := st.Process(ctx, recs)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rejected) != 1 || res.Rejected[0].Input != 6 || res.Rejected[0].Code != wasmhost.CodeGuestError ||
				!strings.Contains(res.Rejected[0].Reason, "probe: batch failed") {
				t.Fatalf("rejected %+v, want only input 6 with code %#x and the guest's message", res.Rejected, wasmhost.CodeGuestError)
			}
			for i, a := range res.Actions {
				if i != 6 && a != transform.Pass {
					t.Fatalf("input %d: %v, want pass", i, a)
				}
			}
		})
	}
}
