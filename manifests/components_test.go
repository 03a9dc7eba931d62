package manifests_test

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Test-only components, registered under names no built-in connector uses, so these tests do not
// depend on the built-in connectors.
var testCatalog = newTestCatalog()

func newTestCatalog() *catalog.Catalog {
	cat, err := catalog.New(
		connector.SourceComponent(connector.Spec{
			Name:        "testsource",
			Summary:     "Reads test records.",
			Description: "A source used by the manifest tests. It declares a field of every type.",
			Bounded:     true,
			Fields: []connector.Field{
				{Name: "path", Type: connector.TypeString, Required: true, Description: "File to read. Relative paths are relative to the working directory.", Example: "/var/log/app.log"},
				{Name: "follow", Type: connector.TypeBool, Default: false, Description: "Keep reading as the file grows."},
				{Name: "count", Type: connector.TypeInt, Default: int64(100), Description: "Records to read."},
				{Name: "rate", Type: connector.TypeFloat, Description: "Records per second; unset means as fast as possible.", Example: 250.5},
				{Name: "interval", Type: connector.TypeDuration, Default: time.Second, Description: "Poll interval."},
				{Name: "max_line", Type: connector.TypeByteSize, Default: int64(1 << 20), Description: "Longest line."},
				{Name: "format", Type: connector.TypeString, Default: "json", Enum: []string{"json", "text"}, Description: "Record format."},
				{Name: "tags", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "Tags added to every record.", Example: []any{"a", "b"}},
				{Name: "headers", Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString}, Description: "Headers added to every record."},
				{Name: "template", Type: connector.TypeAny, Description: "Free-form value template."},
				{Name: "tls", Type: connector.TypeObject, Description: "TLS settings.", Fields: []connector.Field{
					{Name: "enabled", Type: connector.TypeBool, Default: false, Description: "Use TLS."},
					{Name: "ca", Type: connector.TypeString, Description: "CA bundle path."},
				}},
				{Name: "retry", Type: connector.TypeObject, Description: "Retry policy.", Fields: []connector.Field{
					{Name: "max_attempts", Type: connector.TypeInt, Default: int64(3), Description: "Attempts before giving up."},
					{Name: "backoff", Type: connector.TypeDuration, Default: 100 * time.Millisecond, Description: "First backoff."},
				}},
			},
		}, func(cfg connector.Config, env connector.Env) (connector.Source, error) { return nopSource{}, nil }),

		connector.SinkComponent(connector.Spec{
			Name:        "testsink",
			ExactlyOnce: true,
			Summary:     "Writes test records.",
			Description: "A sink used by the manifest tests, with secret fields.",
			Fields: []connector.Field{
				{Name: "url", Type: connector.TypeString, Required: true, Description: "Where to write.", Example: "https://example.com/ingest"},
				{Name: "token", Type: connector.TypeString, Secret: true, Description: "Bearer token."},
				{Name: "pin", Type: connector.TypeInt, Secret: true, Description: "Numeric PIN."},
				{Name: "mode", Type: connector.TypeString, Default: "append", Enum: []string{"append", "upsert"}, Description: "Write mode."},
				{Name: "key", Type: connector.TypeString, Description: "Key field for upsert."},
				{Name: "batch_bytes", Type: connector.TypeByteSize, Description: "Largest write."},
				{Name: "timeout", Type: connector.TypeDuration, Default: 5 * time.Second, Description: "Write deadline."},
				{Name: "auth", Type: connector.TypeObject, Secret: true, Description: "Credentials.", Fields: []connector.Field{
					{Name: "user", Type: connector.TypeString, Description: "User name."},
					{Name: "password", Type: connector.TypeString, Description: "Password."},
				}},
			},
		}, func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
			if cfg.String("mode") == "upsert" && cfg.String("key") == "" {
				return nil, &connector.ConfigError{Field: "mode", Msg: "upsert needs key to be set"}
			}
			return nopSink{}, nil
		}),

		connector.SinkComponent(connector.Spec{
			Name:        "testdrop",
			Summary:     "Discards records.",
			ExactlyOnce: true,
		}, func(cfg connector.Config, env connector.Env) (connector.Sink, error) { return nopSink{}, nil }),

		connector.SinkComponent(connector.Spec{
			Name:    "testplain",
			Summary: "Discards records; cannot store source positions (no exactly_once).",
		}, func(cfg connector.Config, env connector.Env) (connector.Sink, error) { return nopSink{}, nil }),
	)
	if err != nil {
		panic(err)
	}
	return cat
}

type nopSource struct{}

func (nopSource) Open(context.Context, []connector.Position) error { return nil }
func (nopSource) Read(context.Context) ([]connector.Record, error) { return nil, nil }
func (nopSource) Ack(context.Context, []connector.Position) error  { return nil }
func (nopSource) Close(context.Context) error                      { return nil }

type nopSink struct{}

func (nopSink) Open(context.Context) error                      { return nil }
func (nopSink) Write(context.Context, []connector.Record) error { return nil }
func (nopSink) Close(context.Context) error                     { return nil }
