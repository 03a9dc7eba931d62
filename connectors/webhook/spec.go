// Package webhook provides the webhook source: an HTTP endpoint that takes JSON, NDJSON or JSON
// arrays, authenticates them (bearer token or HMAC signature), and answers 2xx only once the
// records are durable, in a write-ahead store of its own or in every sink. When the pipeline
// cannot keep up it answers 429 or 503 with Retry-After instead of buffering without bound.
package webhook

import (
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

var sourceSpec = connector.Spec{
	Name:    "webhook",
	Summary: "An HTTP endpoint for webhooks: JSON, NDJSON or arrays per request, bearer or HMAC auth, 2xx only once the records are durable.",
	Description: "Each `POST` (or `PUT`) to `path` carries records: a JSON array gives one record per element, NDJSON (or several JSON " +
		"values one per line) one per line, any other JSON document one record. A body that is not JSON is answered `400` " +
		"with the line at fault, and nothing of it is taken; a body over `max_body` is answered `413`. Request headers named " +
		"in `headers` are copied onto the records.\n\n" +
		"**When the answer is 2xx.** With `ack: durable` (the default) the records are appended to a write-ahead store in " +
		"the pipeline's data directory and fsynced (requests arriving together share one fsync) before the answer; they are " +
		"delivered from there and removed once every sink has them, and after a crash or `kill -9` the store is replayed " +
		"after the pipeline's checkpoint. With `ack: delivered` the answer waits until every sink has written the request's " +
		"records (or the dead-letter sink, for refused ones); nothing is stored locally, so a request not answered 2xx " +
		"within `delivery_timeout`, or cut by a crash, is the sender's to retry (and may then be delivered twice).\n\n" +
		"**Backpressure.** At most `max_pending` records and `max_pending_bytes` bytes are taken and not yet delivered to " +
		"every sink; a request that does not fit is answered `busy_status` (429 by default) with `Retry-After`, before its " +
		"body is read when its `Content-Length` already says so. Memory therefore stays bounded however many clients post " +
		"and however slow the sinks are. While the pipeline drains to stop, and before it has opened, new requests are " +
		"answered `503` with `Retry-After` (or find the port closed); `health_path`, when set, answers `200` only while " +
		"the endpoint takes requests, for a load balancer in front of it.\n\n" +
		"**Authentication.** `auth.bearer` requires `Authorization: Bearer <token>`; `auth.hmac` requires a signature of " +
		"the raw body in a header (`X-Hub-Signature-256: sha256=<hex>` for GitHub-style senders), compared in constant " +
		"time. Both may be set; a request failing either is answered `401`.",
	Fields: []connector.Field{
		{Name: "address", Type: connector.TypeString, Required: true, Description: "Address to listen on, `host:port` (`:8080` for every interface).", Example: ":8080"},
		{Name: "path", Type: connector.TypeString, Default: "/", Description: "URL path that takes the posts.", Example: "/events"},
		{Name: "tls", Type: connector.TypeObject, Description: "Serve HTTPS with this certificate.", Fields: []connector.Field{
			{Name: "cert_file", Type: connector.TypeString, Description: "PEM certificate (chain) file."},
			{Name: "key_file", Type: connector.TypeString, Description: "PEM private key file."},
		}},
		{Name: "auth", Type: connector.TypeObject, Description: "Request authentication; without it, anyone who reaches the port may post.", Fields: []connector.Field{
			{Name: "bearer", Type: connector.TypeString, Secret: true, Description: "Token the `Authorization: Bearer` header must carry."},
			{Name: "hmac", Type: connector.TypeObject, Description: "HMAC signature of the raw request body.", Fields: []connector.Field{
				{Name: "header", Type: connector.TypeString, Description: "Header carrying the signature.", Example: "X-Hub-Signature-256"},
				{Name: "secret", Type: connector.TypeString, Secret: true, Description: "The shared secret."},
				{Name: "algorithm", Type: connector.TypeString, Enum: []string{"sha256", "sha512", "sha1"}, Description: "Hash of the HMAC: `sha256` when unset."},
				{Name: "prefix", Type: connector.TypeString, Description: "Text before the signature in the header, such as `sha256=`."},
				{Name: "encoding", Type: connector.TypeString, Enum: []string{"hex", "base64"}, Description: "Encoding of the signature: `hex` when unset."},
			}},
		}},
		{Name: "ack", Type: connector.TypeString, Default: "durable", Enum: []string{"durable", "delivered"}, Description: "When a request is answered 2xx: once its records are fsynced in the source's write-ahead store, or once every sink has them."},
		{Name: "max_body", Type: connector.TypeByteSize, Default: int64(4 << 20), Description: "Largest request body; larger ones are answered 413."},
		{Name: "max_pending", Type: connector.TypeInt, Default: int64(10000), Description: "Records taken and not yet in every sink; beyond it requests are answered `busy_status`."},
		{Name: "max_pending_bytes", Type: connector.TypeByteSize, Default: int64(64 << 20), Description: "Bytes of such records (values, headers and a fixed overhead per record); at least `max_body`."},
		{Name: "busy_status", Type: connector.TypeInt, Default: int64(429), Description: "Status answered when the pipeline is saturated: 429 or 503."},
		{Name: "retry_after", Type: connector.TypeDuration, Default: time.Second, Description: "The `Retry-After` of 429 and 503 answers (whole seconds, at least 1)."},
		{Name: "delivery_timeout", Type: connector.TypeDuration, Default: 30 * time.Second, Description: "With `ack: delivered`, how long a request waits for its records to reach every sink before it is answered 503."},
		{Name: "headers", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "Request headers copied onto each record of the request (`X-GitHub-Event`); headers starting with `sluice-` are never copied."},
		{Name: "health_path", Type: connector.TypeString, Description: "A path answering GET with 200 while the endpoint takes requests and 503 while it is saturated or draining; empty for none.", Example: "/healthz"},
	},
}

// Components returns the webhook source, for a catalog.
func Components() []connector.Component {
	return []connector.Component{
		connector.SourceComponent(sourceSpec, func(cfg connector.Config, env connector.Env) (connector.Source, error) {
			return NewSource(cfg, env)
		}),
	}
}

type config struct {
	Address string `config:"address"`
	Path    string `config:"path"`
	TLS     struct {
		CertFile string `config:"cert_file"`
		KeyFile  string `config:"key_file"`
	} `config:"tls"`
	Auth struct {
		Bearer string `config:"bearer"`
		HMAC   struct {
			Header    string `config:"header"`
			Secret    string `config:"secret"`
			Algorithm string `config:"algorithm"`
			Prefix    string `config:"prefix"`
			Encoding  string `config:"encoding"`
		} `config:"hmac"`
	} `config:"auth"`
	Ack             string        `config:"ack"`
	MaxBody         int64         `config:"max_body"`
	MaxPending      int64         `config:"max_pending"`
	MaxPendingBytes int64         `config:"max_pending_bytes"`
	BusyStatus      int           `config:"busy_status"`
	RetryAfter      time.Duration `config:"retry_after"`
	DeliveryTimeout time.Duration `config:"delivery_timeout"`
	Headers         []string      `config:"headers"`
	HealthPath      string        `config:"health_path"`
}
