package pluginhost

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/pluginhost/internal/testconn"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestStartFailures(t *testing.T) {
	seqDir := pluginDir(t, "seq")
	h := newHost(t, Options{})
	p := discoverOne(t, h, seqDir)

	t.Run("ManifestChecksumMismatch", func(t *testing.T) {
		// Refused at construction, so that validate reports it at config.sha256; a binary
		// replaced after discovery is refused at Open (BinaryReplacedAfterDiscovery).
		wrong := strings.Repeat("ab", 32)
		_, err := h.NewSource(p, "seq", connector.Config{FieldSHA256: wrong}, connector.Env{})
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != FieldSHA256 || !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), p.SHA256) {
			t.Fatalf("new source = %v; want a config error on sha256 naming both sums", err)
		}
	})
	t.Run("ManifestChecksumMatches", func(t *testing.T) {
		src, err := h.NewSource(p, "seq", connector.Config{FieldSHA256: strings.ToUpper(p.SHA256), "count": int64(5)}, connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(readAll(t, src, nil, nil)); n != 5 {
			t.Fatalf("read %d, want 5", n)
		}
	})
	t.Run("BinaryReplacedAfterDiscovery", func(t *testing.T) {
		dir := pluginDir(t, "seq")
		h2 := newHost(t, Options{})
		p2 := discoverOne(t, h2, dir)
		if err := os.WriteFile(filepath.Join(dir, "seq"), []byte("#!/bin/sh\necho swapped\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		src, err := h2.NewSource(p2, "seq", nil, connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		var ce *ChecksumError
		if err := src.Open(context.Background(), nil); !errors.As(err, &ce) {
			t.Fatalf("open = %v; want a checksum mismatch", err)
		}
	})
	t.Run("SidecarChecksumMismatch", func(t *testing.T) {
		dir := pluginDir(t, "seq")
		if err := os.WriteFile(filepath.Join(dir, "seq.sha256"), []byte(strings.Repeat("0", 64)+"  seq\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := h.Discover(context.Background(), dir)
		var ce *ChecksumError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Fatalf("discover = %v; want a checksum mismatch", err)
		}
	})
	t.Run("UnsupportedProtocol", func(t *testing.T) {
		_, err := h.Discover(context.Background(), pluginDir(t, "v2"))
		if !errors.Is(err, ErrUnsupportedProtocol) || !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "supports version 1") {
			t.Fatalf("inspect = %v; want an unsupported protocol error naming versions 2 and 1", err)
		}
	})
	t.Run("NotAPlugin", func(t *testing.T) {
		for name, script := range map[string]string{
			"exits":  "#!/bin/sh\nexit 3\n",
			"prints": "#!/bin/sh\necho some other program\n",
		} {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			pinFile(t, path)
			_, err := h.Discover(context.Background(), dir)
			if !errors.Is(err, ErrNotPlugin) || !errors.Is(err, connector.ErrPermanent) {
				t.Fatalf("%s: inspect = %v; want ErrNotPlugin, permanent", name, err)
			}
		}
	})
	t.Run("MissingGrantedEnv", func(t *testing.T) {
		_, err := h.NewSource(p, "seq", connector.Config{FieldEnv: []any{"SLUICE_TEST_SURELY_UNSET_VAR"}}, connector.Env{})
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != FieldEnv {
			t.Fatalf("new source = %v; want a config error on env", err)
		}
	})
	// After all of that, the host still runs plugins.
	src, err := h.NewSource(p, "seq", connector.Config{"count": int64(100)}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, src, nil, nil)); n != 100 {
		t.Fatalf("read %d, want 100", n)
	}
}

func TestHangingPlugin(t *testing.T) {
	m := &counters{}
	h := newHost(t, Options{CallTimeout: 500 * time.Millisecond, ReadWait: 100 * time.Millisecond,
		RestartBackoff: 10 * time.Millisecond, MaxRestarts: 2, Metrics: m})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	ctx := context.Background()

	t.Run("Open", func(t *testing.T) {
		src, err := h.NewSource(p, "seq", connector.Config{"hang": "open"}, connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		err = src.Open(ctx, nil)
		if !errors.Is(err, ErrPluginFailed) || !strings.Contains(err.Error(), "hangs") {
			t.Fatalf("open = %v; want a plugin failure saying it hangs", err)
		}
		_ = src.Close(ctx)
	})
	t.Run("Ack", func(t *testing.T) {
		src, err := h.NewSource(p, "seq", connector.Config{"hang": "ack", "count": int64(10), "batch": int64(2)}, connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		defer src.Close(ctx)
		before := m.Restarts("seq")
		// Every Ack hangs: the proxy kills the plugin, and the next Read restarts it strictly
		// after the acknowledged position, so the records still all arrive, once each.
		seen := map[int64]int{}
		for {
			recs, err := src.Read(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			for _, r := range recs {
				seen[r.Position.Offset]++
			}
			if err := src.Ack(ctx, []connector.Position{recs[len(recs)-1].Position}); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
		if len(seen) != 10 {
			t.Fatalf("saw %d records, want 10", len(seen))
		}
		for off, c := range seen {
			if c != 1 {
				t.Errorf("record %d seen %d times", off, c)
			}
		}
		if got := m.Restarts("seq") - before; got != 5 {
			t.Errorf("restarts = %d, want 5 (one per hung Ack)", got)
		}
	})
	t.Run("Read", func(t *testing.T) {
		// A source that never returns from Read is an idle source: Read waits for its caller.
		src, err := h.NewSource(p, "seq", connector.Config{"hang": "read"}, connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := src.Read(rctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read = %v; want the caller's deadline", err)
		}
		_ = src.Close(ctx)
	})
	t.Run("Write", func(t *testing.T) {
		snk, err := h.NewSink(p, "lines", connector.Config{"path": filepath.Join(t.TempDir(), "out"), "hang": true}, connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if err := snk.Open(ctx); err != nil {
			t.Fatal(err)
		}
		err = snk.Write(ctx, []connector.Record{{Value: []byte("x")}})
		if !errors.Is(err, ErrPluginFailed) || !strings.Contains(err.Error(), "hangs") {
			t.Fatalf("write = %v; want a plugin failure saying it hangs", err)
		}
		_ = snk.Close(ctx)
	})
	// The host is still up and other plugin connectors work.
	src, err := h.NewSource(p, "seq", connector.Config{"count": int64(50)}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, src, nil, nil)); n != 50 {
		t.Fatalf("read %d, want 50", n)
	}
}

// kill9 kills a process the test started (a plugin process of this test's host).
func kill9(t *testing.T, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatal("no plugin process to kill")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
}

func TestKill9Source(t *testing.T) {
	m := &counters{}
	h := newHost(t, Options{RestartBackoff: 20 * time.Millisecond, Metrics: m})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	const n = 200_000
	src, err := h.NewSource(p, "seq", connector.Config{"count": int64(n), "batch": int64(500)}, connector.Env{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	kills := map[int]bool{20: true, 150: true, 151: true}
	var ackedAtKill []int64
	owed := 0 // kills due while no process was running (its death not noticed yet)
	seen := readAll(t, src, nil, func(batch int, acked int64) {
		if kills[batch] {
			owed++
		}
		if pid := src.in.pid(); owed > 0 && pid != 0 {
			ackedAtKill = append(ackedAtKill, acked)
			kill9(t, pid)
			owed--
		}
	})
	if owed > 0 || len(ackedAtKill) != 3 {
		t.Fatalf("made %d of 3 kills", len(ackedAtKill))
	}
	if len(seen) != n {
		t.Fatalf("saw %d distinct records, want %d", len(seen), n)
	}
	for off, c := range seen {
		if off < 1 || off > n {
			t.Fatalf("unexpected offset %d", off)
		}
		if c > 1 {
			dupOK := false
			for _, a := range ackedAtKill {
				if off > a {
					dupOK = true
				}
			}
			if !dupOK {
				t.Fatalf("record %d seen %d times though it was acked before every kill", off, c)
			}
		}
	}
	if got := m.Restarts("seq"); got < 3 {
		t.Fatalf("restarts = %d, want at least 3", got)
	}
}

func TestKill9Sink(t *testing.T) {
	m := &counters{}
	h := newHost(t, Options{RestartBackoff: 20 * time.Millisecond, Metrics: m})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	path := filepath.Join(t.TempDir(), "out")
	snk, err := h.NewSink(p, "lines", connector.Config{"path": path}, connector.Env{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	const batches, size = 200, 250
	for b := range batches {
		batch := make([]connector.Record, size)
		for i := range batch {
			batch[i].Value = testconn.Value(int64(b*size+i), 8)
		}
		if b == 50 || b == 120 {
			kill9(t, snk.in.pid())
		}
		if err := snk.Write(ctx, batch); err != nil {
			t.Fatalf("write batch %d: %v", b, err)
		}
	}
	if err := snk.Close(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range readLines(t, path) {
		seen[string(r.Value)] = true
	}
	if len(seen) != batches*size {
		t.Fatalf("%d distinct records in the file, want %d", len(seen), batches*size)
	}
	if got := m.Restarts("seq"); got != 2 {
		t.Fatalf("restarts = %d, want 2", got)
	}
}

// A pinned plugin whose children hold its output pipes (a shell script running sleep) cannot hang
// discovery: the start fails with an error naming the plugin, and the host gets past it.
func TestPluginChildHoldsPipes(t *testing.T) {
	h := newHost(t, Options{StartTimeout: time.Second})
	for name, script := range map[string]string{
		"sleeper":     "#!/bin/sh\nsleep 1000\n",
		"backgrounds": "#!/bin/sh\nsleep 1000 &\nexit 0\n",
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		pinFile(t, path)
		_, err := h.Discover(context.Background(), dir)
		if !errors.Is(err, ErrNotPlugin) || !strings.Contains(err.Error(), "plugin "+name+":") {
			t.Fatalf("%s: discover = %v; want a not-a-plugin error naming %s", name, err, name)
		}
	}
}
