// Package wasmhost runs Sluice WASM transforms (sdk/abi/v1/ABI.md) on wazero.
//
// A Host owns the compilation cache and one wazero Runtime per (memory limit, mode) pair, because
// wazero applies both runtime-wide. Load compiles a module once per sha256 digest, checks its
// exports, imports and ABI version and reads its metadata. NewStage builds a transform stage: a
// pre-warmed pool of instances, each initialised with the stage's config, that implements
// runtime/transform.Stage with one guest call per frame, a deadline per call, and retry plus
// bisection so only poison records come back as rejects.
//
// Guests get no filesystem, network, environment, arguments or real clock: WASI is linked with
// nothing granted (fake clocks, deterministic random), stdout and stderr go to slog.
package wasmhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Errors a module can fail Load with; test them with errors.Is.
var (
	// ErrDigestMismatch: the file's sha256 differs from the pinned one.
	ErrDigestMismatch = errors.New("sha256 mismatch")
	// ErrNotTransform: the module does not export the transform ABI or imports something the
	// host does not provide.
	ErrNotTransform = errors.New("not a Sluice transform")
	// ErrABIVersion: the module reports an ABI version this host does not support.
	ErrABIVersion = errors.New("unsupported ABI version")
	// ErrBadMeta: tf_meta returned metadata that breaks ABI.md section 8.
	ErrBadMeta = errors.New("invalid metadata")
	// ErrClosed: the host or stage was closed.
	ErrClosed = errors.New("closed")
)

// Options configure a Host.
type Options struct {
	// CacheDir is the compilation cache directory (usually DATA_DIR/wasm-cache), created if
	// missing. Empty means an in-memory cache that lives as long as the Host.
	CacheDir string
	// Logger receives host and guest logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Host loads modules and builds stages. All methods are safe for concurrent use.
type Host struct {
	log   *slog.Logger
	cache wazero.CompilationCache

	mu      sync.Mutex
	closed  bool
	groups  map[groupKey]*group
	modules map[string]*loadEntry // by digest
	stages  map[*Stage]struct{}
}

type loadEntry struct {
	done chan struct{}
	m    *Module
	err  error
}

// groupKey identifies a wazero Runtime: memory limit and interruptibility are runtime-wide.
// Metered and trusted stages share runtimes: neither uses wazero's interruption.
type groupKey struct {
	pages  uint32
	strict bool
}

func (m Mode) valid() bool { return m == Metered || m == Strict || m == Trusted }

type group struct {
	key groupKey
	rt  wazero.Runtime

	mu       sync.Mutex
	compiled map[string]wazero.CompiledModule
}

// New creates a host. It does no guest work; it fails only when the cache directory cannot be
// created.
func New(ctx context.Context, o Options) (*Host, error) {
	h := &Host{log: o.Logger, groups: map[groupKey]*group{}, modules: map[string]*loadEntry{}, stages: map[*Stage]struct{}{}}
	if h.log == nil {
		h.log = slog.Default()
	}
	if o.CacheDir != "" {
		if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("wasm host: cache dir: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(o.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm host: cache dir: %w", err)
		}
		h.cache = c
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	return h, nil
}

// Close closes every stage, runtime and instance the host created; later calls fail with
// ErrClosed. Calls running in trusted mode cannot be interrupted; Close does not wait for them.
// Idempotent.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	groups := h.groups
	h.groups = nil
	stages := make([]*Stage, 0, len(h.stages))
	for s := range h.stages {
		stages = append(stages, s)
	}
	h.mu.Unlock()
	var errs []error
	for _, s := range stages {
		errs = append(errs, s.Close(ctx))
	}
	for _, g := range groups {
		errs = append(errs, g.rt.Close(ctx))
	}
	errs = append(errs, h.cache.Close(ctx))
	return errors.Join(errs...)
}

func (h *Host) track(s *Stage) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("wasm host: %w", ErrClosed)
	}
	h.stages[s] = struct{}{}
	return nil
}

func (h *Host) untrack(s *Stage) {
	h.mu.Lock()
	delete(h.stages, s)
	h.mu.Unlock()
}

// group returns the runtime for key, creating it on first use.
func (h *Host) group(ctx context.Context, key groupKey) (*group, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("wasm host: %w", ErrClosed)
	}
	if g := h.groups[key]; g != nil {
		return g, nil
	}
	cfg := wazero.NewRuntimeConfig(). // the compiler engine where wazero supports it (amd64, arm64)
						WithCompilationCache(h.cache).
						WithMemoryLimitPages(key.pages).
						WithCloseOnContextDone(key.strict)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm host: instantiate wasi: %w", err)
	}
	if err := instantiateHostModules(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm host: %w", err)
	}
	if err := instantiateMeter(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm host: %w", err)
	}
	g := &group{key: key, rt: rt, compiled: map[string]wazero.CompiledModule{}}
	h.groups[key] = g
	return g, nil
}

// compile returns the module compiled for this runtime, key naming bin (the digest, with
// "/metered" for the rewritten module); the shared cache makes every compile after the first
// cheap.
func (g *group) compile(ctx context.Context, key string, bin []byte) (wazero.CompiledModule, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cm := g.compiled[key]; cm != nil {
		return cm, nil
	}
	cm, err := g.rt.CompileModule(ctx, bin)
	if err != nil {
		return nil, err
	}
	g.compiled[key] = cm
	return cm, nil
}

// Load reads, verifies and compiles the module at path. A non-empty pin must equal the file's
// sha256 (hex, case-insensitive, optional "sha256:" prefix). A module is compiled and probed once
// per digest; later loads of the same bytes return the same *Module. Load instantiates the module
// once (strict mode, default limits) to call tf_abi_version and tf_meta. Errors name the path and
// wrap ErrDigestMismatch, ErrNotTransform, ErrABIVersion or ErrBadMeta where they apply.
func (h *Host) Load(ctx context.Context, path, pin string) (*Module, error) {
	bin, err := readModule(path)
	if err != nil {
		return nil, fmt.Errorf("load module: %w", err)
	}
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])
	if pin != "" {
		want := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(pin), "sha256:"))
		if want != digest {
			return nil, fmt.Errorf("load module %s: %w: pinned %s, file has %s", path, ErrDigestMismatch, want, digest)
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("load module %s: %w", path, ErrClosed)
	}
	if e := h.modules[digest]; e != nil {
		h.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("load module %s: %w", path, ctx.Err())
		}
		if e.err != nil {
			return nil, fmt.Errorf("load module %s: %w", path, e.err)
		}
		return e.m, nil
	}
	e := &loadEntry{done: make(chan struct{})}
	h.modules[digest] = e
	h.mu.Unlock()

	e.m, e.err = h.load(ctx, digest, bin)
	if e.err != nil {
		h.mu.Lock()
		delete(h.modules, digest)
		h.mu.Unlock()
	}
	close(e.done)
	if e.err != nil {
		return nil, fmt.Errorf("load module %s: %w", path, e.err)
	}
	return e.m, nil
}

// MaxModuleBytes bounds the size of a module file (ABI.md section 11). Real modules are far
// smaller (a Go transform is a few MiB); the cap keeps a wrong path or a bogus file from being read
// whole into memory.
const MaxModuleBytes = 256 << 20

// readModule reads the module file at path, refusing one over MaxModuleBytes before reading it
// (or, when its size is not known in advance, as soon as it has read more).
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tooBig := func(n int64) error {
		return fmt.Errorf("%s: %d bytes, more than the %d bytes (256MiB) a module may have", path, n, int64(MaxModuleBytes))
	}
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if size = fi.Size(); size > MaxModuleBytes {
			return nil, tooBig(size)
		}
	}
	bin, err := io.ReadAll(io.LimitReader(f, MaxModuleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(bin) > MaxModuleBytes {
		return nil, fmt.Errorf("%s: more than the %d bytes (256MiB) a module may have", path, int64(MaxModuleBytes))
	}
	return bin, nil
}
