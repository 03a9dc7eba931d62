// Package qualityscore_test runs the quality_score module (written in Rust, quality_score.rs,
// built by make wasm-guests into the committed quality_score.wasm) through the WASM host.
package qualityscore_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/transforms/internal/vectors"
)

var update = flag.Bool("update", false, "rewrite testdata/expected_*.jsonl from the module's output")

const wasmPath = "quality_score.wasm"

func load(t *testing.T) (*wasmhost.Host, *wasmhost.Module) {
	t.Helper()
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "..", "build", "wasm-cache")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	if _, err := os.Stat(wasmPath); err != nil {
		t.Fatalf("%v: make wasm-guests builds it", err)
	}
	m, err := h.Load(ctx, wasmPath, "")
	if err != nil {
		t.Fatal(err)
	}
	return h, m
}

func runner(h *wasmhost.Host, m *wasmhost.Module, batch int) vectors.Runner {
	return func(config []byte, values [][]byte) ([]vectors.Outcome, error) {
		ctx := context.Background()
		st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "quality", Config: config, Instances: 1})
		if err != nil {
			return nil, err
		}
		defer st.Close(ctx)
		return vectors.Stage(ctx, st, values, batch)
	}
}

// TestVectors runs testdata through the host, in one frame and in frames of 3 records.
func TestVectors(t *testing.T) {
	h, m := load(t)
	for _, batch := range []int{1 << 20, 3} {
		t.Run(fmt.Sprint("batch ", batch), func(t *testing.T) {
			vectors.Check(t, "testdata", runner(h, m, batch), *update && batch > 3)
		})
	}
}

func TestMeta(t *testing.T) {
	_, m := load(t)
	meta := m.Meta()
	if meta.Name != "quality_score" || meta.ABI != "1.0" || len(meta.Ports) != 1 || meta.Ports[0] != "main" {
		t.Fatalf("meta = %+v", meta)
	}
}

// TestConfigErrors: every bad config fails the stage with a message naming what to fix (the
// host checks the meta's config_schema first; the module checks what the schema cannot say).
func TestConfigErrors(t *testing.T) {
	h, m := load(t)
	for _, tc := range []struct{ config, want string }{
		{`{}`, "/checks: missing"},
		{`{"checks":[]}`, "/checks: must have at least 1 items"},
		{`{"checks":{"field":"a"}}`, "/checks: must be array"},
		{`{"checks":[{"check":"text"}]}`, "/checks/0/field: missing"},
		{`{"checks":[{"field":"a","check":"email"}]}`, "/checks/0/check: must be one of"},
		{`{"checks":[{"field":"a","weight":0}]}`, "/checks/0/weight: must be > 0"},
		{`{"checks":[{"field":"a","check":"text","min":1}]}`, "min and max need check: number"},
		{`{"checks":[{"field":"a","check":"number","min_length":1}]}`, "min_length and max_length need check: text"},
		{`{"checks":[{"field":"a","check":"number","min":5,"max":1}]}`, "min is above max"},
		{`{"checks":[{"field":"a","colour":1}]}`, "/checks/0/colour: not allowed"},
		{`{"checks":[{"field":"a"}],"threshold":2}`, "/threshold: must be <= 1"},
		{`{"checks":[{"field":"a"}],"decimal":";"}`, "/decimal: must be one of"},
		{`{"checks":[{"field":"quality"}]}`, "scores the output field quality"},
		{`{"checks":[{"field":"a"}],"limit":1}`, "/limit: not allowed"},
	} {
		_, err := runner(h, m, 10)([]byte(tc.config), [][]byte{[]byte(`{}`)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %s: error %v, want one containing %q", tc.config, err, tc.want)
		}
	}
}

// TestNumbersInText writes random amounts the way listing sites do and checks the number the
// module writes in their place, for both decimal separators.
func TestNumbersInText(t *testing.T) {
	h, m := load(t)
	rng := rand.New(rand.NewSource(7))
	for _, dec := range []string{".", ","} {
		group := ","
		if dec == "," {
			group = "."
		}
		var values [][]byte
		var want []float64
		for range 2000 {
			cents := rng.Int63n(1_000_000_000)
			whole, frac := cents/100, cents%100
			ws := strconv.FormatInt(whole, 10)
			if rng.Intn(2) == 0 { // group the thousands
				var b strings.Builder
				for i, c := range ws {
					if i > 0 && (len(ws)-i)%3 == 0 {
						b.WriteString([]string{group, "'", " "}[rng.Intn(3)])
					}
					b.WriteRune(c)
				}
				ws = b.String()
			}
			text := ws
			x := float64(whole)
			if frac != 0 || rng.Intn(4) == 0 {
				text += dec + fmt.Sprintf("%02d", frac)
				x = float64(cents) / 100
			}
			text = []string{"€", "CHF ", "", "$"}[rng.Intn(4)] + text + []string{"/month", " per month", "", " m²"}[rng.Intn(4)]
			v, _ := json.Marshal(map[string]string{"amount": text})
			values = append(values, v)
			want = append(want, x)
		}
		cfg := fmt.Sprintf(`{"decimal":%q,"checks":[{"field":"amount","check":"number"}]}`, dec)
		out, err := runner(h, m, 256)([]byte(cfg), values)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Action != vectors.Emit || len(o.Emitted) != 1 {
				t.Fatalf("decimal %s: %s: %+v", dec, values[i], o)
			}
			var got struct {
				Amount  float64 `json:"amount"`
				Quality float64 `json:"quality"`
			}
			if err := json.Unmarshal(o.Emitted[0].Value, &got); err != nil {
				t.Fatalf("decimal %s: %s gave %s: %v", dec, values[i], o.Emitted[0].Value, err)
			}
			if got.Amount != want[i] || got.Quality != 1 {
				t.Fatalf("decimal %s: %s gave %s, want amount %v and quality 1", dec, values[i], o.Emitted[0].Value, want[i])
			}
		}
	}
}

// TestMemberOrder: the same record with its members in any order (and an existing output field
// anywhere) gives the same fields, numbers converted, and the same score.
func TestMemberOrder(t *testing.T) {
	h, m := load(t)
	cfg, err := os.ReadFile(filepath.Join("testdata", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	members := []string{`"id":"L1"`, `"title":"Bright flat near the park"`, `"price":"€1,250/month"`, `"city":"Lyon"`,
		`"rooms":"3 rooms"`, `"area":null`, `"email":"x"`, `"quality":"old"`, `"other":{"price":"1"}`}
	want := map[string]any{"id": "L1", "title": "Bright flat near the park", "price": 1250.0, "city": "Lyon",
		"rooms": 3.0, "area": nil, "email": "x", "quality": 0.9, "other": map[string]any{"price": "1"}}
	rng := rand.New(rand.NewSource(11))
	var values [][]byte
	for range 300 {
		n := 7 + rng.Intn(3) // with or without the trailing members
		perm := rng.Perm(len(members))[:n]
		var parts []string
		for _, i := range perm {
			parts = append(parts, members[i])
		}
		values = append(values, []byte("{"+strings.Join(parts, ",")+"}"))
	}
	out, err := runner(h, m, 64)(cfg, values)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		var in map[string]any
		_ = json.Unmarshal(values[i], &in)
		if _, ok := in["price"]; !ok || in["id"] == nil {
			continue // a required field left out: rejected, checked by the vectors
		}
		tenths := 0 // the weights of the checks that pass, of 10
		for k, w := range map[string]int{"id": 1, "title": 2, "price": 3, "city": 1, "rooms": 1, "email": 1} {
			if _, ok := in[k]; ok {
				tenths += w
			}
		}
		score := float64(tenths) / 10
		want["quality"] = score
		if tenths < 8 {
			if o.Action != vectors.Reject || o.Code != 3 {
				t.Fatalf("%s (score %v): %+v, want a rejection", values[i], score, o)
			}
			continue
		}
		if o.Action != vectors.Emit || len(o.Emitted) != 1 {
			t.Fatalf("%s: %+v", values[i], o)
		}
		var got map[string]any
		if err := json.Unmarshal(o.Emitted[0].Value, &got); err != nil {
			t.Fatalf("%s gave %s: %v", values[i], o.Emitted[0].Value, err)
		}
		for k, v := range want {
			if _, ok := in[k]; !ok && k != "quality" {
				continue
			}
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Fatalf("%s gave %s: %s = %v, want %v", values[i], o.Emitted[0].Value, k, got[k], v)
			}
		}
	}
}
