package pluginhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pluginhost/internal/testconn"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// binDir holds the test plugin binaries, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		for name, pkg := range map[string]string{"seq": "./testdata/seqplugin", "v2": "./testdata/v2plugin"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "build test plugin %s: %v\n", name, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pluginDir returns a fresh directory holding copies of the named test plugins, each pinned by
// a NAME.sha256 file beside it.
func pluginDir(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(binDir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o755); err != nil {
			t.Fatal(err)
		}
		pinFile(t, filepath.Join(dir, n))
	}
	return dir
}

// pinFile writes path.sha256 the way sha256sum prints it.
func pinFile(t testing.TB, path string) {
	t.Helper()
	line := fileSum(t, path) + "  " + filepath.Base(path) + "\n"
	if err := os.WriteFile(path+".sha256", []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newHost(t testing.TB, opts Options) *Host {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	h := New(opts)
	t.Cleanup(h.Close)
	return h
}

func discoverOne(t testing.TB, h *Host, dir string) *Plugin {
	t.Helper()
	ps, err := h.Discover(context.Background(), dir)
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	if len(ps) != 1 {
		t.Fatalf("discovered %d plugins, want 1", len(ps))
	}
	return ps[0]
}

func TestDiscover(t *testing.T) {
	dir := pluginDir(t, "seq")
	notPlugin := filepath.Join(dir, "hello.sh")
	if err := os.WriteFile(notPlugin, []byte("#!/bin/sh\necho hello, I am no plugin\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pinFile(t, notPlugin)
	if err := os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not executable, ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, Options{})
	ps, err := h.Discover(context.Background(), dir)
	if !errors.Is(err, ErrNotPlugin) || !strings.Contains(err.Error(), "hello.sh") || !strings.Contains(err.Error(), "not a Sluice connector plugin") {
		t.Fatalf("discover error = %v; want a not-a-plugin error naming hello.sh", err)
	}
	if len(ps) != 1 {
		t.Fatalf("discovered %d plugins, want the seq plugin despite the bad binary", len(ps))
	}
	p := ps[0]
	want := fileSum(t, filepath.Join(dir, "seq"))
	if p.Name != "seq" || p.Version != "1.2.3" || p.Protocol != 1 || p.SHA256 != want {
		t.Fatalf("plugin = %+v", p)
	}
	var names []string
	for _, s := range p.Specs {
		names = append(names, string(s.Kind)+":"+s.Name)
	}
	if got := strings.Join(names, ","); got != "source:seq,sink:lines,sink:discard" {
		t.Fatalf("specs = %s", got)
	}
	f, ok := p.Specs[0].Field("count")
	if !ok || f.Default != int64(1000) || f.Type != connector.TypeInt {
		t.Fatalf("count field = %+v, want int default 1000", f)
	}
}

// An executable that nothing pins is never started: not by Discover, whatever it is. A pin in
// Options.Pins or AllowUnpinned lets it run.
func TestDiscoverRunsNothingUnpinned(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(t.TempDir(), "started")
	script := filepath.Join(dir, "intruder")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch '"+marker+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := fileSum(t, script)
	started := func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}
	ps, err := newHost(t, Options{}).Discover(context.Background(), dir)
	var ue *UnpinnedError
	if len(ps) != 0 || !errors.As(err, &ue) || !errors.Is(err, ErrUnpinned) || ue.SHA256 != sum || !strings.Contains(err.Error(), "intruder") {
		t.Fatalf("discover = %v, %v; want an unpinned error naming intruder and its sum", ps, err)
	}
	if started() {
		t.Fatal("discovery started an unpinned executable")
	}
	for name, opts := range map[string]Options{"pins": {Pins: []string{strings.ToUpper(sum)}}, "allow": {AllowUnpinned: true}} {
		os.Remove(marker)
		_, err := newHost(t, opts).Discover(context.Background(), dir)
		if !errors.Is(err, ErrNotPlugin) || !started() {
			t.Fatalf("%s: discover = %v, started %v; want the script run and refused as no plugin", name, err, started())
		}
	}
}

func fileSum(t testing.TB, path string) string {
	s, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRegister(t *testing.T) {
	h := newHost(t, Options{})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	cat, _ := catalog.New()
	if err := h.Register(cat, []*Plugin{p}); err != nil {
		t.Fatalf("register: %v", err)
	}
	c, ok := cat.Lookup(connector.KindSource, "plugin:seq")
	if !ok {
		t.Fatal("plugin:seq is not registered")
	}
	for _, f := range []string{"count", FieldSHA256, FieldEnv} {
		if _, ok := c.Spec.Field(f); !ok {
			t.Errorf("registered spec lacks field %q", f)
		}
	}
	if err := h.Register(cat, []*Plugin{p}); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("second register = %v; want already registered", err)
	}
	// The registered factory builds a working proxy.
	src, err := c.NewSource(connector.Config{"count": int64(10)}, connector.Env{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, src, nil, nil)
	if len(got) != 10 {
		t.Fatalf("read %d records through the registered factory, want 10", len(got))
	}
}

// readAll opens src, reads to EOF acking every batch, calls after(batchNo) after each batch, and
// returns the count of every record offset seen.
func readAll(t *testing.T, src connector.Source, resume []connector.Position, after func(batch int, acked int64)) map[int64]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := src.Open(ctx, resume); err != nil {
		t.Fatalf("open: %v", err)
	}
	defer src.Close(ctx)
	seen := map[int64]int{}
	for b := 0; ; b++ {
		recs, err := src.Read(ctx)
		if errors.Is(err, io.EOF) {
			return seen
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		for _, r := range recs {
			seen[r.Position.Offset]++
		}
		last := recs[len(recs)-1].Position
		if err := src.Ack(ctx, []connector.Position{last}); err != nil {
			t.Fatalf("ack: %v", err)
		}
		if after != nil {
			after(b, last.Offset)
		}
	}
}

func TestConformanceOverPlugin(t *testing.T) {
	h := newHost(t, Options{})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	env := connector.Env{Pipeline: "t", Component: "c", Logger: testLogger(t)}
	t.Run("Source", func(t *testing.T) {
		conntest.TestSource(t, conntest.SourceHarness{
			Records: 2000,
			Setup: func(t *testing.T, n int) conntest.SourceFactory {
				return func() (connector.Source, error) {
					return h.NewSource(p, "seq", connector.Config{"count": int64(n), "batch": int64(300)}, env)
				}
			},
			Broken: func(t *testing.T) (connector.Source, error) {
				return h.NewSource(p, "seq", connector.Config{"fail_open": true}, env)
			},
		})
	})
	t.Run("Sink", func(t *testing.T) {
		conntest.TestSink(t, conntest.SinkHarness{
			Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
				path := filepath.Join(t.TempDir(), "out")
				return func() (connector.Sink, error) {
						return h.NewSink(p, "lines", connector.Config{"path": path}, env)
					}, func(t *testing.T) []connector.Record {
						return readLines(t, path)
					}
			},
			Broken: func(t *testing.T) (connector.Sink, error) {
				return h.NewSink(p, "lines", connector.Config{"path": filepath.Join(t.TempDir(), "missing", "out")}, env)
			},
			Poison: func(i int) connector.Record { return connector.Record{Value: fmt.Appendf(nil, "poison %d", i)} },
		})
	})
}

func readLines(t *testing.T, path string) []connector.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	defer f.Close()
	var out []connector.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, connector.Record{Value: []byte(sc.Text())})
	}
	return out
}

// Write splits a batch into chunks and maps per-record failures back to the caller's indexes.
func TestSinkChunksKeepIndexes(t *testing.T) {
	h := newHost(t, Options{WriteChunkBytes: 1000})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	path := filepath.Join(t.TempDir(), "out")
	snk, err := h.NewSink(p, "lines", connector.Config{"path": path}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer snk.Close(ctx)
	batch := make([]connector.Record, 200) // ~80 bytes each: about 13 records per chunk
	poison := map[int]bool{0: true, 13: true, 14: true, 99: true, 199: true}
	for i := range batch {
		batch[i].Value = fmt.Appendf(nil, "record %d", i)
		if poison[i] {
			batch[i].Value = fmt.Appendf(nil, "poison %d", i)
		}
	}
	err = snk.Write(ctx, batch)
	var be *connector.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("write = %v, want a BatchError", err)
	}
	var got []string
	for _, f := range be.Failed {
		got = append(got, fmt.Sprint(f.Index))
		if !strings.Contains(f.Err.Error(), "poison") {
			t.Errorf("failure %d: %v", f.Index, f.Err)
		}
	}
	if strings.Join(got, ",") != "0,13,14,99,199" {
		t.Fatalf("failed indexes %v, want 0,13,14,99,199", got)
	}
	if n := len(readLines(t, path)); n != 195 {
		t.Fatalf("%d lines written, want 195", n)
	}
}

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
	m := &Counters{}
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
	m := &Counters{}
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
		if pid := src.Pid(); owed > 0 && pid != 0 {
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
	m := &Counters{}
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
			kill9(t, snk.Pid())
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
	var buf syncBuffer
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

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A record too large for one protocol message fails on its own; the rest of the batch is written.
func TestSinkOversizedRecord(t *testing.T) {
	h := newHost(t, Options{})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	path := filepath.Join(t.TempDir(), "out")
	snk, err := h.NewSink(p, "lines", connector.Config{"path": path}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer snk.Close(ctx)
	batch := []connector.Record{{Value: []byte("a")}, {Value: []byte("poison x")}, {Value: make([]byte, maxRecordBytes+1)}, {Value: []byte("b")}}
	err = snk.Write(ctx, batch)
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
		pids = append(pids, src.Pid())
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
