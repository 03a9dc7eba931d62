package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/runtime/wasmhost"
)

// stageFactory builds WASM transform stages on one lazily created host shared by all pipelines
// of the process, with its compilation cache under the data directory.
type stageFactory struct {
	g      *Globals
	log    *slog.Logger
	mu     sync.Mutex
	host   *wasmhost.Host
	ports  map[string][]string // module path → output ports, from the modules checked
	stages []namedStage        // every stage built, for metrics
}

type namedStage struct {
	pipeline, transform string
	stage               *wasmhost.Stage
}

func newStageFactory(g *Globals, log *slog.Logger) *stageFactory {
	return &stageFactory{g: g, log: log, ports: map[string][]string{}}
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

// Check is the manifest loader's module check: the module loads, exports ABI v1 and matches its
// pin, and the transform's config and limits are ones NewStage accepts. Problems with a setting
// come back as *manifests.FieldError, so validate and run report them at the setting's line.
func (f *stageFactory) Check(t *manifests.Transform) error {
	h, err := f.hostFor(context.Background())
	if err != nil {
		return err
	}
	m, err := h.Load(context.Background(), t.Wasm, t.SHA256)
	if errors.Is(err, wasmhost.ErrDigestMismatch) {
		got := "another digest"
		if bin, rerr := os.ReadFile(t.Wasm); rerr == nil {
			sum := sha256.Sum256(bin)
			got = hex.EncodeToString(sum[:])
		}
		return &manifests.FieldError{Field: "sha256", Msg: fmt.Sprintf("the module %s has sha256 %s, not the pinned %s", t.Wasm, got, t.SHA256),
			Hint: "pin the module you mean to run: sha256sum prints its digest"}
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.ports[t.Wasm] = m.Meta().Ports
	f.mu.Unlock()
	var errs []error
	pt := pipeline.Transform{Name: t.Name, Module: t.Wasm, SHA256: t.SHA256, Config: t.ConfigJSON, Limits: t.Limits}
	for _, p := range m.Check(stageConfig(pt, nil)) {
		fe := &manifests.FieldError{Field: "limits." + p.Setting, Msg: p.Message}
		switch p.Setting {
		case "config":
			fe.Field = manifests.ConfigField(p.Pointer)
			fe.Hint = "the module's config_schema says what it accepts: sluice transform inspect " + t.Wasm
		case "memory":
			fe.Msg = fmt.Sprintf("%s is more than the %s a wasm32 module can address", manifests.FormatByteSize(t.Limits.MemoryBytes), manifests.FormatByteSize(wasmhost.MaxMemoryBytes))
			fe.Hint = "give at most " + manifests.FormatByteSize(wasmhost.MaxMemoryBytes)
		case "instances":
			fe.Hint = fmt.Sprintf("give at most %d", wasmhost.MaxInstances)
		}
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// stageConfig is the WASM stage configuration of a manifest transform.
func stageConfig(t pipeline.Transform, log *slog.Logger) wasmhost.StageConfig {
	cfg := t.Config // passed as written in the manifest (ABI.md: what the guest receives)
	if len(cfg) == 0 {
		cfg = []byte("{}")
	}
	return wasmhost.StageConfig{Name: t.Name, Config: cfg, MemoryBytes: t.Limits.MemoryBytes,
		Timeout: t.Limits.Timeout, Mode: wasmhost.Mode(t.Limits.Mode), Instances: t.Limits.Instances, Logger: log}
}

// CheckPorts reports sinks reading a port that no transform of their pipeline declares. It uses
// the ports of the modules Check loaded.
func (f *stageFactory) CheckPorts(specs []*manifests.Pipeline) manifests.Diagnostics {
	f.mu.Lock()
	defer f.mu.Unlock()
	var diags manifests.Diagnostics
	for _, p := range specs {
		known := map[string]bool{manifests.DefaultPort: true}
		var names []string
		for _, t := range p.Transforms {
			for _, port := range f.ports[t.Wasm] {
				if !known[port] {
					names = append(names, port)
				}
				known[port] = true
			}
		}
		for _, s := range p.Sinks {
			if s.From != "" && !known[s.From] {
				hint := "no transform of this pipeline declares output ports other than main"
				if len(names) > 0 {
					hint = fmt.Sprintf("ports declared by the transforms: main, %s", strings.Join(names, ", "))
				}
				diags = append(diags, manifests.Diagnostic{Pos: s.Pos, Message: fmt.Sprintf("sink %q reads port %q, which no transform emits", s.Name, s.From), Hint: hint})
			}
		}
	}
	return diags
}

// New builds the stage of one transform.
func (f *stageFactory) New(ctx context.Context, pipelineName string, t pipeline.Transform, log *slog.Logger) (transform.Stage, error) {
	h, err := f.hostFor(ctx)
	if err != nil {
		return nil, err
	}
	m, err := h.Load(ctx, t.Module, t.SHA256)
	if err != nil {
		return nil, err
	}
	st, err := h.NewStage(ctx, m, stageConfig(t, log))
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.stages = append(f.stages, namedStage{pipeline: pipelineName, transform: t.Name, stage: st})
	f.mu.Unlock()
	return st, nil
}

var (
	wasmFailuresDesc = prometheus.NewDesc("sluice_wasm_failed_calls_total", "Failed guest calls of a WASM transform, by kind.", []string{"pipeline", "transform", "kind"}, nil)
	wasmRestartsDesc = prometheus.NewDesc("sluice_wasm_instance_restarts_total", "WASM instances discarded and replaced.", []string{"pipeline", "transform"}, nil)
	wasmPoisonDesc   = prometheus.NewDesc("sluice_wasm_poison_records_total", "Records isolated as poison by bisection.", []string{"pipeline", "transform"}, nil)
	wasmGuestDesc    = prometheus.NewDesc("sluice_wasm_guest_counter_total", "Counters a WASM transform reports through metric_add.", []string{"pipeline", "transform", "name"}, nil)
)

// Describe sends nothing: the stages and their guest counters are known only at run time, so
// the collector is unchecked.
func (f *stageFactory) Describe(chan<- *prometheus.Desc) {}

// Collect reports the counters of every stage built.
func (f *stageFactory) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	stages := append([]namedStage(nil), f.stages...)
	f.mu.Unlock()
	for _, s := range stages {
		st := s.stage.Stats()
		for kind, v := range map[string]uint64{"trap": st.Traps, "timeout": st.Timeouts, "memory": st.MemoryFaults,
			"guest_error": st.GuestErrors, "invalid_result": st.InvalidResults, "overrun": st.Overruns} {
			ch <- prometheus.MustNewConstMetric(wasmFailuresDesc, prometheus.CounterValue, float64(v), s.pipeline, s.transform, kind)
		}
		ch <- prometheus.MustNewConstMetric(wasmRestartsDesc, prometheus.CounterValue, float64(st.InstanceRestarts), s.pipeline, s.transform)
		ch <- prometheus.MustNewConstMetric(wasmPoisonDesc, prometheus.CounterValue, float64(st.Poison), s.pipeline, s.transform)
		for name, v := range s.stage.GuestCounters() {
			ch <- prometheus.MustNewConstMetric(wasmGuestDesc, prometheus.CounterValue, float64(v), s.pipeline, s.transform, name)
		}
	}
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
