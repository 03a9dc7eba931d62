package manifests

import "github.com/sluicehq/sluice/runtime/pipeline"

// Config returns the runtime configuration of the pipeline (package runtime/pipeline): what the
// supervisor and the engine run from, without the manifest's positions. Transform configs are
// their ConfigJSON bytes.
func (p *Pipeline) Config() *pipeline.Pipeline {
	out := &pipeline.Pipeline{
		Name:         p.Name,
		Labels:       p.Labels,
		Source:       p.Source.config(),
		FailureLimit: p.FailureLimit,
		Delivery:     p.Delivery,
		Batch:        p.Batch,
		Buffer:       p.Buffer,
	}
	for i := range p.Transforms {
		out.Transforms = append(out.Transforms, p.Transforms[i].RuntimeConfig())
	}
	for _, s := range p.Sinks {
		out.Sinks = append(out.Sinks, pipeline.Sink{Component: s.Component.config(), Name: s.Name, From: s.From})
	}
	if p.DeadLetter != nil {
		c := p.DeadLetter.config()
		out.DeadLetter = &c
	}
	return out
}

func (c *Component) config() pipeline.Component {
	return pipeline.Component{Type: c.Type, Config: c.Config, Secrets: c.Secrets}
}

// RuntimeConfig returns the runtime configuration of the transform; its Config is ConfigJSON.
func (t *Transform) RuntimeConfig() pipeline.Transform {
	return pipeline.Transform{Name: t.Name, Module: t.Wasm, SHA256: t.SHA256, Config: t.ConfigJSON, Limits: t.Limits, OnReject: t.OnReject}
}
