package supervisor

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

// CheckStageKind reports a module that does not fit its stage: a plain module in an aggregate
// stage (pipeline.Transform.Aggregate set), an aggregate module (meta kinds lists aggregate) in a
// plain one, or session windows with an aggregate module that cannot merge states. It reports
// nothing when the module does not load: CheckTransform says why.
func (s *Supervisor) CheckStageKind(ctx context.Context, pipelineName string, t pipeline.Transform) []Problem {
	m, err := s.wasm.load(ctx, t)
	if err != nil {
		return nil
	}
	return stageKindProblems(pipelineName, t, m.Meta().IsAggregate(), m.CanMerge())
}

// stageKindProblems is CheckStageKind for a module that is (or is not) an aggregate module and
// can (or cannot) merge states.
func stageKindProblems(pipelineName string, t pipeline.Transform, isAggregate, canMerge bool) []Problem {
	problem := func(setting, hint string, err error) []Problem {
		return []Problem{{Pipeline: pipelineName, Kind: "transform", Component: t.Name, Setting: setting, Err: err, Hint: hint}}
	}
	switch {
	case t.Aggregate != nil && !isAggregate:
		return problem("wasm", "an aggregate: stage runs a module whose kinds list aggregate; `sluice transform inspect "+t.Module+"` prints a module's kinds",
			fmt.Errorf("module %s is not an aggregate module (ABI 1.1, kinds: aggregate); use it as a transform with wasm:", t.Module))
	case t.Aggregate == nil && isAggregate:
		return problem("wasm", "aggregate: {wasm: PATH, key: ..., time: ..., window: ...} runs it with keys, windows and state kept by the runtime",
			fmt.Errorf("module %s is an aggregate module; use it under aggregate:", t.Module))
	case t.Aggregate != nil && t.Aggregate.Session > 0 && !canMerge:
		return problem("aggregate.window.session", "use tumbling or hopping windows, or a module that exports tf_agg_merge",
			fmt.Errorf("session windows need a module that merges states, and module %s does not export tf_agg_merge", t.Module))
	}
	return nil
}
