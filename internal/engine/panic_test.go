package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/runtime/pipeline"
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

func panickyComponents() []connector.Component {
	return []connector.Component{
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
