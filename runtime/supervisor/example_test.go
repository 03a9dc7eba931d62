package supervisor_test

import (
	"context"
	"fmt"
	"os"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A front end builds a supervisor on a catalog, adds pipeline configurations, runs them and
// reports their status.
func Example() {
	dir, _ := os.MkdirTemp("", "sluice-example")
	defer os.RemoveAll(dir)
	sup, err := supervisor.New(supervisor.Options{Catalog: all.Catalog(), DataDir: dir})
	if err != nil {
		panic(err)
	}
	defer sup.Close(context.Background())
	p := &pipeline.Pipeline{
		Name:   "demo",
		Source: pipeline.Component{Type: "generate", Config: connector.Config{"count": int64(100), "template": "{{seq}}"}},
		Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "drop"}}},
	}
	if problems := sup.Add(context.Background(), p); len(problems) > 0 {
		fmt.Println(problems)
		return
	}
	if err := sup.Run(context.Background(), supervisor.RunOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	for _, st := range sup.Status() {
		fmt.Println(st.Name, st.State)
	}
	// Output: demo finished
}
