package wasmhost_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

const hostileWasm = "testdata/hostile.wasm"

func newHost(t testing.TB) (*wasmhost.Host, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	h, err := wasmhost.New(context.Background(), wasmhost.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h, logs
}

func newStage(t testing.TB, h *wasmhost.Host, path string, cfg wasmhost.StageConfig) *wasmhost.Stage {
	t.Helper()
	ctx := context.Background()
	m, err := h.Load(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStage(ctx, m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func records(values ...string) []connector.Record {
	out := make([]connector.Record, len(values))
	for i, v := range values {
		out[i] = connector.Record{Value: []byte(v), Key: []byte(fmt.Sprintf("k%d", i)), Position: connector.Position{Offset: int64(i)}}
	}
	return out
}

// stoppingModes are the modes that stop a runaway guest.
var stoppingModes = []wasmhost.Mode{wasmhost.Metered, wasmhost.Strict}

func forStoppingModes(t *testing.T, f func(*testing.T, wasmhost.Mode)) {
	for _, mode := range stoppingModes {
		t.Run(string(mode), func(t *testing.T) { f(t, mode) })
	}
}

// runWithin fails the test instead of hanging when f does not return in time.
func runWithin(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("did not return within %s", d)
	}
}

func TestDispositions(t *testing.T) {
	h, logs := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	in := records("ok", "reject me", "drop me", "emit", "log hello", "fine")
	in[3].Headers = []connector.Header{{Key: "h", Value: []byte("v")}}
	res, err := s.Process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []transform.Action{transform.Pass, transform.Reject, transform.Drop, transform.Emit, transform.Pass, transform.Pass}
	if fmt.Sprint(res.Actions) != fmt.Sprint(want) {
		t.Fatalf("actions %v, want %v", res.Actions, want)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Input != 1 || res.Rejected[0].Code != 3 || res.Rejected[0].Reason != "value: out of range" {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	if len(res.Emitted) != 2 {
		t.Fatalf("emitted %+v", res.Emitted)
	}
	for i, e := range res.Emitted {
		if e.Input != 3 || string(e.Record.Value) != fmt.Sprintf("emit#%d", i) || string(e.Record.Key) != "k3" ||
			e.Record.Position.Offset != in[3].Position.Offset || len(e.Record.Headers) != 1 || e.Record.Headers[0].Key != "h" {
			t.Fatalf("emitted[%d] = %+v", i, e)
		}
	}
	if res.Emitted[0].Port != "main" || res.Emitted[1].Port != "alerts" {
		t.Fatalf("ports %q %q", res.Emitted[0].Port, res.Emitted[1].Port)
	}
	if got := s.GuestCounters()["logged"]; got != 1 {
		t.Fatalf("guest counter logged = %d, want 1", got)
	}
	if !strings.Contains(logs.String(), "log hello") {
		t.Fatalf("guest log line missing from host logs:\n%s", logs)
	}
	st := s.Stats()
	if st.RecordsIn != 6 || st.RecordsOut != 5 || st.RecordsRejected != 1 || st.Traps != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The hostile guest points every reject's reason at the same bytes of its result frame: rejects
// may share reason bytes (ABI.md section 7.2).
func TestRejectsShareReasonBytes(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	res, err := s.Process(context.Background(), records("reject 1", "a", "reject 2", "reject 3"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 3 {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	for i, r := range res.Rejected {
		if r.Input != []int{0, 2, 3}[i] || r.Code != 3 || r.Reason != "value: out of range" {
			t.Fatalf("rejected %+v", res.Rejected)
		}
	}
}

func TestMeta(t *testing.T) {
	h, _ := newHost(t)
	m, err := h.Load(context.Background(), hostileWasm, "")
	if err != nil {
		t.Fatal(err)
	}
	meta := m.Meta()
	b, _ := os.ReadFile(hostileWasm)
	sum := sha256.Sum256(b)
	if meta.Name != "hostile" || meta.Version != "0.1.0" || meta.ABI != "1.0" ||
		fmt.Sprint(meta.Ports) != "[main alerts]" || fmt.Sprint(meta.Kinds) != "[validate route]" ||
		meta.Digest != hex.EncodeToString(sum[:]) || !bytes.Contains(meta.ConfigSchema, []byte("fail_init")) {
		t.Fatalf("meta %+v", meta)
	}
	again, err := h.Load(context.Background(), hostileWasm, strings.ToUpper(meta.Digest))
	if err != nil || again != m {
		t.Fatalf("second load with the right pin: %v, same module %v", err, again == m)
	}
}

// The hostile-guest tests of issue 3: each must end with the runtime alive and the stage usable.
func TestTrapOnOneRecordOfThousand(t *testing.T) { forStoppingModes(t, testTrapOnOneRecordOfThousand) }

func testTrapOnOneRecordOfThousand(t *testing.T, mode wasmhost.Mode) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: mode, Instances: 2})
	vals := make([]string, 1000)
	for i := range vals {
		vals[i] = fmt.Sprintf("record %d", i)
	}
	vals[617] = "trap here"
	var res transform.Result
	var err error
	runWithin(t, time.Minute, func() { res, err = s.Process(context.Background(), records(vals...)) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != 1000 {
		t.Fatalf("%d actions", len(res.Actions))
	}
	for i, a := range res.Actions {
		want := transform.Pass
		if i == 617 {
			want = transform.Reject
		}
		if a != want {
			t.Fatalf("action[%d] = %v, want %v", i, a, want)
		}
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Input != 617 || res.Rejected[0].Code != wasmhost.CodeTrap ||
		res.Rejected[0].Reason != "wasm trap: out of bounds memory access" {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	st := s.Stats()
	if st.Poison != 1 || st.RecordsOut != 999 || st.InstanceRestarts == 0 {
		t.Fatalf("stats %+v", st)
	}
	// The stage keeps working on fresh instances.
	if res, err := s.Process(context.Background(), records("a", "b")); err != nil || len(res.Rejected) != 0 {
		t.Fatalf("after the trap: %v %+v", err, res)
	}
}

func TestInfiniteLoopStoppedAtDeadline(t *testing.T) {
	forStoppingModes(t, testInfiniteLoopStoppedAtDeadline)
}

func testInfiniteLoopStoppedAtDeadline(t *testing.T, mode wasmhost.Mode) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: mode, Instances: 1, Timeout: 250 * time.Millisecond})
	var res transform.Result
	var err error
	runWithin(t, time.Minute, func() { res, err = s.Process(context.Background(), records("a", "loop forever", "b", "c")) })
	if err != nil {
		t.Fatal(err)
	}
	want := []transform.Action{transform.Pass, transform.Reject, transform.Pass, transform.Pass}
	if fmt.Sprint(res.Actions) != fmt.Sprint(want) {
		t.Fatalf("actions %v", res.Actions)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Code != wasmhost.CodeDeadline || res.Rejected[0].Reason != "deadline exceeded" {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	if st := s.Stats(); st.Timeouts == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCancelStopsLoop(t *testing.T) { forStoppingModes(t, testCancelStopsLoop) }

func testCancelStopsLoop(t *testing.T, mode wasmhost.Mode) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: mode, Instances: 1, Timeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var err error
	runWithin(t, time.Minute, func() { _, err = s.Process(ctx, records("loop")) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	if _, err := s.Process(context.Background(), records("a")); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestMemoryGrowthStoppedAtLimit(t *testing.T) {
	forStoppingModes(t, testMemoryGrowthStoppedAtLimit)
}

func testMemoryGrowthStoppedAtLimit(t *testing.T, mode wasmhost.Mode) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: mode, Instances: 1, MemoryBytes: 4 << 20})
	var res transform.Result
	var err error
	runWithin(t, time.Minute, func() { res, err = s.Process(context.Background(), records("a", "grow", "b")) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Input != 1 || res.Rejected[0].Code != wasmhost.CodeMemory {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	// Metered mode knows: the host refused the guest's memory.grow. Strict mode infers it.
	if r := res.Rejected[0].Reason; (mode == wasmhost.Strict && r != "memory limit exceeded") ||
		(mode == wasmhost.Metered && !regexp.MustCompile(`^memory limit exceeded: growing memory from \d+[KM]iB to \d+[KM]iB was refused, the limit is 4MiB$`).MatchString(r)) {
		t.Fatalf("reason %q", r)
	}
	// Another stage of the same module with a larger cap lives in another runtime.
	big := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "big", Mode: mode, Instances: 1, MemoryBytes: 64 << 20})
	if _, err := big.Process(context.Background(), records("a")); err != nil {
		t.Fatal(err)
	}
}

func TestBatchErrorIsolated(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	res, err := s.Process(context.Background(), records("a", "b", "fail", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Input != 2 || res.Rejected[0].Code != wasmhost.CodeGuestError ||
		res.Rejected[0].Reason != "guest error -1: asked to fail" {
		t.Fatalf("rejected %+v", res.Rejected)
	}
}

func TestLoadFailures(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.wasm")
	if err := os.WriteFile(empty, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.wasm")
	if err := os.WriteFile(garbage, []byte("not wasm at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, pin string
		is              error
		msg             string
	}{
		{"no exports", "testdata/noexports.wasm", "", wasmhost.ErrNotTransform, "missing exports tf_abi_version, tf_meta, tf_reserve, tf_init, tf_process, tf_last_error"},
		{"empty module", empty, "", wasmhost.ErrNotTransform, "missing exports"},
		{"not wasm", garbage, "", wasmhost.ErrNotTransform, "compile"},
		{"wrong ABI version", "testdata/wrongabi.wasm", "", wasmhost.ErrABIVersion, "unsupported ABI version 2.0 (host supports 1.1)"},
		{"pin mismatch", hostileWasm, strings.Repeat("ab", 32), wasmhost.ErrDigestMismatch, "pinned abab"},
		{"missing file", filepath.Join(dir, "nope.wasm"), "", os.ErrNotExist, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			h, _ := newHost(t)
			runWithin(t, time.Minute, func() { _, err = h.Load(context.Background(), tc.path, tc.pin) })
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.is, tc.msg)
			}
		})
	}
}

func TestInitFailure(t *testing.T) {
	h, _ := newHost(t)
	m, err := h.Load(context.Background(), hostileWasm, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, cfg, msg string }{
		{"guest refuses", `{"fail_init": true}`, `init: fail_init is set`},
		{"schema", `{"fail_init": "yes"}`, `config does not match the module's config_schema: /fail_init: must be boolean, not string`},
		{"not an object", `[1]`, `config: must be a JSON object`},
		{"out of range", `{"fail_init": [1e400]}`, `config: /fail_init/0: 1e400 is out of the range of a double (about ±1.8e308)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The whole message: the caller names the stage, NewStage does not.
			_, err := h.NewStage(context.Background(), m, wasmhost.StageConfig{Name: "t", Config: []byte(tc.cfg)})
			if err == nil || err.Error() != tc.msg {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
		})
	}
	t.Run("schema messages", func(t *testing.T) {
		vp, err := h.Load(context.Background(), "../../transforms/validate_price/c/validate_price.wasm", "")
		if err != nil {
			t.Fatal(err)
		}
		for cfg, msg := range map[string]string{
			`{"max_price": 0}`:         `/max_price: must be > 0`,
			`{"max_price": 1e400}`:     `config: /max_price: 1e400 is out of the range of a double`,
			`{"max_price": 1, "x": 2}`: `/x: not allowed`,
		} {
			_, err := h.NewStage(context.Background(), vp, wasmhost.StageConfig{Name: "t", Config: []byte(cfg)})
			if err == nil || !strings.Contains(err.Error(), msg) {
				t.Errorf("%s: err = %v, want %q", cfg, err, msg)
			}
		}
	})
	t.Run("init loops forever", func(t *testing.T) {
		forStoppingModes(t, func(t *testing.T, mode wasmhost.Mode) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			var err error
			runWithin(t, time.Minute, func() {
				_, err = h.NewStage(ctx, m, wasmhost.StageConfig{Name: "t", Mode: mode, Config: []byte(`{"loop_init": true}`)})
			})
			if err == nil || !strings.Contains(err.Error(), `init: deadline exceeded`) {
				t.Fatalf("err = %v", err)
			}
		})
	})
}

func TestConcurrentProcess(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				vals := []string{"a", "reject", "emit", "b"}
				if i%10 == 3 {
					vals[3] = "trap"
				}
				res, err := s.Process(context.Background(), records(vals...))
				if err != nil {
					errs <- err
					return
				}
				if len(res.Actions) != 4 || len(res.Emitted) != 2 {
					errs <- fmt.Errorf("result %+v", res)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := s.Stats(); st.RecordsIn != 8*50*4 || st.Poison != 8*5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFrameSplitting(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	vals := make([]string, 10000)
	for i := range vals {
		vals[i] = "x"
		if i%1000 == 999 {
			vals[i] = "reject"
		}
	}
	big := strings.Repeat("y", 5<<20) // larger than the frame cap: a frame of its own
	vals[5000] = big
	res, err := s.Process(context.Background(), records(vals...))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != 10000 || len(res.Rejected) != 10 || res.Rejected[9].Input != 9999 {
		t.Fatalf("%d actions, rejected %+v", len(res.Actions), res.Rejected)
	}
	if st := s.Stats(); st.Frames < 4 {
		t.Fatalf("frames %d, want ≥ 4 (10,000 records at 4,096 per frame plus one oversized record)", st.Frames)
	}
}

func TestCloseIsIdempotentAndRefusesWork(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t"})
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Process(context.Background(), records("a")); !errors.Is(err, wasmhost.ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

func TestTrustedWatchdogReportsOverrun(t *testing.T) {
	h, logs := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1, Mode: wasmhost.Trusted, Timeout: 20 * time.Millisecond})
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	var res transform.Result
	var err error
	// Trusted mode cannot interrupt the guest: the call runs to its end, and the watchdog reports it.
	runWithin(t, time.Minute, func() { res, err = s.Process(context.Background(), records("a", "slow", "b")) })
	if err != nil {
		t.Fatal(err)
	}
	if countPass(res) != 3 {
		t.Fatalf("result %+v", res)
	}
	if s.Err() == nil || s.Stats().Overruns != 1 || !strings.Contains(logs.String(), "overran its deadline") {
		t.Fatalf("overrun not reported: err %v, stats %+v", s.Err(), s.Stats())
	}
}

func countPass(r transform.Result) int {
	n := 0
	for _, a := range r.Actions {
		if a == transform.Pass {
			n++
		}
	}
	return n
}

func TestCloseInterruptsRunningCall(t *testing.T) {
	forStoppingModes(t, testCloseInterruptsRunningCall)
}

func testCloseInterruptsRunningCall(t *testing.T, mode wasmhost.Mode) {
	tests := []struct {
		name  string
		close func(h *wasmhost.Host, s *wasmhost.Stage) error
	}{
		{"stage close", func(h *wasmhost.Host, s *wasmhost.Stage) error { return s.Close(context.Background()) }},
		{"host close", func(h *wasmhost.Host, s *wasmhost.Stage) error { return h.Close(context.Background()) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newHost(t)
			s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: mode, Instances: 2, Timeout: time.Hour})
			type out struct {
				res transform.Result
				err error
			}
			done := make(chan out, 1)
			started := make(chan struct{})
			go func() {
				close(started)
				res, err := s.Process(context.Background(), records("a", "loop", "b"))
				done <- out{res, err}
			}()
			<-started
			time.Sleep(50 * time.Millisecond) // let the call enter the loop; the test holds either way
			if err := tc.close(h, s); err != nil {
				t.Fatal(err)
			}
			select {
			case o := <-done:
				if !errors.Is(o.err, wasmhost.ErrClosed) || len(o.res.Rejected) != 0 {
					t.Fatalf("Process after close: %+v, %v; want ErrClosed and no rejects", o.res, o.err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Process did not return after close")
			}
		})
	}
}

func TestGuestLogsAreRateLimited(t *testing.T) { forStoppingModes(t, testGuestLogsAreRateLimited) }

func testGuestLogsAreRateLimited(t *testing.T, mode wasmhost.Mode) {
	h, logs := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: mode, Instances: 1})
	vals := make([]string, 5000)
	for i := range vals {
		vals[i] = fmt.Sprintf("log line %d", i)
	}
	if _, err := s.Process(context.Background(), records(vals...)); err != nil {
		t.Fatal(err)
	}
	if got := s.GuestCounters()["logged"]; got != 5000 {
		t.Fatalf("guest counter logged = %d, want 5000", got)
	}
	lines := strings.Count(logs.String(), "from=log")
	// The burst is 100 lines, refilled at 10 lines/s: 5,000 calls within a run of this test can
	// never log more than 100 + 10 per second elapsed; 1,000 would mean no limit at all.
	if lines < 100 || lines > 1000 {
		t.Fatalf("%d guest log lines reached the log, want the burst of 100 and few more", lines)
	}
	// Every line is either logged or counted in a "dropped" report: at the end of the first call
	// (4,096 records, one frame), then at most once a second, and when the stage closes.
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, m := range regexp.MustCompile(`guest log lines dropped by the rate limit" .*dropped=(\d+)`).FindAllStringSubmatch(logs.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		dropped += n
	}
	if lines+dropped != 5000 {
		t.Fatalf("%d lines logged and %d reported dropped, want 5000 in all", lines, dropped)
	}
}

func TestAssemblyScriptAbort(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, "testdata/abort.wasm", wasmhost.StageConfig{Name: "t", Instances: 1})
	res, err := s.Process(context.Background(), records("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 2 {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	for _, r := range res.Rejected {
		if r.Code != wasmhost.CodeTrap || r.Reason != "abort: boom at guest.ts:7:3" {
			t.Fatalf("rejected %+v", r)
		}
	}
}

func TestLoadOncePerDigestAndCacheDir(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "wasm-cache")
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	// The same bytes under another name are the same module.
	b, err := os.ReadFile(hostileWasm)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.wasm")
	if err := os.WriteFile(copyPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	mods := make([]*wasmhost.Module, 8)
	var wg sync.WaitGroup
	for i := range mods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := hostileWasm
			if i%2 == 1 {
				p = copyPath
			}
			m, err := h.Load(ctx, p, "")
			if err != nil {
				t.Error(err)
			}
			mods[i] = m
		}()
	}
	wg.Wait()
	for _, m := range mods {
		if m == nil || m != mods[0] {
			t.Fatalf("loads of the same digest returned different modules")
		}
	}
	var files int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatalf("nothing written to the compilation cache directory %s", dir)
	}
}

func TestStageLogger(t *testing.T) {
	h, hostLogs := newHost(t)
	var stageLogs testenv.Buffer
	l := slog.New(slog.NewTextHandler(&stageLogs, nil)).With("pipeline", "p1")
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1, Logger: l})
	if _, err := s.Process(context.Background(), records("log from guest")); err != nil {
		t.Fatal(err)
	}
	if got := stageLogs.String(); !strings.Contains(got, "pipeline=p1") || !strings.Contains(got, "transform=t") || !strings.Contains(got, "log from guest") {
		t.Fatalf("stage logger got:\n%s", got)
	}
	if strings.Contains(hostLogs.String(), "log from guest") {
		t.Fatal("the guest line went to the host logger too")
	}
}

func TestParallelFramesKeepOrder(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 3})
	vals := make([]string, 3000)
	for i := range vals {
		switch {
		case i == 2222:
			vals[i] = "trap"
		case i%7 == 0:
			vals[i] = fmt.Sprintf("emit %d", i)
		case i%11 == 0:
			vals[i] = "reject"
		default:
			vals[i] = fmt.Sprintf("v%d", i)
		}
	}
	res, err := s.Process(context.Background(), records(vals...))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != len(vals) {
		t.Fatalf("%d actions", len(res.Actions))
	}
	ei, ri := 0, 0
	for i, a := range res.Actions {
		switch {
		case i == 2222:
			if a != transform.Reject || res.Rejected[ri].Input != i || res.Rejected[ri].Code != wasmhost.CodeTrap {
				t.Fatalf("record %d: %v %+v", i, a, res.Rejected[ri])
			}
			ri++
		case i%7 == 0:
			for k := 0; k < 2; k++ {
				e := res.Emitted[ei]
				if a != transform.Emit || e.Input != i || string(e.Record.Value) != fmt.Sprintf("emit %d#%d", i, k) {
					t.Fatalf("record %d: %v %+v", i, a, e)
				}
				ei++
			}
		case i%11 == 0:
			if a != transform.Reject || res.Rejected[ri].Input != i || res.Rejected[ri].Code != 3 {
				t.Fatalf("record %d: %v", i, a)
			}
			ri++
		default:
			if a != transform.Pass {
				t.Fatalf("record %d: %v", i, a)
			}
		}
	}
	if ei != len(res.Emitted) || ri != len(res.Rejected) {
		t.Fatalf("%d emitted and %d rejected left over", len(res.Emitted)-ei, len(res.Rejected)-ri)
	}
	if st := s.Stats(); st.Frames < 3 {
		t.Fatalf("frames %d: the batch did not run on several instances", st.Frames)
	}
}

// A module file over MaxModuleBytes is refused, naming the file, before it is read: before, a
// bogus 1.5 GB file was read whole (validate reached 1.49 GB RSS) and then failed to compile.
func TestLoadRefusesAnOversizedModule(t *testing.T) {
	h, _ := newHost(t)
	big := filepath.Join(t.TempDir(), "big.wasm")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("\x00asm\x01\x00\x00\x00")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(wasmhost.MaxModuleBytes + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	_, err = h.Load(context.Background(), big, "")
	want := fmt.Sprintf("load module: %s: %d bytes, more than the 268435456 bytes (256MiB) a module may have", big, wasmhost.MaxModuleBytes+1)
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
