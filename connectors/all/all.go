// Package all builds the catalog of every built-in connector.
package all

import (
	"github.com/sluicehq/sluice/connectors/drop"
	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/connectors/http"
	"github.com/sluicehq/sluice/connectors/iceberg"
	"github.com/sluicehq/sluice/connectors/kafka"
	"github.com/sluicehq/sluice/connectors/postgres"
	"github.com/sluicehq/sluice/connectors/pulsar"
	"github.com/sluicehq/sluice/connectors/redis"
	"github.com/sluicehq/sluice/connectors/scraper"
	"github.com/sluicehq/sluice/connectors/stdout"
	"github.com/sluicehq/sluice/connectors/webhook"
	"github.com/sluicehq/sluice/connectors/websocket"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Components returns every built-in connector. One connector package per line, so that adding
// one is a one-line change.
func Components() []connector.Component {
	var out []connector.Component
	for _, cs := range [][]connector.Component{
		file.Components(),
		{generate.Component()},
		{drop.Component()},
		{stdout.Component()},
		http.Components(),
		kafka.Components(),
		{postgres.Component()},
		redis.Components(),
		{websocket.Component()},
		{scraper.Component()},
		webhook.Components(),
		pulsar.Components(),
		iceberg.Components(),
	} {
		out = append(out, cs...)
	}
	return out
}

// Catalog returns a new catalog holding every built-in connector. Each call returns a catalog of
// its own, so a caller may add plugins or test connectors to it without affecting others.
func Catalog() *catalog.Catalog {
	c, err := catalog.New(Components()...)
	if err != nil {
		panic(err) // the built-in set is fixed: a duplicate or incomplete component is a build defect
	}
	return c
}
