//go:build linux

package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/pluginhost/internal/testconn"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
)

// A plugin built with the SDK serves the data connection and reports it; the host then sends
// Read and Write on it, and a plugin that does not report it gets them on go-plugin's
// connection. Both read and write the same records, per-record failures included.
func TestDataConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		data bool
	}{{"data connection", true}, {"without it", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, Options{})
			p := discoverOne(t, h, pluginDir(t, "seq"))
			if !slices.Contains(p.Features, protocol.FeatureDataConnection) {
				t.Fatalf("features = %v; want %s", p.Features, protocol.FeatureDataConnection)
			}
			if !tc.data {
				p.Features = slices.DeleteFunc(slices.Clone(p.Features), func(f string) bool { return f == protocol.FeatureDataConnection })
			}
			const n = 5000
			src, err := h.NewSource(p, "seq", connector.Config{"count": int64(n), "batch": int64(700)}, connector.Env{})
			if err != nil {
				t.Fatal(err)
			}
			seen := readAll(t, src, nil, func(int, int64) {
				if pr := src.in.current(); pr != nil && (pr.data != nil) != tc.data {
					t.Fatalf("source process has a data connection: %v, want %v", pr.data != nil, tc.data)
				}
			})
			if len(seen) != n {
				t.Fatalf("read %d distinct records, want %d", len(seen), n)
			}
			path := filepath.Join(t.TempDir(), "out")
			snk, err := h.NewSink(p, "lines", connector.Config{"path": path, "sync": false}, connector.Env{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := snk.Open(ctx); err != nil {
				t.Fatal(err)
			}
			if got := snk.in.current().data != nil; got != tc.data {
				t.Fatalf("sink process has a data connection: %v, want %v", got, tc.data)
			}
			var waits []func() error
			for b := range 20 {
				batch := make([]connector.Record, 30)
				for i := range batch {
					batch[i].Value = fmt.Appendf(nil, "b%d-r%d", b, i)
					if b == 17 && i == 3 {
						batch[i].Value = []byte("poison")
					}
				}
				waits = append(waits, snk.WriteAsync(ctx, batch))
			}
			for b, w := range waits {
				checkWait(t, b, w())
			}
			if err := snk.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if got := len(readLines(t, path)); got != 20*30-1 {
				t.Fatalf("%d lines written, want %d", got, 20*30-1)
			}
		})
	}
}

// A plugin killed while several writes are in flight on the data connection loses nothing: the
// writes in flight fail, and written again in order (as the engine does), every record is in the
// file.
func TestKill9SinkPipelined(t *testing.T) {
	h := newHost(t, Options{RestartBackoff: 20 * time.Millisecond})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	path := filepath.Join(t.TempDir(), "out")
	snk, err := h.NewSink(p, "lines", connector.Config{"path": path, "sync": false}, connector.Env{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	const batches, size, window = 150, 400, 3
	type inFlight struct {
		recs []connector.Record
		wait func() error
	}
	var q []inFlight
	failedWaits := 0
	// complete waits for the oldest write; after a failure it waits for the rest and writes
	// them all again, one at a time.
	complete := func() {
		err := q[0].wait()
		if err == nil {
			q = q[1:]
			return
		}
		failedWaits++
		for _, f := range q[1:] {
			_ = f.wait()
		}
		for _, f := range q {
			if err := snk.Write(ctx, f.recs); err != nil {
				t.Fatalf("rewrite: %v", err)
			}
		}
		q = nil
	}
	for b := range batches {
		batch := make([]connector.Record, size)
		for i := range batch {
			batch[i].Value = testconn.Value(int64(b*size+i), 8)
		}
		if b == 40 || b == 100 {
			kill9(t, snk.in.pid())
		}
		q = append(q, inFlight{batch, snk.WriteAsync(ctx, batch)})
		if len(q) == window {
			complete()
		}
	}
	for len(q) > 0 {
		complete()
	}
	if err := snk.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if failedWaits == 0 {
		t.Fatal("no write failed: the kills did not hit writes in flight")
	}
	seen := map[string]bool{}
	for _, r := range readLines(t, path) {
		seen[string(r.Value)] = true
	}
	if len(seen) != batches*size {
		t.Fatalf("%d distinct records in the file, want %d", len(seen), batches*size)
	}
}

// Stopping a plugin closes the host's end of its data connection, also when no call used it (gRPC
// dials it only with the first call).
func TestDataConnectionClosed(t *testing.T) {
	h := newHost(t, Options{})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	ctx := context.Background()
	for _, write := range []bool{false, true} {
		snk, err := h.NewSink(p, "discard", nil, connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if err := snk.Open(ctx); err != nil {
			t.Fatal(err)
		}
		if write {
			if err := snk.Write(ctx, []connector.Record{{Value: []byte("x")}}); err != nil {
				t.Fatal(err)
			}
		}
		pr := snk.in.current()
		if err := snk.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// Closed here, the read fails with net.ErrClosed; left open, it would see the dead
		// plugin's end (EOF).
		if _, err := pr.raw.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("written %v: the host's end of the data connection is still open after Close (read: %v)", write, err)
		}
	}
}
