// Package drop provides the drop sink, which discards records: for benchmarks, and for tests of
// everything before the sink.
package drop

import (
	"context"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Component returns the drop sink, for a catalog.
func Component() connector.Component {
	return connector.SinkComponent(connector.Spec{
		Name:        "drop",
		Summary:     "Discards every record (benchmarks, tests).",
		Description: "Acknowledges every batch at once without keeping anything. Records sent here are delivered in the sense that nobody will ask for them again.",
	}, func(connector.Config, connector.Env) (connector.Sink, error) { return sink{}, nil })
}

type sink struct{}

var _ connector.Sink = sink{}

func (sink) Open(context.Context) error                      { return nil }
func (sink) Write(context.Context, []connector.Record) error { return nil }
func (sink) Close(context.Context) error                     { return nil }

var _ connector.HeaderBlindSink = sink{}

// IgnoresHeaders: the drop sink reads nothing (connector.HeaderBlindSink).
func (sink) IgnoresHeaders() bool { return true }
