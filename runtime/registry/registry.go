// Package registry is the one place where sources and sinks make themselves known to the runtime.
//
// Every built-in connector registers in its package's init function; the manifest loader, the
// JSON Schema generator, `sluice components` and `sluice docs` read from here. Plugins discovered at
// run time are added with the same calls.
package registry

import (
	"fmt"
	"sort"
	"sync"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// SourceFactory builds a source from its validated configuration. It must not do I/O.
type SourceFactory func(cfg connector.Config, env connector.Env) (connector.Source, error)

// SinkFactory builds a sink from its validated configuration. It must not do I/O.
type SinkFactory func(cfg connector.Config, env connector.Env) (connector.Sink, error)

// Component is one registered source or sink.
type Component struct {
	Spec      connector.Spec
	NewSource SourceFactory // set for sources
	NewSink   SinkFactory   // set for sinks
}

var (
	mu         sync.RWMutex
	components = map[connector.Kind]map[string]Component{}
)

// RegisterSource adds a source. It panics on a duplicate name or an incomplete registration, as
// both are programming errors found at start-up.
func RegisterSource(spec connector.Spec, f SourceFactory) {
	spec.Kind = connector.KindSource
	register(Component{Spec: spec, NewSource: f})
}

// RegisterSink adds a sink. It panics on a duplicate name or an incomplete registration.
func RegisterSink(spec connector.Spec, f SinkFactory) {
	spec.Kind = connector.KindSink
	register(Component{Spec: spec, NewSink: f})
}

func register(c Component) {
	if c.Spec.Name == "" || (c.NewSource == nil && c.NewSink == nil) {
		panic(fmt.Sprintf("registry: incomplete registration of %s %q", c.Spec.Kind, c.Spec.Name))
	}
	mu.Lock()
	defer mu.Unlock()
	m := components[c.Spec.Kind]
	if m == nil {
		m = map[string]Component{}
		components[c.Spec.Kind] = m
	}
	if _, dup := m[c.Spec.Name]; dup {
		panic(fmt.Sprintf("registry: %s %q registered twice", c.Spec.Kind, c.Spec.Name))
	}
	m[c.Spec.Name] = c
}

// Lookup finds a component by kind and name.
func Lookup(kind connector.Kind, name string) (Component, bool) {
	mu.RLock()
	defer mu.RUnlock()
	c, ok := components[kind][name]
	return c, ok
}

// Names returns the registered names of one kind, sorted.
func Names(kind connector.Kind) []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(components[kind]))
	for n := range components[kind] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// All returns every registered component, sources first, each kind sorted by name.
func All() []Component {
	var out []Component
	for _, k := range []connector.Kind{connector.KindSource, connector.KindSink} {
		for _, n := range Names(k) {
			c, _ := Lookup(k, n)
			out = append(out, c)
		}
	}
	return out
}
