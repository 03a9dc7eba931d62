// Package redis provides the Redis sink: records become stream entries (XADD), hash fields (HSET),
// string values (SET), sorted-set members (ZADD) or published messages (PUBLISH), on a single
// node or a Redis Cluster, written with one pipelined round trip per batch. With delivery
// exactly_once (single node, every mode but publish) the data and the source positions are
// written in one MULTI/EXEC.
package redis

import (
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Modes of the sink.
const (
	modeStream  = "stream"
	modeHash    = "hash"
	modeString  = "string"
	modeZset    = "zset"
	modePublish = "publish"
)

var tlsFields = []connector.Field{
	{Name: "enabled", Type: connector.TypeBool, Default: false, Description: "Connect over TLS (`rediss://`)."},
	{Name: "ca_file", Type: connector.TypeString, Description: "PEM file of the certificate authorities to trust instead of the system's."},
	{Name: "cert_file", Type: connector.TypeString, Description: "PEM client certificate, for servers that require one (`tls-auth-clients yes`); needs `key_file`."},
	{Name: "key_file", Type: connector.TypeString, Secret: true, Description: "PEM private key of `cert_file`."},
	{Name: "server_name", Type: connector.TypeString, Description: "Name to verify the server certificate against; default: the host of the address."},
	{Name: "insecure_skip_verify", Type: connector.TypeBool, Default: false, Description: "Accept any server certificate. For tests only: it makes TLS open to interception."},
}

var sinkSpec = connector.Spec{
	Name:    "redis",
	Summary: "Writes records to Redis as stream entries, hash fields, string values, sorted-set members or published messages.",
	Description: "`mode` says what each record becomes:\n\n" +
		"- `stream`: an entry appended with `XADD` to `stream`. By default the entry has one field, `value_field` " +
		"(default `value`), holding the record value; with `fields: object` the value must be a JSON object and each of " +
		"its top-level fields becomes an entry field. `maxlen` caps the stream's length, trimming approximately " +
		"(`MAXLEN ~`, cheap) unless `maxlen_approximate: false`.\n" +
		"- `hash`: the value must be a JSON object; `HSET key` sets one hash field per top-level field.\n" +
		"- `string`: `SET key value`, the record value as it is.\n" +
		"- `zset`: `ZADD key score member`; `score` names the field holding the score (`price`, `quote.bid`) or is " +
		"a template rendering to a number (`{{time_ms}}`); `member` is a template, by default the whole value.\n" +
		"- `publish`: `PUBLISH channel value`.\n\n" +
		"`stream`, `key`, `channel` and `member` are record templates: `price:{{commodity}}` takes the " +
		"`commodity` field of the JSON value; `{{key}}`, `{{value}}`, `{{header.NAME}}`, `{{partition}}`, " +
		"`{{offset}}`, `{{time}}` and `{{time_ms}}` are the record's own. In hash fields and `fields: object` " +
		"stream entries, strings are stored without their quotes and numbers, booleans, null, objects and " +
		"arrays as compact JSON text.\n\n" +
		"`ttl` sets an expiry on every key written (`SET ... PX` in string mode; in stream, hash and zset modes " +
		"the write and its `PEXPIRE` run as one small script, so a refused write never expires a key it did not " +
		"write). Every batch goes to Redis as one pipeline: one round trip per batch on a single node, one per " +
		"node in a cluster.\n\n" +
		"A record whose template cannot be rendered (a missing field), whose value does not fit the mode (hash " +
		"and `fields: object` need a JSON object, zset a numeric score), or that Redis refuses on its own " +
		"(`WRONGTYPE`, a key the user's ACL does not allow) goes to the dead letters with the reason; the rest " +
		"of the batch is written. Connection errors, timeouts and errors of the server as a whole (`OOM`, " +
		"`READONLY`, `LOADING`, `CLUSTERDOWN`) fail the write, which the runtime retries with backoff. A wrong " +
		"password, an unknown user or a database index out of range stops the pipeline when the sink opens.\n\n" +
		"Set `addrs` and `cluster: true` (or give several `addrs`) for Redis Cluster; keys are routed by slot.\n\n" +
		"Delivery is at least once: after a crash, records written after the last checkpoint are written again " +
		"(a stream gets them twice; hash, string and zset writes overwrite). With `delivery: exactly_once` on a " +
		"single node, each batch and the source positions it covers are written in one `MULTI`/`EXEC`, the " +
		"positions in the hash `positions_key` (one field per source partition), and the pipeline resumes from " +
		"them: every record is written once. Several processes of one pipeline (a Kafka consumer group) may write " +
		"at once: each transaction `WATCH`es the keys `POSITIONS_KEY:version:PARTITION` of its partitions, reads " +
		"their positions, leaves out the records at or before them and never moves a position back; when another " +
		"process stored one of those partitions first, it runs again (processes writing different partitions do " +
		"not hold each other up). Publish mode and cluster mode cannot be exactly once (a message " +
		"cannot be unpublished; a transaction cannot span cluster slots), and a manifest asking for it is refused. " +
		"Redis acknowledges a write before it is on disk unless it runs with `appendonly yes` and `appendfsync always`; " +
		"a server that loses acknowledged writes (a crash, a failover to a lagging replica) loses records and positions " +
		"together, and the sink stops when it finds its positions moved back: restarted, the pipeline writes the lost " +
		"records again from where Redis stands.",
	ExactlyOnce: true,
	Fields: []connector.Field{
		{Name: "addr", Type: connector.TypeString, Description: "Address of a single Redis node, `host:port`. Either `addr` or `addrs` is required.", Example: "localhost:6379"},
		{Name: "addrs", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "Addresses of Redis Cluster nodes (a few are enough; the others are discovered). Several addresses mean a cluster."},
		{Name: "cluster", Type: connector.TypeBool, Default: false, Description: "Talk to a Redis Cluster, also when one address is given."},
		{Name: "username", Type: connector.TypeString, Description: "ACL user name (Redis 6 and later); empty: the default user."},
		{Name: "password", Type: connector.TypeString, Secret: true, Description: "Password of the user (or of `requirepass`)."},
		{Name: "db", Type: connector.TypeInt, Default: int64(0), Description: "Database index on a single node; a cluster has database 0 only."},
		{Name: "tls", Type: connector.TypeObject, Fields: tlsFields, Description: "TLS settings."},
		{Name: "mode", Type: connector.TypeString, Required: true, Enum: []string{modeStream, modeHash, modeString, modeZset, modePublish}, Description: "What each record becomes; see above.", Example: modeStream},
		{Name: "stream", Type: connector.TypeString, Description: "Stream mode: the stream's key, a record template.", Example: "prices"},
		{Name: "key", Type: connector.TypeString, Description: "Hash, string and zset modes: the key, a record template."},
		{Name: "channel", Type: connector.TypeString, Description: "Publish mode: the channel, a record template."},
		{Name: "fields", Type: connector.TypeString, Default: "value", Enum: []string{"value", "object"}, Description: "Stream mode: `value` stores the record value in the field `value_field`; `object` stores each top-level field of the JSON object value as an entry field."},
		{Name: "value_field", Type: connector.TypeString, Default: "value", Description: "Stream mode with `fields: value`: the entry field holding the record value."},
		{Name: "maxlen", Type: connector.TypeInt, Default: int64(0), Description: "Stream mode: trim the stream to about this many entries on every append; 0 never trims."},
		{Name: "maxlen_approximate", Type: connector.TypeBool, Default: true, Description: "Stream mode: trim with `MAXLEN ~` (whole macro nodes, much cheaper) rather than exactly."},
		{Name: "score", Type: connector.TypeString, Description: "Zset mode: the field path of the score (`price`, `quote.bid`), or a template rendering to a number (`{{time_ms}}`)."},
		{Name: "member", Type: connector.TypeString, Description: "Zset mode: the member, a record template; default: the record value."},
		{Name: "ttl", Type: connector.TypeDuration, Default: time.Duration(0), Description: "Expire every key written this long after its last write (milliseconds precision); 0 never expires. Not in publish mode."},
		{Name: "positions_key", Type: connector.TypeString, Description: "With delivery exactly_once: the hash holding the source positions, beside keys `POSITIONS_KEY:version:PARTITION` that writers watch; default `sluice:positions:PIPELINE:SINK`."},
		{Name: "dial_timeout", Type: connector.TypeDuration, Default: 5 * time.Second, Description: "Timeout of establishing a connection."},
		{Name: "timeout", Type: connector.TypeDuration, Default: 30 * time.Second, Description: "Timeout of sending a batch and of reading its replies; a write taking longer fails and is retried."},
	},
}

// Components returns the redis sink, for a catalog.
func Components() []connector.Component {
	return []connector.Component{
		connector.SinkComponent(sinkSpec, func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
			return NewSink(cfg, env)
		}),
	}
}
