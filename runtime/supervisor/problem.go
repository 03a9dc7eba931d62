package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/pipeline"
)

// Problem is one reason a pipeline cannot run, with what it concerns, so that a front end can
// place it (the command line puts it at the manifest line of the setting).
type Problem struct {
	Pipeline string
	// Kind is "source", "sink", "dead_letter" or "transform", or "pipeline" for a problem of the
	// pipeline as a whole (a name already in use, a supervisor that no longer runs, an error not
	// attributed to one component).
	Kind string
	// Component is "source", "dead_letter", the sink's name or the transform's name.
	Component string
	// Setting names the offending setting when known: "from" for a sink's port; for a transform
	// "wasm", "sha256", "config" (see Pointer), "limits.memory", "limits.instances",
	// "limits.mode" or, for an aggregate stage, "aggregate.window.session" (the module settings
	// of an aggregate stage keep their names). A connector's own configuration problems are in
	// Err as a *connector.ConfigError naming the field.
	Setting string
	// Pointer is, for a transform's "config", the JSON pointer of the offending value ("" for
	// the config as a whole).
	Pointer string
	// Err is what went wrong.
	Err error
	// Hint says how to fix it, when there is a known way.
	Hint string
}

func (p Problem) Error() string {
	return fmt.Sprintf("pipeline %q: %s: %v", p.Pipeline, p.label(), p.Err)
}

// label names the component as messages do: source, dead_letter, sink "x", transform "y".
func (p Problem) label() string {
	switch p.Kind {
	case "sink", "transform":
		return fmt.Sprintf("%s %q", p.Kind, p.Component)
	}
	return p.Kind
}

// componentProblems turns the joined *engine.ComponentError values of engine.New into problems.
func componentProblems(pipelineName string, err error) []Problem {
	var out []Problem
	var walk func(error)
	walk = func(e error) {
		var ce *engine.ComponentError
		if errors.As(e, &ce) && e == error(ce) {
			kind := string(ce.Kind)
			if ce.Component == "dead_letter" {
				kind = "dead_letter"
			}
			out = append(out, Problem{Pipeline: pipelineName, Kind: kind, Component: ce.Component, Err: ce.Err, Hint: ce.Hint})
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	if len(out) == 0 {
		out = append(out, Problem{Pipeline: pipelineName, Kind: "pipeline", Err: err})
	}
	return out
}

// checkPorts reports the sinks of a pipeline that read a port none of its transforms emits: the
// ports their modules declare, and the late port of an aggregate stage. It loads the modules
// whose ports it does not know yet.
func (s *Supervisor) checkPorts(ctx context.Context, cfg *pipeline.Pipeline) []Problem {
	var problems []Problem
	known := map[string]bool{pipeline.DefaultPort: true}
	var names []string
	for _, t := range cfg.Transforms {
		ports, err := s.wasm.ports(ctx, t)
		if err != nil {
			problems = append(problems, Problem{Pipeline: cfg.Name, Kind: "transform", Component: t.Name, Setting: "wasm", Err: err})
			continue
		}
		if a := t.Aggregate; a != nil && a.Late != "" && a.Late != pipeline.LateDeadLetter && a.Late != pipeline.LateDrop {
			ports = append(ports[:len(ports):len(ports)], a.Late)
		}
		for _, port := range ports {
			if !known[port] {
				names = append(names, port)
			}
			known[port] = true
		}
	}
	if len(problems) > 0 {
		return problems
	}
	for _, sk := range cfg.Sinks {
		if known[sk.Port()] {
			continue
		}
		hint := "no transform of this pipeline declares output ports other than main"
		if len(names) > 0 {
			hint = fmt.Sprintf("ports declared by the transforms: main, %s", strings.Join(names, ", "))
		}
		problems = append(problems, Problem{Pipeline: cfg.Name, Kind: "sink", Component: sk.Name, Setting: "from",
			Err: fmt.Errorf("reads port %q, which no transform emits", sk.Port()), Hint: hint})
	}
	return problems
}
