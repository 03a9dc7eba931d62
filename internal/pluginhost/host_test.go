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
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/catalog"
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
	snk, path := openLines(t, Options{WriteChunkBytes: 1000}, nil)
	ctx := context.Background()
	batch := make([]connector.Record, 200) // ~80 bytes each: about 13 records per chunk
	poison := map[int]bool{0: true, 13: true, 14: true, 99: true, 199: true}
	for i := range batch {
		batch[i].Value = fmt.Appendf(nil, "record %d", i)
		if poison[i] {
			batch[i].Value = fmt.Appendf(nil, "poison %d", i)
		}
	}
	err := snk.Write(ctx, batch)
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
