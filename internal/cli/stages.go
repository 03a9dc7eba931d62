package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/runtime/wasmhost"
)

// stageFactory builds WASM transform stages on one lazily created host shared by all pipelines
// of the process, with its compilation cache under the data directory.
type stageFactory struct {
	g    *Globals
	log  *slog.Logger
	mu   sync.Mutex
	host *wasmhost.Host
}

func newStageFactory(g *Globals, log *slog.Logger) *stageFactory {
	return &stageFactory{g: g, log: log}
}

func (f *stageFactory) hostFor(ctx context.Context) (*wasmhost.Host, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.host != nil {
		return f.host, nil
	}
	cache := ""
	if f.g.DataDir != "" {
		cache = filepath.Join(f.g.DataDir, "wasm-cache")
	}
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: cache, Logger: f.log})
	if err != nil {
		return nil, err
	}
	f.host = h
	return h, nil
}

// Check is the manifest loader's module check: the module loads, exports ABI v1 and matches its pin.
func (f *stageFactory) Check(t *manifests.Transform) error {
	h, err := f.hostFor(context.Background())
	if err != nil {
		return err
	}
	_, err = h.Load(context.Background(), t.Wasm, t.SHA256)
	return err
}

// New builds the stage of one transform.
func (f *stageFactory) New(ctx context.Context, t manifests.Transform, log *slog.Logger) (transform.Stage, error) {
	h, err := f.hostFor(ctx)
	if err != nil {
		return nil, err
	}
	m, err := h.Load(ctx, t.Wasm, t.SHA256)
	if err != nil {
		return nil, err
	}
	cfg := []byte("{}")
	if t.Config != nil {
		if cfg, err = json.Marshal(t.Config); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	mode := wasmhost.Mode(t.Limits.Mode)
	st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: t.Name, Config: cfg, MemoryBytes: t.Limits.MemoryBytes,
		Timeout: t.Limits.Timeout, Mode: mode, Instances: t.Limits.Instances})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Close closes the host, if one was created.
func (f *stageFactory) Close(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.host == nil {
		return nil
	}
	err := f.host.Close(ctx)
	f.host = nil
	return err
}
