package catalog_test

import (
	"fmt"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A test or a tool builds the catalog it needs: the built-in connectors and its own, without
// affecting any other catalog.
func Example() {
	cat := all.Catalog()
	mine := connector.SinkComponent(connector.Spec{Name: "audit", Summary: "Keeps records for a test."},
		func(connector.Config, connector.Env) (connector.Sink, error) { return nil, nil })
	if err := cat.Add(mine); err != nil {
		panic(err)
	}
	fmt.Println(cat.Names(connector.KindSink))
	empty, _ := catalog.New()
	fmt.Println(empty.Names(connector.KindSink))
	// Output:
	// [audit drop file iceberg kafka postgres pulsar redis stdout]
	// []
}
