package catalog_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

type nopSink struct{}

func (nopSink) Open(context.Context) error                      { return nil }
func (nopSink) Write(context.Context, []connector.Record) error { return nil }
func (nopSink) Close(context.Context) error                     { return nil }

func sink(name string) connector.Component {
	return connector.SinkComponent(connector.Spec{Name: name}, func(connector.Config, connector.Env) (connector.Sink, error) {
		return nopSink{}, nil
	})
}

func TestCatalogsAreIndependentValues(t *testing.T) {
	a, err := catalog.New(sink("b"), sink("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := catalog.New()
	if got := a.Names(connector.KindSink); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("names = %v, want [a b]", got)
	}
	if _, ok := b.Lookup(connector.KindSink, "a"); ok {
		t.Fatal("a component added to one catalog is visible in another")
	}
	if _, ok := a.Lookup(connector.KindSource, "a"); ok {
		t.Fatal("lookup ignores the kind")
	}
	if specs := a.Specs(); len(specs) != 2 || specs[0].Name != "a" || specs[0].Kind != connector.KindSink {
		t.Fatalf("specs = %+v", specs)
	}
}

func TestAddRefusesDuplicatesAndIncompleteComponents(t *testing.T) {
	c, _ := catalog.New(sink("a"))
	if err := c.Add(sink("a")); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("duplicate: err = %v", err)
	}
	if err := c.Add(connector.Component{Spec: connector.Spec{Name: "x", Kind: connector.KindSink}}); err == nil {
		t.Fatal("a component without a factory was accepted")
	}
	if _, err := catalog.New(sink("a"), sink("a")); err == nil {
		t.Fatal("New accepted a duplicate")
	}
}
