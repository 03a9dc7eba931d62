package connector

import "fmt"

// SourceFactory builds a source from its validated configuration (defaults applied, types checked
// against the spec). It must not do I/O: that belongs in Source.Open.
type SourceFactory func(cfg Config, env Env) (Source, error)

// SinkFactory builds a sink from its validated configuration. It must not do I/O.
type SinkFactory func(cfg Config, env Env) (Sink, error)

// Component is one source or sink as the runtime knows it: its spec and the factory that builds
// it. The same value registers a connector compiled into the sluice binary (in a catalog) and
// one served by a plugin binary (sdk/go/plugin), so one connector package serves both ways.
// Exactly one of NewSource and NewSink is set, matching Spec.Kind.
type Component struct {
	Spec      Spec
	NewSource SourceFactory
	NewSink   SinkFactory
}

// SourceComponent is the component of a source; it sets Spec.Kind.
func SourceComponent(spec Spec, f SourceFactory) Component {
	spec.Kind = KindSource
	return Component{Spec: spec, NewSource: f}
}

// SinkComponent is the component of a sink; it sets Spec.Kind.
func SinkComponent(spec Spec, f SinkFactory) Component {
	spec.Kind = KindSink
	return Component{Spec: spec, NewSink: f}
}

// Check reports an incomplete component: no name, no factory, or a factory that does not match
// its kind.
func (c Component) Check() error {
	switch {
	case c.Spec.Name == "":
		return fmt.Errorf("component of kind %q has no name", c.Spec.Kind)
	case c.Spec.Kind == KindSource && (c.NewSource == nil || c.NewSink != nil):
		return fmt.Errorf("source %q must set NewSource and only it", c.Spec.Name)
	case c.Spec.Kind == KindSink && (c.NewSink == nil || c.NewSource != nil):
		return fmt.Errorf("sink %q must set NewSink and only it", c.Spec.Name)
	case c.Spec.Kind != KindSource && c.Spec.Kind != KindSink:
		return fmt.Errorf("component %q has unknown kind %q", c.Spec.Name, c.Spec.Kind)
	}
	return nil
}
