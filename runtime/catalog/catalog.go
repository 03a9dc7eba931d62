// Package catalog holds the sources and sinks a runtime can build, as a value passed to whoever
// needs it: the manifest loader, the supervisor, `sluice components` and `sluice docs`.
//
// Nothing registers into a process-wide map: the built-in connectors are added by
// connectors/all.Catalog, plugins by the plugin host, tests by themselves, each into its own
// catalog.
package catalog

import (
	"fmt"
	"sort"
	"sync"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Catalog is a set of components, at most one per kind and name. The zero value is not usable;
// build one with New. Safe for concurrent use.
type Catalog struct {
	mu         sync.RWMutex
	components map[connector.Kind]map[string]connector.Component
}

// New returns a catalog holding the given components. It fails like Add on an incomplete
// component or a duplicate name.
func New(components ...connector.Component) (*Catalog, error) {
	c := &Catalog{components: map[connector.Kind]map[string]connector.Component{}}
	for _, comp := range components {
		if err := c.Add(comp); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Add adds a component. It fails when the component is incomplete (connector.Component.Check) or
// a component of the same kind and name is already in the catalog.
func (c *Catalog) Add(comp connector.Component) error {
	if err := comp.Check(); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.components[comp.Spec.Kind]
	if m == nil {
		m = map[string]connector.Component{}
		c.components[comp.Spec.Kind] = m
	}
	if _, dup := m[comp.Spec.Name]; dup {
		return fmt.Errorf("catalog: %s %q is already registered", comp.Spec.Kind, comp.Spec.Name)
	}
	m[comp.Spec.Name] = comp
	return nil
}

// Lookup finds a component by kind and name.
func (c *Catalog) Lookup(kind connector.Kind, name string) (connector.Component, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	comp, ok := c.components[kind][name]
	return comp, ok
}

// Names returns the names of the components of one kind, sorted.
func (c *Catalog) Names(kind connector.Kind) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.components[kind]))
	for n := range c.components[kind] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Components returns every component, sources first, each kind sorted by name.
func (c *Catalog) Components() []connector.Component {
	var out []connector.Component
	for _, k := range []connector.Kind{connector.KindSource, connector.KindSink} {
		for _, n := range c.Names(k) {
			comp, _ := c.Lookup(k, n)
			out = append(out, comp)
		}
	}
	return out
}

// Specs returns the spec of every component, in the order of Components.
func (c *Catalog) Specs() []connector.Spec {
	comps := c.Components()
	out := make([]connector.Spec, len(comps))
	for i, comp := range comps {
		out[i] = comp.Spec
	}
	return out
}
