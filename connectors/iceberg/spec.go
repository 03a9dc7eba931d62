// Package iceberg is the Apache Iceberg sink: JSON records converted to Arrow by a declared
// schema, appended to a table of a SQL (SQLite, Postgres) or REST catalog with one commit per
// write, and, with delivery exactly_once, the source positions stored in each commit's snapshot
// summary.
package iceberg

import (
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

var sinkSpec = connector.Spec{
	Name:        "iceberg",
	Summary:     "Appends records to an Apache Iceberg table, one commit per write, exactly once with the positions in the snapshot summary.",
	ExactlyOnce: true,
	Description: "Each record's value is a JSON object; `schema` says which fields become which columns, and of what " +
		"type. The records of a write become Parquet data files committed as one Iceberg snapshot (an append), so " +
		"give the sink a large batch (`batch: {max_records: 100000, linger: 10s}` on the sink entry): a commit per " +
		"small batch makes many small files and a long snapshot history.\n\n" +
		"**Catalogs.** `type: sql` keeps the catalog in SQLite (`sqlite:///relative.db`, `sqlite:////absolute.db`, " +
		"read the way SQLAlchemy and PyIceberg read them, so the same URI opens the table in PyIceberg) or Postgres " +
		"(`postgresql://user:password@host/db`), with data and metadata files under `warehouse`. `type: rest` talks " +
		"to an Iceberg REST catalog (`credential` for OAuth client credentials `id:secret`, or a bearer `token`). " +
		"Only local warehouses (`file://`) are written by this build.\n\n" +
		"**Tables.** The namespace and the table are created when missing, with the declared schema and partition " +
		"spec and `table_properties`. On an existing table, a column declared in the manifest but missing from the " +
		"table is added (no data is rewritten; old rows read it as null); a column may widen as Iceberg allows (int " +
		"to long, float to double, decimal(P,S) to a larger P) or become optional. Any other difference (a narrowing " +
		"or unrelated type, an optional column declared required, a new required column, a required table column " +
		"left out of the manifest, a different partitioning) stops the sink at open with a message naming the column. " +
		"Table columns the manifest does not declare are written as null (with `evolve`, from the records).\n\n" +
		"**Evolution from the records.** With `evolve: true`, a top-level field of a record's value that is no " +
		"column (neither a column's name nor the first field of a column's `from`) becomes a new optional column, " +
		"committed to the table before the data file that first carries it; rows written before read it as null. " +
		"Its type comes from its values in the write that first carries it: a string is string (also one that " +
		"holds a time), an integral number that fits is long, any other number double (integral and fractional " +
		"numbers together make double), a boolean boolean, an object or array string, holding its JSON text. A " +
		"null alone adds nothing until a value arrives; a field whose key is empty or holds a dot is left out. " +
		"A later value that does not fit the column (a string in a long column, a fraction in a long column: " +
		"Iceberg cannot widen long to double) sends its record to the dead letters with the column's name, its " +
		"type and the reason: declare such a field in `schema` with the type it needs. Table columns that " +
		"`schema` does not declare (added by an earlier run or by another writer) are written from the field of " +
		"their name, converted by their type; a string column among them takes objects and arrays as JSON text. " +
		"With `evolve`, `schema` may be left out: a table the sink creates starts without columns and takes them " +
		"all from the records (declare the columns that are partitioned, or whose type inference would get " +
		"wrong, such as timestamps). When another writer changed the schema first, the sink reads the table " +
		"again and adds only what is still missing.\n\n" +
		"**Values.** boolean: true/false; int, long: JSON integers; float, double: JSON numbers; decimal(P,S): a " +
		"number or a numeric string, never rounded (more than S decimal places is an error); date: `YYYY-MM-DD` or " +
		"days since 1970-01-01; time: `HH:MM:SS[.ffffff]`; timestamp and timestamptz: RFC 3339 (a missing zone " +
		"means UTC; the `T` may be a space) or epoch milliseconds; string: a JSON string; uuid: its canonical " +
		"text; binary: base64. A missing field or null is a null, or an error for a required column. A record that " +
		"does not fit (not a JSON object, a wrong type, a required column missing) goes to the dead letters with " +
		"the column and the reason; the rest of the write is committed.\n\n" +
		"**Delivery.** At least once by default. With `delivery: exactly_once`, each commit carries the source " +
		"positions it covers in its snapshot summary, under `sluice.positions.<pipeline>.<sink>` (a JSON list of " +
		"`{partition, offset, cursor}`), and the runtime resumes from the latest such snapshot of the table's " +
		"history. Several processes of one pipeline (a consumer group) may write the table at once: a commit " +
		"leaves out every record at or before the offset the table holds for its partition, whichever process " +
		"stored it, and a partition's position only moves forward. The commit requires the table's current " +
		"snapshot to be the one whose positions decided what was left out; when another writer committed in " +
		"between, the sink re-reads the table and commits the same data files on top, or, when another process " +
		"of the pipeline committed some of the same records meanwhile, writes the data files again without them " +
		"(removing the first ones), up to 20 times per write with a short growing wait. The sink finds its positions " +
		"in the current snapshot's ancestry; when expiry has cut the ancestry short, in the newest snapshot still " +
		"holding them. Its own expiry keeps that snapshot under a tag named after the summary key; an outside " +
		"expiry (a maintenance job) is safe as long as it keeps the latest snapshot this sink wrote, which the tag " +
		"does for any tool that honours tags.",
	Fields: []connector.Field{
		{Name: "catalog", Type: connector.TypeObject, Required: true, Description: "The catalog holding the table.",
			Example: map[string]any{"type": "sql", "uri": "sqlite:////var/lib/sluice/catalog.db", "warehouse": "file:///var/lib/sluice/warehouse"},
			Fields: []connector.Field{
				{Name: "type", Type: connector.TypeString, Default: "sql", Enum: []string{"sql", "rest"}, Description: "`sql` (SQLite or Postgres) or `rest` (an Iceberg REST catalog)."},
				{Name: "uri", Type: connector.TypeString, Required: true, Description: "sql: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `postgresql://user:password@host:5432/db`; rest: the catalog's base URL.", Example: "sqlite:////var/lib/sluice/catalog.db"},
				{Name: "warehouse", Type: connector.TypeString, Description: "Where data and metadata files go, a `file://` URL. Required for sql; for rest, passed to the catalog (which may choose its own).", Example: "file:///var/lib/sluice/warehouse"},
				{Name: "name", Type: connector.TypeString, Default: "default", Description: "The catalog's name. A SQL catalog keeps it with every table (PyIceberg must open the catalog under the same name to see them)."},
				{Name: "credential", Type: connector.TypeString, Secret: true, Description: "rest: OAuth2 client credentials, `client_id:client_secret`."},
				{Name: "token", Type: connector.TypeString, Secret: true, Description: "rest: a bearer token."},
				{Name: "properties", Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString}, Description: "Further catalog properties passed to iceberg-go as they are (rest: `prefix`, `scope`, ...)."},
			}},
		{Name: "table", Type: connector.TypeString, Required: true, Description: "The table, `namespace.table` (a nested namespace as `a.b.table`).", Example: "market.prices"},
		{Name: "schema", Type: connector.TypeList, Description: "The columns, in order. Each takes the JSON field of its name, or the one `from` names. Required unless `evolve` is true.",
			Example: []any{
				map[string]any{"name": "commodity", "type": "string", "required": true},
				map[string]any{"name": "price", "type": "double", "required": true},
				map[string]any{"name": "ts", "type": "timestamptz"},
			},
			Elem: &connector.Field{Type: connector.TypeObject, Fields: []connector.Field{
				{Name: "name", Type: connector.TypeString, Required: true, Description: "The column's name."},
				{Name: "type", Type: connector.TypeString, Required: true, Description: "boolean, int, long, float, double, decimal(P,S), date, time, timestamp, timestamptz, string, uuid or binary."},
				{Name: "required", Type: connector.TypeBool, Default: false, Description: "Records without a value for the column go to the dead letters."},
				{Name: "from", Type: connector.TypeString, Description: "A dotted path to the field in the JSON value, such as `quote.price`; a number indexes an array (`items.0.sku`); default: the column's name."},
				{Name: "doc", Type: connector.TypeString, Description: "The column's documentation, stored in the table's schema."},
			}}},
		{Name: "evolve", Type: connector.TypeBool, Default: false,
			Description: "Add an optional column to the table for each new top-level field of the records, of a type inferred from its values (see Evolution from the records), and write the table's undeclared columns from the records. Off, fields that are no column are ignored."},
		{Name: "partition", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString},
			Description: "The partition spec of a table the sink creates: columns (identity) and transforms `year(col)`, `month(col)`, `day(col)`, `hour(col)`, `bucket(N, col)`, `truncate(W, col)`. When set, an existing table must be partitioned the same way.",
			Example:     []any{"day(ts)", "commodity"}},
		{Name: "table_properties", Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString},
			Default: map[string]any{
				"commit.manifest-merge.enabled":              "true",
				"write.metadata.delete-after-commit.enabled": "true",
			},
			Description: "Properties of a table the sink creates. The default merges small manifests (one is written per commit) and keeps the last 100 metadata files instead of all of them; setting this field replaces the default."},
		{Name: "expire_snapshots", Type: connector.TypeObject,
			Description: "Expiry of old snapshots, run by the sink after a commit once every `interval`. Every commit adds a snapshot to the table's metadata, which is rewritten at each commit: without expiry it grows without end. The snapshot holding each pipeline's positions is kept, under a tag named after its summary key (see Delivery); the tag of a pipeline retired for good keeps its snapshot until the tag is removed (`ALTER TABLE ... DROP TAG`, or PyIceberg's `manage_snapshots().remove_tag`).",
			Example:     map[string]any{"older_than": "1h", "retain_last": 10},
			Fields: []connector.Field{
				{Name: "older_than", Type: connector.TypeDuration, Default: time.Hour, Description: "Snapshots older than this are expired (beyond the last `retain_last`): how far back time travel reaches. 0s turns expiry off."},
				{Name: "retain_last", Type: connector.TypeInt, Default: int64(10), Description: "Snapshots of the main branch kept whatever their age."},
				{Name: "interval", Type: connector.TypeDuration, Default: 10 * time.Minute, Description: "Time between two expiries of one sink; the first comes this long after the sink opened."},
				{Name: "delete_files", Type: connector.TypeBool, Default: true, Description: "Delete the manifests, manifest lists and data files that only expired snapshots referenced. Off, leave them to a separate cleanup (such as an orphan-files job)."},
			}},
	},
}

// Components returns the Iceberg sink, for a catalog.
func Components() []connector.Component {
	return []connector.Component{
		connector.SinkComponent(sinkSpec, func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
			return NewSink(cfg, env)
		}),
	}
}
