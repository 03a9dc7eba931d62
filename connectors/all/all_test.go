package all_test

import (
	"testing"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestCatalogHoldsEveryBuiltInAndIsFreshEachCall(t *testing.T) {
	a := all.Catalog()
	for _, want := range []struct {
		kind connector.Kind
		name string
	}{{connector.KindSource, "file"}, {connector.KindSource, "generate"}, {connector.KindSink, "file"}, {connector.KindSink, "drop"}, {connector.KindSink, "stdout"}, {connector.KindSink, "iceberg"}} {
		if _, ok := a.Lookup(want.kind, want.name); !ok {
			t.Errorf("%s %q is missing", want.kind, want.name)
		}
	}
	extra := connector.SinkComponent(connector.Spec{Name: "extra"}, func(connector.Config, connector.Env) (connector.Sink, error) { return nil, nil })
	if err := a.Add(extra); err != nil {
		t.Fatal(err)
	}
	if _, ok := all.Catalog().Lookup(connector.KindSink, "extra"); ok {
		t.Fatal("a component added to one catalog leaked into the next")
	}
}
