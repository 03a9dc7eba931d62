package meter_test

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/sluicehq/sluice/internal/wasmhost/meter"
)

// validity compares what wazero says of a module and of its rewrite. The rewrite must never make
// an invalid module valid (the host then runs only what the runtime accepts), and must keep a
// valid module valid unless it refuses it.
type validity struct {
	rt  wazero.Runtime
	ctx context.Context
}

func newValidity(t testing.TB) *validity {
	ctx := context.Background()
	v := &validity{rt: wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false)), ctx: ctx}
	t.Cleanup(func() { v.rt.Close(ctx) })
	return v
}

func (v *validity) compiles(bin []byte) error {
	cm, err := v.rt.CompileModule(v.ctx, bin)
	if err == nil {
		cm.Close(v.ctx)
	}
	return err
}

// check returns what happened: "invalid" (both refused), "valid" (both compile), "refused" (the
// rewriter refused a valid module), or fails the test.
func (v *validity) check(t testing.TB, bin []byte) string {
	t.Helper()
	out, _, err := meter.Rewrite(bin)
	if err != nil && (strings.Contains(err.Error(), "entries in") || strings.Contains(err.Error(), "locals")) {
		// Implausible counts: wazero would allocate by them (an import count of 2^31 makes it run
		// out of memory), so it is not asked.
		return "refused, implausible"
	}
	origErr := v.compiles(bin)
	if err != nil {
		var me *meter.Error
		if !errors.As(err, &me) {
			t.Fatalf("rewrite failed with a %T: %v", err, err)
		}
		if origErr == nil {
			if strings.Contains(err.Error(), "canonical encoding") || strings.Contains(err.Error(), "0xfd") {
				// wazero reads a SIMD opcode as one byte, so it takes some encodings the format
				// does not allow (see simd in code.go): refusing them is right
				return "refused, SIMD encoding"
			}
			t.Logf("refused a module wazero accepts: %v", err)
			return "refused"
		}
		return "invalid"
	}
	rwErr := v.compiles(out)
	switch {
	case origErr != nil && rwErr == nil:
		t.Fatalf("the rewrite made an invalid module valid: %v\nmodule % x", origErr, bin)
	case origErr == nil && rwErr != nil:
		t.Fatalf("the rewrite broke a valid module: %v\nmodule % x", rwErr, bin)
	case origErr == nil:
		return "valid"
	}
	return "invalid"
}

// mutate changes a few bytes of b: flips, replacements with interesting values, insertions and
// deletions.
func mutate(rng *rand.Rand, b []byte) []byte {
	out := append([]byte(nil), b...)
	interesting := []byte{0x00, 0x01, 0x02, 0x03, 0x0b, 0x0c, 0x10, 0x11, 0x20, 0x23, 0x40, 0x41, 0x7f, 0x80, 0xff, 0xfc, 0xfd, 0xd2, 0x7e, 0x60, 0x70}
	for n := 1 + rng.Intn(3); n > 0; n-- {
		if len(out) <= 8 {
			break
		}
		i := 8 + rng.Intn(len(out)-8)
		switch rng.Intn(4) {
		case 0:
			out[i] ^= 1 << uint(rng.Intn(8))
		case 1:
			out[i] = interesting[rng.Intn(len(interesting))]
		case 2:
			out = append(out[:i], append([]byte{interesting[rng.Intn(len(interesting))]}, out[i:]...)...)
		default:
			out = append(out[:i], out[i+1:]...)
		}
	}
	return out
}

// TestMutatedModulesKeepValidity mutates generated and real modules and checks that the rewrite
// keeps invalid modules invalid and valid ones valid.
func TestMutatedModulesKeepValidity(t *testing.T) {
	v := newValidity(t)
	rng := rand.New(rand.NewSource(7))
	var seeds [][]byte
	for s := int64(1); s <= 20; s++ {
		seeds = append(seeds, newModule(1000+s, 2+int(s%6), s%2 == 0).encode())
	}
	for _, p := range []string{"../../../internal/wasmhost/testdata/hostile.wasm", "../../../internal/wasmhost/testdata/abort.wasm"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	n := 4000
	if testing.Short() || raceEnabled {
		n = 500
	}
	count := map[string]int{}
	for i := 0; i < n; i++ {
		count[v.check(t, mutate(rng, seeds[rng.Intn(len(seeds))]))]++
	}
	t.Logf("%d mutated modules: %v", n, count)
	if count["valid"] == 0 || count["invalid"] == 0 {
		t.Fatalf("the mutations did not produce both valid and invalid modules: %v", count)
	}
	if count["refused"] > 0 {
		t.Fatalf("the rewriter refused %d valid modules", count["refused"])
	}
}

// FuzzRewrite: go test -fuzz FuzzRewrite ./internal/wasmhost/meter/. Modules the rewriter refuses
// are not compiled: wazero allocates by the counts of malformed modules before it checks them,
// and some inputs make it run out of memory.
func FuzzRewrite(f *testing.F) {
	for s := int64(1); s <= 8; s++ {
		f.Add(newModule(2000+s, 2+int(s%6), s%2 == 0).encode())
	}
	if b, err := os.ReadFile("../../../internal/wasmhost/testdata/hostile.wasm"); err == nil {
		f.Add(b)
	}
	v := newValidity(f)
	f.Fuzz(func(t *testing.T, bin []byte) {
		if _, _, err := meter.Rewrite(bin); err != nil {
			var me *meter.Error
			if !errors.As(err, &me) {
				t.Fatalf("rewrite failed with a %T: %v", err, err)
			}
			return
		}
		v.check(t, bin)
	})
}
