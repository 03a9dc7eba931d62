package cli

import (
	"context"
	"fmt"
	"log/slog"
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

// Check is the manifest loader's module check: the module loads, exports ABI v1 and matches its pin.
func (f *stageFactory) Check(t *manifests.Transform) error {
	h, err := f.hostFor(context.Background())
	if err != nil {
		return err
	}
	m, err := h.Load(context.Background(), t.Wasm, t.SHA256)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.ports[t.Wasm] = m.Meta().Ports
	f.mu.Unlock()
	return nil
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
	mode := wasmhost.Mode(t.Limits.Mode)
	st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: t.Name, Config: t.Config, MemoryBytes: t.Limits.MemoryBytes,
		Timeout: t.Limits.Timeout, Mode: mode, Instances: t.Limits.Instances, Logger: log})
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
