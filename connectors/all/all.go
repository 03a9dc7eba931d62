// Package all builds the catalog of every built-in connector.
package all

import (
	"github.com/sluicehq/sluice/connectors/drop"
	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/connectors/http"
	"github.com/sluicehq/sluice/connectors/kafka"
	"github.com/sluicehq/sluice/connectors/postgres"
	"github.com/sluicehq/sluice/connectors/redis"
	"github.com/sluicehq/sluice/connectors/stdout"
	"github.com/sluicehq/sluice/connectors/websocket"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Components returns every built-in connector.
func Components() []connector.Component {
	out := append([]connector.Component(nil), file.Components()...)
	out = append(out, http.Components()...)
	out = append(out, kafka.Components()...)
	out = append(out, redis.Components()...)
	return append(out, generate.Component(), drop.Component(), stdout.Component(), websocket.Component(), postgres.Component())
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
