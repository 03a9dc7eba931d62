package plugin_test

import (
	"context"
	"fmt"
	"io"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/plugin"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// ticks is a source of three records.
type ticks struct{ n int }

func (t *ticks) Open(context.Context, []connector.Position) error { return nil }
func (t *ticks) Read(context.Context) ([]connector.Record, error) {
	if t.n == 3 {
		return nil, io.EOF
	}
	t.n++
	return []connector.Record{{Value: fmt.Appendf(nil, "tick %d", t.n), Position: connector.Position{Offset: int64(t.n)}}}, nil
}
func (t *ticks) Ack(context.Context, []connector.Position) error { return nil }
func (t *ticks) Close(context.Context) error                     { return nil }

// A plugin declares its connectors as components; in its main, plugin.Serve(p) serves them to
// Sluice. NewServer is the same service without the process around it, for tests.
func ExampleNewServer() {
	p := plugin.Plugin{
		Version: "1.0.0",
		Components: []connector.Component{
			connector.SourceComponent(connector.Spec{Name: "ticks", Summary: "Three records", Bounded: true},
				func(connector.Config, connector.Env) (connector.Source, error) { return &ticks{}, nil }),
		},
	}
	srv := plugin.NewServer(p, nil)
	resp, err := srv.Specs(context.Background(), &pb.SpecsRequest{})
	if err != nil {
		panic(err)
	}
	for _, s := range resp.Specs {
		fmt.Println(s.Kind, s.Name, "-", s.Summary)
	}
	// Output: source ticks - Three records
}
