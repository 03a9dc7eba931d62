package supervisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A file sink (or file dead-letter sink) writing the file its pipeline's source follows would
// make the pipeline read its own output without end: Add refuses it at the sink's path. The
// same file read without follow, or written by another pipeline, is accepted.
func TestAddRefusesASinkWritingTheFollowedFile(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, filepath.Join(dir, "in.txt"))
	if err != nil {
		t.Fatal(err)
	}
	file := func(path string, follow bool) pipeline.Component {
		c := connector.Config{"path": path}
		if follow {
			c["follow"] = true
		}
		return pipeline.Component{Type: "file", Config: c}
	}
	pipe := func(name string, src pipeline.Component, sinks ...pipeline.Sink) *pipeline.Pipeline {
		p := &pipeline.Pipeline{Name: name, Source: src, Sinks: sinks}
		return p.WithDefaults()
	}
	in := filepath.Join(dir, "in.txt")
	loop := pipe("loop", file(in, true),
		pipeline.Sink{Name: "ok", Component: file(filepath.Join(dir, "out.txt"), false), From: pipeline.DefaultPort},
		pipeline.Sink{Name: "again", Component: file(dir+"/./sub/../in.txt", false), From: pipeline.DefaultPort})
	dl := file(rel, false)
	loop.DeadLetter = &dl
	fine := pipe("fine", file(in, false), pipeline.Sink{Name: "copy", Component: file(in, false), From: pipeline.DefaultPort})
	other := pipe("other", file(filepath.Join(dir, "x.txt"), true), pipeline.Sink{Name: "out", Component: file(in, false), From: pipeline.DefaultPort})

	sup, err := supervisor.New(supervisor.Options{Catalog: all.Catalog()})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(context.Background())
	problems := sup.Add(context.Background(), loop, fine, other)
	var got []string
	for _, p := range problems {
		var ce *connector.ConfigError
		if p.Pipeline != "loop" || !errors.As(p.Err, &ce) || ce.Field != "path" || !strings.Contains(ce.Msg, in) || ce.Hint == "" {
			t.Errorf("unexpected problem %+v", p)
		}
		got = append(got, p.Kind+" "+p.Component)
	}
	if strings.Join(got, ", ") != "sink again, dead_letter dead_letter" {
		t.Fatalf("problems at %q, want the sink again and the dead letter", got)
	}
	if st := sup.Status(); len(st) != 2 {
		t.Fatalf("%d pipelines added, want fine and other", len(st))
	}
}
