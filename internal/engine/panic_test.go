package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// panicky is a source and a sink whose Read or Write panics, as a connector with a bug would.
type panicky struct{}

func (panicky) Open(context.Context, []connector.Position) error { return nil }
func (panicky) Read(context.Context) ([]connector.Record, error) {
	panic("source bug: index out of range")
}
func (panicky) Ack(context.Context, []connector.Position) error { return nil }
func (panicky) Close(context.Context) error                     { return nil }

type panickySink struct{}

func (panickySink) Open(context.Context) error                      { return nil }
func (panickySink) Write(context.Context, []connector.Record) error { panic("sink bug: nil map") }
func (panickySink) Close(context.Context) error                     { return nil }

// panicsOnOpen is a source whose Open panics; closePanics a sink whose Close panics.
type panicsOnOpen struct{ panicky }

func (panicsOnOpen) Open(context.Context, []connector.Position) error { panic("open bug") }

type closePanics struct{ memSinkless }

type memSinkless struct{}

func (memSinkless) Open(context.Context) error                      { return nil }
func (memSinkless) Write(context.Context, []connector.Record) error { return nil }
func (closePanics) Close(context.Context) error                     { panic("close bug") }

// panickyStage is a transform stage written in Go whose Process panics.
type panickyStage struct{}

func (panickyStage) Name() string { return "bug" }
func (panickyStage) Process(context.Context, []connector.Record) (transform.Result, error) {
	panic("stage bug")
}
func (panickyStage) Close(context.Context) error { return nil }

func panickyComponents() []connector.Component {
	return []connector.Component{
		connector.SourceComponent(connector.Spec{Name: "enginetest-panic-open"}, func(connector.Config, connector.Env) (connector.Source, error) {
			return panicsOnOpen{}, nil
		}),
		connector.SinkComponent(connector.Spec{Name: "enginetest-panic-close"}, func(connector.Config, connector.Env) (connector.Sink, error) {
			return closePanics{}, nil
		}),
		connector.SourceComponent(connector.Spec{Name: "enginetest-panic"}, func(connector.Config, connector.Env) (connector.Source, error) {
			return panicky{}, nil
		}),
		connector.SinkComponent(connector.Spec{Name: "enginetest-panic"}, func(connector.Config, connector.Env) (connector.Sink, error) {
			return panickySink{}, nil
		}),
	}
}

// A connector that panics in Read or Write fails its pipeline with an error that says so; the
// process, and so every other pipeline, keeps running.
func TestConnectorPanicFailsThePipelineOnly(t *testing.T) {
	for _, c := range []struct {
		name      string
		src, sink pipeline.Component
		want      string
	}{
		{"source", pipeline.Component{Type: "enginetest-panic"}, newMemSink(t, &memSink{}), "source enginetest-panic: read: panic: source bug: index out of range"},
		{"sink", genSource(10, "x"), pipeline.Component{Type: "enginetest-panic"}, "panic: sink bug: nil map"},
	} {
		t.Run(c.name, func(t *testing.T) {
			store, err := checkpoint.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			err = runPipeline(t, context.Background(), spec("p", c.src, sink("out", c.sink)), store, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, connector.ErrPermanent) {
				t.Fatalf("err = %v, want a permanent error containing %q", err, c.want)
			}
		})
	}
}

// A panic anywhere else the engine calls a component (a source's Open, a sink's Close, a
// stage's Process) fails that pipeline the same way, with the call named.
func TestComponentPanicsFailThePipelineOnly(t *testing.T) {
	stage := func(context.Context, string, pipeline.Transform, *slog.Logger) (transform.Stage, error) {
		return panickyStage{}, nil
	}
	for _, c := range []struct {
		name       string
		p          *pipeline.Pipeline
		transforms bool
		want       string
	}{
		{"source open", spec("p", pipeline.Component{Type: "enginetest-panic-open"}, sink("out", newMemSink(t, &memSink{}))), false, "open source enginetest-panic-open: panic: open bug"},
		{"sink close", spec("p", genSource(10, "x"), sink("out", pipeline.Component{Type: "enginetest-panic-close"})), false, `close sink "out": panic: close bug`},
		{"stage process", spec("p", genSource(10, "x"), sink("out", newMemSink(t, &memSink{}))), true, `transform "bug": panic: stage bug`},
	} {
		t.Run(c.name, func(t *testing.T) {
			store, err := checkpoint.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if c.transforms {
				c.p.Transforms = []pipeline.Transform{{Name: "bug"}}
			}
			err = runPipeline(t, context.Background(), c.p, store, stage)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, connector.ErrPermanent) {
				t.Fatalf("err = %v, want a permanent error containing %q", err, c.want)
			}
		})
	}
}
