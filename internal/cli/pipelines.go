package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// loaded is what `sluice run` and `sluice validate` share: the manifests loaded and their
// pipelines built (without I/O) on a supervisor, with every problem placed in the manifests.
type loaded struct {
	sup   *supervisor.Supervisor
	specs []*manifests.Pipeline
	diags manifests.Diagnostics
}

// loadPipelines loads the manifests at args and adds their pipelines to a new supervisor. The
// caller closes the supervisor (unless New failed: then err is set).
func (g *Globals) loadPipelines(ctx context.Context, log *slog.Logger, m *metrics.Metrics, o supervisor.Options, args []string) (*loaded, error) {
	return g.buildPipelines(ctx, log, m, o, func(opts manifests.LoadOptions) ([]*manifests.Pipeline, manifests.Diagnostics) {
		return manifests.Load(args, opts)
	})
}

// buildPipelines is loadPipelines with the manifests read by load.
func (g *Globals) buildPipelines(ctx context.Context, log *slog.Logger, m *metrics.Metrics, o supervisor.Options,
	load func(manifests.LoadOptions) ([]*manifests.Pipeline, manifests.Diagnostics)) (*loaded, error) {
	o.Catalog, o.Logger, o.Metrics, o.DataDir = g.Catalog, log, m, g.DataDir
	sup, err := supervisor.New(o)
	if err != nil {
		return nil, err
	}
	l := &loaded{sup: sup}
	l.specs, l.diags = load(manifests.LoadOptions{Catalog: g.Catalog, CheckModule: func(t *manifests.Transform) error {
		return transformError(t, append(sup.CheckStageKind(ctx, "", t.Transform), sup.CheckTransform(ctx, "", t.Transform)...))
	}, CheckComponent: func(kind connector.Kind, c *manifests.Component) error {
		if g.pluginHost == nil {
			return nil
		}
		return g.pluginHost.CheckConfig(kind, c.Type, c.Config)
	}})
	if len(l.diags) > 0 {
		return l, nil
	}
	configs := make([]*pipeline.Pipeline, len(l.specs))
	for i, s := range l.specs {
		configs[i] = s.Config()
	}
	l.diags = problemDiagnostics(sup.Add(ctx, configs...), l.specs)
	l.diags.Sort()
	return l, nil
}

// transformError turns the supervisor's problems with a transform into the manifest loader's
// errors: a *manifests.FieldError per setting, placed at its key. A problem of the module itself
// ("wasm") is placed at the wasm: value, or, when it comes with a hint (a module that does not
// fit its stage), at the wasm: key with the hint.
func transformError(t *manifests.Transform, problems []supervisor.Problem) error {
	var errs []error
	for _, p := range problems {
		switch p.Setting {
		case "wasm":
			if p.Hint == "" {
				errs = append(errs, p.Err)
				continue
			}
		}
		fe := &manifests.FieldError{Field: p.Setting, Msg: p.Err.Error(), Hint: p.Hint}
		switch p.Setting {
		case "config":
			fe.Field = manifests.ConfigField(p.Pointer)
		case "limits.memory":
			if t.Limits.MemoryBytes <= wasmhost.MaxMemoryBytes {
				break // below the module's own memory: the message and hint are the host's
			}
			fe.Msg = fmt.Sprintf("%s is more than the %s a wasm32 module can address", manifests.FormatByteSize(t.Limits.MemoryBytes), manifests.FormatByteSize(wasmhost.MaxMemoryBytes))
			fe.Hint = "give at most " + manifests.FormatByteSize(wasmhost.MaxMemoryBytes)
		}
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// problemDiagnostics places the supervisor's problems at their manifest positions.
func problemDiagnostics(problems []supervisor.Problem, specs []*manifests.Pipeline) manifests.Diagnostics {
	byName := map[string]*manifests.Pipeline{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	var diags manifests.Diagnostics
	for _, p := range problems {
		mp := byName[p.Pipeline]
		if mp == nil {
			diags = append(diags, manifests.Diagnostic{Message: p.Error(), Hint: p.Hint})
			continue
		}
		d := problemDiagnostic(p, mp)
		if d.Hint == "" {
			d.Hint = p.Hint
		}
		diags = append(diags, d)
	}
	return diags
}

func problemDiagnostic(p supervisor.Problem, mp *manifests.Pipeline) manifests.Diagnostic {
	switch p.Kind {
	case "source":
		return mp.Source.ErrorDiagnostic("source", p.Err)
	case "dead_letter":
		if mp.DeadLetter != nil {
			return mp.DeadLetter.ErrorDiagnostic("dead_letter", p.Err)
		}
	case "sink":
		for i := range mp.Sinks {
			s := &mp.Sinks[i]
			if s.Name != p.Component {
				continue
			}
			if p.Setting == "from" {
				return manifests.Diagnostic{Pos: s.Pos, Message: fmt.Sprintf("sink %q %v", s.Name, p.Err), Hint: p.Hint}
			}
			return s.Component.ErrorDiagnostic(fmt.Sprintf("sink %q", s.Name), p.Err)
		}
	case "transform":
		for _, t := range mp.Transforms {
			if t.Name == p.Component {
				return manifests.Diagnostic{Pos: t.WasmPos, Message: fmt.Sprintf("transform %q: %v", t.Name, p.Err), Hint: p.Hint}
			}
		}
	}
	return manifests.Diagnostic{Pos: mp.Pos, Message: p.Error(), Hint: p.Hint}
}
