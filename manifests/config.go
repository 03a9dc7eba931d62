package manifests

import "github.com/sluicehq/sluice/runtime/pipeline"

// Config returns the runtime configuration of the pipeline (package runtime/pipeline): what the
// supervisor and the engine run from, without the manifest's positions.
func (p *Pipeline) Config() *pipeline.Pipeline {
	out := &pipeline.Pipeline{
		Name:         p.Name,
		Labels:       p.Labels,
		Source:       p.Source.Component,
		FailureLimit: p.FailureLimit,
		Delivery:     p.Delivery,
		Batch:        p.Batch,
		Buffer:       p.Buffer,
		Lease:        p.Lease,
	}
	for _, t := range p.Transforms {
		out.Transforms = append(out.Transforms, t.Transform)
	}
	for _, s := range p.Sinks {
		out.Sinks = append(out.Sinks, pipeline.Sink{Component: s.Component.Component, Name: s.Name, From: s.From, Batch: s.Batch})
	}
	if p.DeadLetter != nil {
		c := p.DeadLetter.Component
		out.DeadLetter = &c
	}
	return out
}
