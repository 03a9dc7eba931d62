package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
)

// wasmStages builds WASM transform stages on one lazily created host shared by every pipeline of
// the supervisor, with its compilation cache under the data directory, and reports their
// counters as a Prometheus collector.
type wasmStages struct {
	dataDir string
	log     *slog.Logger

	mu       sync.Mutex
	host     *wasmhost.Host
	modPorts map[string][]string // module path → output ports
	stages   []namedStage        // every stage built, for metrics
}

// namedStage is the stage a pipeline's transform runs on, with the counters of the stages it
// ran on before (a pipeline restarted builds new stages: its counters go on from there).
type namedStage struct {
	pipeline, transform string
	stage               *wasmhost.Stage
	before              wasmhost.Stats
	beforeGuest         map[string]int64
}

// fold adds the current stage's counters to before: the stage is being replaced.
func (n *namedStage) fold() {
	x := n.stage.Stats()
	b := &n.before
	b.Traps += x.Traps
	b.Timeouts += x.Timeouts
	b.MemoryFaults += x.MemoryFaults
	b.GuestErrors += x.GuestErrors
	b.InvalidResults += x.InvalidResults
	b.Overruns += x.Overruns
	b.InstanceRestarts += x.InstanceRestarts
	b.Poison += x.Poison
	if n.beforeGuest == nil {
		n.beforeGuest = map[string]int64{}
	}
	for k, v := range n.stage.GuestCounters() {
		n.beforeGuest[k] += v
	}
}

func newWasmStages(dataDir string, log *slog.Logger) *wasmStages {
	return &wasmStages{dataDir: dataDir, log: log, modPorts: map[string][]string{}}
}

func (w *wasmStages) hostFor(ctx context.Context) (*wasmhost.Host, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.host != nil {
		return w.host, nil
	}
	cache := ""
	if w.dataDir != "" {
		cache = filepath.Join(w.dataDir, "wasm-cache")
	}
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: cache, Logger: w.log})
	if err != nil {
		return nil, err
	}
	w.host = h
	return h, nil
}

// load loads a transform's module and remembers its output ports.
func (w *wasmStages) load(ctx context.Context, t pipeline.Transform) (*wasmhost.Module, error) {
	h, err := w.hostFor(ctx)
	if err != nil {
		return nil, err
	}
	m, err := h.Load(ctx, t.Module, t.SHA256)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.modPorts[t.Module] = m.Meta().Ports
	w.mu.Unlock()
	return m, nil
}

// ports returns the output ports a transform's module declares.
func (w *wasmStages) ports(ctx context.Context, t pipeline.Transform) ([]string, error) {
	w.mu.Lock()
	ports, ok := w.modPorts[t.Module]
	w.mu.Unlock()
	if ok {
		return ports, nil
	}
	m, err := w.load(ctx, t)
	if err != nil {
		return nil, err
	}
	return m.Meta().Ports, nil
}

// CheckTransform reports what would keep a transform from running, without running it: its
// module does not load or export the ABI ("wasm"), does not match its pin ("sha256"), or a
// setting its stage would refuse ("config" breaking the module's config_schema, limits beyond
// what the host can give). It remembers the module's ports for Add's port check.
func (s *Supervisor) CheckTransform(ctx context.Context, pipelineName string, t pipeline.Transform) []Problem {
	problem := func(setting string, err error) Problem {
		return Problem{Pipeline: pipelineName, Kind: "transform", Component: t.Name, Setting: setting, Err: err}
	}
	m, err := s.wasm.load(ctx, t)
	if errors.Is(err, wasmhost.ErrDigestMismatch) {
		got := "another digest"
		if bin, rerr := os.ReadFile(t.Module); rerr == nil {
			sum := sha256.Sum256(bin)
			got = hex.EncodeToString(sum[:])
		}
		p := problem("sha256", fmt.Errorf("the module %s has sha256 %s, not the pinned %s", t.Module, got, t.SHA256))
		p.Hint = "pin the module you mean to run: sha256sum prints its digest"
		return []Problem{p}
	}
	if err != nil {
		return []Problem{problem("wasm", err)}
	}
	var out []Problem
	for _, c := range m.Check(stageConfig(t, nil)) {
		p := problem("limits."+c.Setting, errors.New(c.Message))
		switch c.Setting {
		case "config":
			p.Setting, p.Pointer = "config", c.Pointer
			p.Hint = "the module's config_schema says what it accepts: sluice transform inspect " + t.Module
		case "memory", "mode":
			p.Hint = c.Hint
		case "instances":
			p.Hint = fmt.Sprintf("give at most %d", wasmhost.MaxInstances)
		}
		out = append(out, p)
	}
	return out
}

// stageConfig is the WASM stage configuration of a transform, its defaults applied.
func stageConfig(t pipeline.Transform, log *slog.Logger) wasmhost.StageConfig {
	if t.Aggregate != nil && t.Limits.Instances == 0 {
		// The host calls an aggregate stage one batch at a time: one instance, and a spare
		// for a replacement, is all it uses.
		t.Limits.Instances = 1
	}
	t = t.WithDefaults()
	c := wasmhost.StageConfig{Name: t.Name, Config: t.Config, MemoryBytes: t.Limits.MemoryBytes,
		Timeout: t.Limits.Timeout, Mode: wasmhost.Mode(t.Limits.Mode), Instances: t.Limits.Instances, Fuel: t.Limits.Fuel, Logger: log}
	if t.Aggregate != nil {
		c.StateBytes = t.Aggregate.StateBytes
	}
	return c
}

// newStage is the engine's stage factory.
func (w *wasmStages) newStage(ctx context.Context, pipelineName string, t pipeline.Transform, log *slog.Logger) (transform.Stage, error) {
	h, err := w.hostFor(ctx)
	if err != nil {
		return nil, err
	}
	m, err := w.load(ctx, t)
	if err != nil {
		return nil, err
	}
	st, err := h.NewStage(ctx, m, stageConfig(t, log))
	if err != nil {
		return nil, stageError{withoutStagePrefix(err, t.Name)}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.stages {
		if n := &w.stages[i]; n.pipeline == pipelineName && n.transform == t.Name {
			n.fold()
			n.stage = st
			return st, nil
		}
	}
	w.stages = append(w.stages, namedStage{pipeline: pipelineName, transform: t.Name, stage: st})
	return st, nil
}

// withoutStagePrefix drops the `transform "NAME": ` with which wasmhost names the stage in its
// errors: the engine names the stage itself, and the message should say it once.
func withoutStagePrefix(err error, name string) error {
	inner := errors.Unwrap(err)
	if inner != nil && err.Error() == fmt.Sprintf("transform %q: %s", name, inner.Error()) {
		return inner
	}
	return err
}

// close closes the host, if one was created.
func (w *wasmStages) close(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.host == nil {
		return nil
	}
	err := w.host.Close(ctx)
	w.host = nil
	return err
}

var (
	wasmFailuresDesc = prometheus.NewDesc("sluice_wasm_failed_calls_total", "Failed guest calls of a WASM transform, by kind.", []string{"pipeline", "transform", "kind"}, nil)
	wasmRestartsDesc = prometheus.NewDesc("sluice_wasm_instance_restarts_total", "WASM instances discarded and replaced.", []string{"pipeline", "transform"}, nil)
	wasmPoisonDesc   = prometheus.NewDesc("sluice_wasm_poison_records_total", "Records isolated as poison by bisection.", []string{"pipeline", "transform"}, nil)
	wasmGuestDesc    = prometheus.NewDesc("sluice_wasm_guest_counter_total", "Counters a WASM transform reports through metric_add.", []string{"pipeline", "transform", "name"}, nil)
)

// Describe sends nothing: the stages and their guest counters are known only at run time, so
// the collector is unchecked.
func (w *wasmStages) Describe(chan<- *prometheus.Desc) {}

// Collect reports the counters of every stage built.
func (w *wasmStages) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	stages := append([]namedStage(nil), w.stages...)
	w.mu.Unlock()
	for _, s := range stages {
		st, b := s.stage.Stats(), s.before
		for kind, v := range map[string]uint64{"trap": st.Traps + b.Traps, "timeout": st.Timeouts + b.Timeouts, "memory": st.MemoryFaults + b.MemoryFaults,
			"guest_error": st.GuestErrors + b.GuestErrors, "invalid_result": st.InvalidResults + b.InvalidResults, "overrun": st.Overruns + b.Overruns} {
			ch <- prometheus.MustNewConstMetric(wasmFailuresDesc, prometheus.CounterValue, float64(v), s.pipeline, s.transform, kind)
		}
		ch <- prometheus.MustNewConstMetric(wasmRestartsDesc, prometheus.CounterValue, float64(st.InstanceRestarts+b.InstanceRestarts), s.pipeline, s.transform)
		ch <- prometheus.MustNewConstMetric(wasmPoisonDesc, prometheus.CounterValue, float64(st.Poison+b.Poison), s.pipeline, s.transform)
		guest := s.stage.GuestCounters()
		for name, v := range s.beforeGuest {
			guest[name] += v
		}
		for name, v := range guest {
			ch <- prometheus.MustNewConstMetric(wasmGuestDesc, prometheus.CounterValue, float64(v), s.pipeline, s.transform, name)
		}
	}
}
