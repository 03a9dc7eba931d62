package transforms_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/transforms/internal/vectors"
)

// goModule is a first-party Go transform: its source package, its module (committed, except
// json_schema.wasm, which is over 4 MiB and built by make wasm-go) and its testdata directory.
type goModule struct {
	src, wasm, testdata string
}

var goModules = []goModule{
	{"validate_price/go", "validate_price/go/validate_price.wasm", "validate_price/testdata"},
	{"json_schema", "json_schema/json_schema.wasm", "json_schema/testdata"},
	{"mask_fields", "mask_fields/mask_fields.wasm", "mask_fields/testdata"},
	{"rename_fields", "rename_fields/rename_fields.wasm", "rename_fields/testdata"},
	{"explode_array", "explode_array/explode_array.wasm", "explode_array/testdata"},
}

// The flags of mk/wasm-go.mk.
var wasmGoBuildArgs = []string{"build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

func newHost(t *testing.T) *wasmhost.Host {
	t.Helper()
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "build", "wasm-cache")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	return h
}

// hostRunner runs a module through the WASM host, one stage per config, in batches of batchSize
// so that outputs are checked across frame boundaries too.
func hostRunner(t *testing.T, h *wasmhost.Host, m *wasmhost.Module, batchSize int) vectors.Runner {
	return func(config []byte, values [][]byte) ([]vectors.Outcome, error) {
		ctx := context.Background()
		st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "t", Config: config, Instances: 1})
		if err != nil {
			return nil, err
		}
		defer st.Close(ctx)
		return vectors.Stage(ctx, st, values, batchSize)
	}
}

// TestModulesThroughHost runs each committed Go module over its testdata through the host, with
// everything in one frame and with small frames.
func TestModulesThroughHost(t *testing.T) {
	h := newHost(t)
	for _, gm := range goModules {
		t.Run(gm.src, func(t *testing.T) {
			if _, err := os.Stat(gm.wasm); err != nil {
				t.Fatalf("%v: run make wasm-go (modules over 4 MiB are built, not committed)", err)
			}
			m, err := h.Load(context.Background(), gm.wasm, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, bs := range []int{1 << 20, 7} {
				t.Run("batch "+itoa(bs), func(t *testing.T) {
					vectors.Check(t, gm.testdata, hostRunner(t, h, m, bs), false)
				})
			}
		})
	}
}

// TestMeteredRunsLikeTheOriginal runs every first-party module (the Go transforms and
// validate_price in all four languages) in metered mode, the default, which runs the module as
// rewritten at load, and in trusted mode, which runs the module as built, over each case of its
// test vectors plus 3,000 byte-level mutations of them: the results must be identical, byte for
// byte (actions, emitted records with their keys, headers and ports, reject codes and reasons).
func TestMeteredRunsLikeTheOriginal(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	modules := slices.Clone(goModules)
	for _, lang := range []string{"c", "rust", "assemblyscript"} {
		modules = append(modules, goModule{"validate_price/" + lang, "validate_price/" + lang + "/validate_price.wasm", "validate_price/testdata"})
	}
	for _, gm := range modules {
		t.Run(gm.src, func(t *testing.T) {
			m, err := h.Load(ctx, gm.wasm, "")
			if err != nil {
				t.Fatalf("%v (modules over 4 MiB are built by make wasm-go, not committed)", err)
			}
			cases, err := vectors.Cases(gm.testdata)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewSource(int64(len(gm.src))))
			for _, c := range cases {
				recs := make([]connector.Record, 0, len(c.Input)+3000)
				for _, v := range c.Input {
					recs = append(recs, connector.Record{Value: v})
				}
				for range 3000 {
					recs = append(recs, connector.Record{Value: vectors.Mutate(rng, c.Input[rng.Intn(len(c.Input))])})
				}
				run := func(mode wasmhost.Mode) transform.Result {
					st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "t", Config: c.Config, Instances: 1, Mode: mode})
					if err != nil {
						t.Fatalf("%s: %v", mode, err)
					}
					defer st.Close(ctx)
					var all transform.Result
					for i := 0; i < len(recs); i += 256 {
						res, err := st.Process(ctx, recs[i:min(len(recs), i+256)])
						if err != nil {
							t.Fatalf("%s: %v", mode, err)
						}
						for j := range res.Emitted {
							res.Emitted[j].Input += i
						}
						for j := range res.Rejected {
							res.Rejected[j].Input += i
						}
						all.Actions = append(all.Actions, res.Actions...)
						all.Emitted = append(all.Emitted, res.Emitted...)
						all.Rejected = append(all.Rejected, res.Rejected...)
					}
					return all
				}
				want, got := run(wasmhost.Trusted), run(wasmhost.Metered)
				if len(want.Actions) != len(recs) {
					t.Fatalf("case %q: %d actions for %d records", c.Name, len(want.Actions), len(recs))
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("case %q: metered and trusted results differ: %s", c.Name, firstDifference(want, got))
				}
				t.Logf("case %q: %d records, %d emitted, %d rejected: identical", c.Name, len(recs), len(want.Emitted), len(want.Rejected))
			}
		})
	}
}

// firstDifference describes where two results first differ.
func firstDifference(want, got transform.Result) string {
	for i := range min(len(want.Actions), len(got.Actions)) {
		if want.Actions[i] != got.Actions[i] {
			return fmt.Sprintf("record %d: action %v, original %v", i, got.Actions[i], want.Actions[i])
		}
	}
	for i := range min(len(want.Emitted), len(got.Emitted)) {
		if !reflect.DeepEqual(want.Emitted[i], got.Emitted[i]) {
			return fmt.Sprintf("emitted %d: %+v, original %+v", i, got.Emitted[i], want.Emitted[i])
		}
	}
	for i := range min(len(want.Rejected), len(got.Rejected)) {
		if !reflect.DeepEqual(want.Rejected[i], got.Rejected[i]) {
			return fmt.Sprintf("rejected %d: %+v, original %+v", i, got.Rejected[i], want.Rejected[i])
		}
	}
	return fmt.Sprintf("%d/%d/%d actions/emitted/rejected, original %d/%d/%d", len(got.Actions), len(got.Emitted), len(got.Rejected),
		len(want.Actions), len(want.Emitted), len(want.Rejected))
}

// TestModulesAreReproducible rebuilds each module from source with the flags of mk/wasm-go.mk and
// compares it with the committed file: the committed binaries are exactly what the source builds.
func TestModulesAreReproducible(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go toolchain is needed to rebuild the modules: %v", err)
	}
	for _, gm := range goModules {
		t.Run(gm.src, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m.wasm")
			cmd := exec.Command(goBin, append(wasmGoBuildArgs, "-o", out, "./"+gm.src)...)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("build: %v\n%s", err, b)
			}
			fresh, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			committed, err := os.ReadFile(gm.wasm)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fresh, committed) {
				t.Fatalf("%s (%d bytes) differs from a fresh build (%d bytes): run make wasm-go and commit it", gm.wasm, len(committed), len(fresh))
			}
		})
	}
}

// TestModulesMeta checks what the host reads from each module's tf_meta.
func TestModulesMeta(t *testing.T) {
	h := newHost(t)
	for _, gm := range goModules {
		t.Run(gm.src, func(t *testing.T) {
			m, err := h.Load(context.Background(), gm.wasm, "")
			if err != nil {
				t.Fatal(err)
			}
			meta := m.Meta()
			want := strings.SplitN(gm.src, "/", 2)[0]
			if meta.Name != want || meta.ABI != "1.0" || len(meta.Kinds) == 0 || len(meta.Ports) == 0 || meta.Ports[0] != "main" {
				t.Fatalf("meta = %+v, want name %q, abi 1.0, kinds, ports starting with main", meta, want)
			}
		})
	}
}

func itoa(n int) string {
	if n >= 1<<20 {
		return "all"
	}
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// BenchmarkGoTransforms measures records/s through one stage of each Go module on ~100-byte
// price records, per batch size and mode. Run: go test -run '^$' -bench GoTransforms ./transforms/
func BenchmarkGoTransforms(b *testing.B) {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "build", "wasm-cache")})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	value := []byte(`{"commodity":"gold","price":1923.45,"ts":"2024-01-15T10:30:00Z","venue":"LBMA","unit":"oz"}`)
	configs := map[string]string{
		"validate_price/go": `{}`,
		"mask_fields":       `{"fields":["venue"],"mode":"hash","salt":"s"}`,
		"json_schema":       `{"schema":{"type":"object","required":["commodity","price","ts"],"properties":{"price":{"type":"number","minimum":0}}}}`,
	}
	for _, gm := range goModules {
		cfg, ok := configs[gm.src]
		if !ok {
			continue
		}
		m, err := h.Load(ctx, gm.wasm, "")
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []wasmhost.Mode{wasmhost.Trusted, wasmhost.Strict} {
			for _, n := range []int{1, 64, 1024} {
				b.Run(gm.src+"/"+string(mode)+"/batch="+itoa(n), func(b *testing.B) {
					st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "bench", Config: []byte(cfg), Instances: 1, Mode: mode})
					if err != nil {
						b.Fatal(err)
					}
					defer st.Close(ctx)
					recs := make([]connector.Record, n)
					for i := range recs {
						recs[i] = connector.Record{Value: value}
					}
					b.SetBytes(int64(n * len(value)))
					b.ResetTimer()
					for b.Loop() {
						if _, err := st.Process(ctx, recs); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
				})
			}
		}
	}
}

// mask_fields in hash mode without a salt says so at start-up, through the host's log.
func TestMaskFieldsWarnsWithoutSalt(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		config string
		warn   bool
	}{
		{`{"fields":["email"],"mode":"hash"}`, true},
		{`{"fields":["email"],"mode":"hash","salt":"s3cret"}`, false},
		{`{"fields":["email"]}`, false},
	} {
		var logs bytes.Buffer
		h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "build", "wasm-cache"),
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		m, err := h.Load(ctx, "mask_fields/mask_fields.wasm", "")
		if err != nil {
			t.Fatal(err)
		}
		st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "pii", Config: []byte(tc.config), Instances: 1})
		if err != nil {
			t.Fatal(err)
		}
		st.Close(ctx)
		h.Close(ctx)
		got := strings.Contains(logs.String(), `level=WARN msg="mode hash without a salt`)
		if got != tc.warn {
			t.Errorf("%s: warning logged %v, want %v:\n%s", tc.config, got, tc.warn, logs.String())
		}
	}
}
