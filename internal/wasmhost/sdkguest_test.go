package wasmhost_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// buildSDKGuest compiles sdk/go/transform/testdata/guest, a guest written with the Go SDK, to
// WebAssembly, inside the SDK's own module.
func buildSDKGuest(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "guest.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
	cmd.Dir = filepath.Join("..", "..", "sdk", "go", "transform", "testdata", "guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build guest: %v\n%s", err, b)
	}
	return out
}

// sdkLogCapture is a slog handler that records messages.
type sdkLogCapture struct {
	mu   sync.Mutex
	msgs []string
}

func (c *sdkLogCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *sdkLogCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, r.Message)
	return nil
}
func (c *sdkLogCapture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *sdkLogCapture) WithGroup(string) slog.Handler      { return c }

func (c *sdkLogCapture) has(msg string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if m == msg {
			return true
		}
	}
	return false
}

// TestSDKGuestThroughHost runs a module built with the Go SDK (sdk/go/transform) in the real
// host: dispositions, emits on ports, headers, logs, counters, init errors, and a panicking record
// isolated by the host's bisection.
func TestSDKGuestThroughHost(t *testing.T) {
	ctx := context.Background()
	wasm := buildSDKGuest(t)
	logs := &sdkLogCapture{}
	h, err := wasmhost.New(ctx, wasmhost.Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, wasm, "")
	if err != nil {
		t.Fatal(err)
	}
	if meta := m.Meta(); meta.Name != "sdk_guest" || !reflect.DeepEqual(meta.Ports, []string{"main", "side"}) || meta.ABI != "1.0" {
		t.Fatalf("meta = %+v", meta)
	}

	t.Run("init error", func(t *testing.T) {
		_, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "bad", Config: []byte(`{"fail":true}`), Instances: 1})
		if err == nil || !strings.Contains(err.Error(), "refusing to start") {
			t.Fatalf("NewStage = %v, want the guest's init error", err)
		}
	})

	st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "g", Config: []byte(`{"prefix":"p-"}`), Instances: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	vals := []string{"pass", "drop", "reject bad thing", "split a,side:b,c", "header h2", "header nope", "upper shout", "panic x", "count abc", "pass", "full"}
	recs := make([]connector.Record, len(vals))
	for i, v := range vals {
		recs[i] = connector.Record{Key: []byte("key"), Value: []byte(v),
			Headers: []connector.Header{{Key: "h1", Value: []byte("one")}, {Key: "h2", Value: []byte("two")}}}
	}
	res, err := st.Process(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	wantActions := []transform.Action{transform.Pass, transform.Drop, transform.Reject, transform.Emit, transform.Emit,
		transform.Reject, transform.Emit, transform.Reject, transform.Pass, transform.Pass, transform.Emit}
	if !reflect.DeepEqual(res.Actions, wantActions) {
		t.Fatalf("actions = %v, want %v", res.Actions, wantActions)
	}
	type em struct {
		in             int
		port, key, val string
	}
	if n := len(res.Emitted); n != 6 {
		t.Fatalf("%d emitted records, want 6", n)
	}
	full := res.Emitted[5]
	if full.Input != 10 || full.Port != "side" || full.Record.Key != nil || string(full.Record.Value) != "full" ||
		full.Record.Time.UnixMilli() != 1700000000000 || len(full.Record.Headers) != 1 ||
		full.Record.Headers[0].Key != "x" || string(full.Record.Headers[0].Value) != "y" {
		t.Fatalf("EmitRecord output = %+v", full)
	}
	res.Emitted = res.Emitted[:5]
	var got []em
	for _, e := range res.Emitted {
		port := e.Port
		if port == "" {
			port = abi.DefaultPort
		}
		got = append(got, em{e.Input, port, string(e.Record.Key), string(e.Record.Value)})
	}
	want := []em{{3, "main", "k-a", "p-a"}, {3, "side", "k-b", "p-b"}, {3, "main", "k-c", "p-c"}, {4, "main", "key", "two"}, {6, "main", "key", "SHOUT"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("emitted = %+v\nwant %+v", got, want)
	}
	if len(res.Rejected) != 3 {
		t.Fatalf("rejected = %+v", res.Rejected)
	}
	if r := res.Rejected[0]; r.Input != 2 || r.Code != 42 || r.Reason != "bad thing" {
		t.Fatalf("reject 0 = %+v", r)
	}
	if r := res.Rejected[1]; r.Input != 5 || r.Code != 7 || r.Reason != "no header nope" {
		t.Fatalf("reject 1 = %+v", r)
	}
	// The panic fails the frame; the host retries, bisects, and rejects only the poison record with
	// the guest-error code and the SDK's message.
	if r := res.Rejected[2]; r.Input != 7 || r.Code != 0xFF04 || !strings.Contains(r.Reason, "poison record x") {
		t.Fatalf("reject 2 = %+v, want input 7, code 0xFF04, the panic message", r)
	}
	if c := st.GuestCounters(); c["counted"] != 3 || c["batches"] < 1 {
		t.Fatalf("counters = %v", c)
	}
	if !logs.has("batch of 11") {
		t.Fatalf("guest log line missing; got %q", logs.msgs)
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stage error: %v", err)
	}
}
