package supervisor

import (
	"fmt"
	"path/filepath"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// checkSelfFeeding reports the file sinks, and a file dead-letter sink, of a pipeline that write
// the file its source follows: the pipeline would read its own output and grow it without end.
// Paths are compared cleaned and absolute (no I/O: links are not followed).
func checkSelfFeeding(cfg *pipeline.Pipeline) []Problem {
	src := cfg.Source
	if src.Type != "file" || !src.Config.Bool("follow") {
		return nil
	}
	in := absPath(src.Config.String("path"))
	if in == "" {
		return nil
	}
	var out []Problem
	check := func(kind, name string, c pipeline.Component) {
		if c.Type != "file" || absPath(c.Config.String("path")) != in {
			return
		}
		out = append(out, Problem{Pipeline: cfg.Name, Kind: kind, Component: name, Err: &connector.ConfigError{
			Field: "path",
			Msg:   fmt.Sprintf("%s is the file the source follows: the pipeline would read its own output again, without end", in),
			Hint:  "write to another file, or read the source without follow",
		}})
	}
	for _, s := range cfg.Sinks {
		check("sink", s.Name, s.Component)
	}
	if cfg.DeadLetter != nil {
		check("dead_letter", "dead_letter", *cfg.DeadLetter)
	}
	return out
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	return a
}
