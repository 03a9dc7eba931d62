package pluginhost

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A plugin process gets only the environment its configuration grants.
func TestCleanEnvironment(t *testing.T) {
	t.Setenv("SLUICE_TEST_HOST_SECRET", "do-not-leak")
	t.Setenv("SLUICE_TEST_GRANTED", "copied")
	h := newHost(t, Options{})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	src, err := h.NewSource(p, "seq", connector.Config{"emit_env": true,
		FieldEnv: []any{"SLUICE_TEST_GRANTED", "TZ=UTC"}}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	recs, err := src.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, r := range recs {
		k, v, _ := strings.Cut(string(r.Value), "=")
		env[k] = v
	}
	if env["SLUICE_TEST_GRANTED"] != "copied" || env["TZ"] != "UTC" {
		t.Fatalf("granted variables missing: %v", env)
	}
	for k := range env {
		if k == "SLUICE_TEST_HOST_SECRET" || k == "PATH" || k == "HOME" {
			t.Fatalf("host variable %s reached the plugin: %v", k, env)
		}
	}
}

// What a connector logs inside the plugin arrives in the host's log, with its level and attributes.
func TestPluginLogsBridged(t *testing.T) {
	var buf testenv.Buffer
	h := newHost(t, Options{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	src, err := h.NewSource(p, "seq", connector.Config{"count": int64(3)}, connector.Env{Pipeline: "pipe", Component: "source"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := src.Open(ctx, []connector.Position{{Partition: "seq", Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	_ = src.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), `"msg":"seq opened"`) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin log line not bridged; host log:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, `"msg":"seq opened"`) {
			for _, want := range []string{`"level":"INFO"`, `"next":2`, `"pipeline":"pipe"`, `"plugin":"seq"`} {
				if !strings.Contains(line, want) {
					t.Errorf("bridged line %s lacks %s", line, want)
				}
			}
		}
	}
}

// A record too large for one protocol message fails on its own; the rest of the batch is written.
func TestSinkOversizedRecord(t *testing.T) {
	snk, path := openLines(t, Options{}, nil)
	ctx := context.Background()
	batch := []connector.Record{{Value: []byte("a")}, {Value: []byte("poison x")}, {Value: make([]byte, maxRecordBytes+1)}, {Value: []byte("b")}}
	err := snk.Write(ctx, batch)
	var be *connector.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 {
		t.Fatalf("write = %v; want a BatchError naming 2 records", err)
	}
	idx := map[int]string{}
	for _, f := range be.Failed {
		idx[f.Index] = f.Err.Error()
	}
	if !strings.Contains(idx[2], "exceeds the plugin protocol") || !strings.Contains(idx[1], "poison") {
		t.Fatalf("failures %v; want index 1 poison and index 2 too large", idx)
	}
	if got := readLines(t, path); len(got) != 2 || string(got[0].Value) != "a" || string(got[1].Value) != "b" {
		t.Fatalf("written %v, want a and b", got)
	}
}

// Open retried after a failure replaces the process kept for Close; none is left behind.
func TestOpenRetryLeavesNoProcess(t *testing.T) {
	h := newHost(t, Options{})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	src, err := h.NewSource(p, "seq", connector.Config{"fail_open": true}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var pids []int
	for range 3 {
		if err := src.Open(ctx, nil); err == nil || !errors.Is(err, connector.ErrPermanent) {
			t.Fatalf("open = %v, want the connector's permanent error", err)
		}
		pids = append(pids, src.in.pid())
	}
	if err := src.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	n := len(h.clients)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d plugin processes still tracked after Close (pids %v)", n, pids)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still runs", pid)
		}
	}
}
