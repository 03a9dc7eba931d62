// Package postgres provides the postgres sink: JSON records into a Postgres table with COPY,
// appended or upserted, with per-row dead letters and exactly-once delivery through a positions
// table written in the same transaction as the rows.
package postgres

import (
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

var sinkSpec = connector.Spec{
	Name:        "postgres",
	Summary:     "Writes JSON records into a Postgres table with COPY: appended, or upserted by key; exactly-once capable.",
	ExactlyOnce: true,
	Description: "Each record value is a JSON object; `columns` names the table columns to fill and their SQL types. " +
		"A column takes the field of the same name, or the one `from` names: a dotted path into the value " +
		"(`quote.price`; a number indexes an array: `legs.0.price`), or record metadata: `@key`, `@value` (the whole value), `@time`, `@partition`, `@offset`, " +
		"`@headers` (a JSON array of `{key, value}`) or `@header.NAME` (the first header NAME). " +
		"A missing field or a JSON null is NULL, except in a key column.\n\n" +
		"```yaml\n" +
		"spec:\n" +
		"  sinks:\n" +
		"    - name: prices\n" +
		"      type: postgres\n" +
		"      config:\n" +
		"        dsn: ${env:PG_DSN}\n" +
		"        table: market.prices     # or an unqualified name, found through search_path\n" +
		"        create_table: true\n" +
		"        mode: upsert\n" +
		"        key: [id]\n" +
		"        columns:\n" +
		"          id: bigint\n" +
		"          commodity: text\n" +
		"          price: {type: numeric(12,4), from: quote.price}\n" +
		"          ts: timestamptz\n" +
		"        value_column: payload      # the whole value too, as jsonb\n" +
		"```\n\n" +
		"**Types.** Values are converted by the declared type, on the way in: " +
		"`text`, `varchar(n)`, `char(n)` take a string (a number, boolean, object or array as its JSON text); " +
		"`smallint`, `integer`, `bigint` an integral number, or a string holding one, range-checked; " +
		"`real`, `double precision` and `numeric(p,s)` a number or a string holding one (`NaN`, `Infinity` too); " +
		"`boolean` true/false (or the strings Postgres accepts: `t`, `yes`, `on`, `1`...); " +
		"`timestamptz` and `timestamp` an RFC 3339 string (a space for the `T` and no zone, meaning UTC, are accepted) " +
		"or a number of epoch milliseconds (`timestamp` gets the UTC wall clock); " +
		"`date` `YYYY-MM-DD`, the date part of an RFC 3339 time as written, or epoch milliseconds (UTC); " +
		"`jsonb`, `json` any JSON value (from `@key`, `@value` or a header: the bytes, which must be JSON); " +
		"`uuid` a UUID string; `bytea` a base64 or `\\x`-hex string (from `@key`, `@value` or a header: the bytes). " +
		"A value that does not convert sends its record to the dead letters, with the column and the reason.\n\n" +
		"**Names.** Table, schema and column names are used exactly as written, as if double-quoted: write them in " +
		"lower case, as Postgres folds unquoted names. With `create_table: true` the table (and its schema) is " +
		"created when missing, key columns first as the primary key, then the other columns by name, then " +
		"`value_column`. Without it, the table must exist; it is checked on open: every column present with the " +
		"declared type (varchar, char and text are interchangeable), no NOT NULL column without a default left out, " +
		"INSERT (and for upsert UPDATE) granted, and for upsert a unique index on exactly the key columns.\n\n" +
		"**Evolution from the records.** With `create_table: true` and `evolve: true`, a top-level field of a " +
		"record's value that is no column of the table (neither a column's name nor the first field of a column's " +
		"`from`) is added to the table with `ALTER TABLE ... ADD COLUMN IF NOT EXISTS` before the batch's rows are " +
		"written; rows written before hold NULL there. Its type comes from its values in the batch that first " +
		"carries it: a string is `text` (also one that holds a time), an integral number that fits is `bigint`, any " +
		"other number `double precision` (integral and fractional numbers together make `double precision`), a " +
		"boolean `boolean`, an object or array `jsonb`. A null alone adds nothing until a value arrives; a key " +
		"Postgres cannot take as a column name is left out. Values are then converted as for a configured column of " +
		"that type: a value that does not convert (a word in a `bigint` column, a fraction in a `bigint` column) " +
		"sends its record to the dead letters with the column and the reason; declare such a field in `columns` " +
		"with the type it needs. The table's columns that `columns` does not name (added by an earlier run or " +
		"another process) are written from the field of their name, in upsert mode too. `columns` may then be left " +
		"out: a table created without columns takes them all from the records. The `ALTER TABLE` runs on its own, " +
		"before the transaction of the rows (and positions), so its lock is held only for the change; when another " +
		"process added the column first, its type is kept.\n\n" +
		"**Modes.** `append` writes each batch with one binary COPY. `upsert` runs one " +
		"`INSERT ... ON CONFLICT (key) DO UPDATE` per batch: a batch of up to 64 records as its VALUES, a larger one " +
		"copied first into a temporary table; within a batch the last record of each key wins. Upsert keeps a temporary table on its connection, so it needs session pooling if a " +
		"pooler such as PgBouncer sits in between.\n\n" +
		"**Refused rows.** A row the database refuses (a constraint, a value out of range, a trigger's exception) goes " +
		"to the dead letters with the database's message, and only that row: the sink finds it through the line " +
		"COPY reports, or by splitting the batch, each try inside a savepoint of one transaction, and writes the " +
		"rest. Lost connections, timeouts and a server shutting down fail the write, which the runtime retries " +
		"with backoff (reconnecting); a wrong password, a missing database, table or privilege, or a read-only " +
		"server stop the pipeline with a message saying what to fix.\n\n" +
		"**Exactly once.** With `delivery: exactly_once` every batch is written in one transaction together with " +
		"the source positions it covers, in `positions_table` (created when missing): " +
		"`(pipeline, sink, partition, \"offset\", cursor, updated_at)`, primary key `(pipeline, sink, partition)`. " +
		"On start the pipeline resumes from there. Several processes of one pipeline may write at once (the " +
		"members of a Kafka consumer group, whose partitions move between them): each transaction first locks the " +
		"positions rows of its partitions (inserting the missing ones), always in the order of their names so that " +
		"two writers never deadlock, leaves out the records at or before the offsets stored there, whichever " +
		"process stored them, and moves each position forward only. A batch whose commit answer was lost with the " +
		"connection is retried the same way: if it committed, its records are found stored and left out.\n\n" +
		"**Dead-letter table.** As a pipeline's `dead_letter` sink, `layout: dead_letter` stores each dead letter " +
		"as a row of `id` (identity), `failed_at`, `pipeline`, `stage`, `kind`, `code`, `reason`, " +
		"`source_partition`, `source_offset`, `record_key`, `record_time`, `headers` (jsonb array of " +
		"`{key, value}`, or `value_base64` for binary values), `value` (the original value, when it is text) and " +
		"`value_bytes` (the original value otherwise). With `create_table: true` the table is created with " +
		"this layout.\n\n" +
		"Delivery is at least once otherwise: after a crash, rows of the batches between the last checkpoint and " +
		"the crash are written again (append duplicates them; upsert overwrites them with the same values).",
	Fields: []connector.Field{
		{Name: "dsn", Type: connector.TypeString, Required: true, Secret: true,
			Description: "Connection string, a URL (`postgres://user:password@host:5432/db?sslmode=require`) or keyword/value (`host=... dbname=...`), as libpq takes it; PG* environment variables fill what it leaves out."},
		{Name: "table", Type: connector.TypeString, Required: true, Example: "prices",
			Description: "The table to write, `name` or `schema.name`, used as written (case-sensitive)."},
		{Name: "create_table", Type: connector.TypeBool, Default: false,
			Description: "Create the table (and its schema) when missing, from `columns`, `key` and `value_column`, or with the dead-letter layout."},
		{Name: "mode", Type: connector.TypeString, Default: modeAppend, Enum: []string{modeAppend, modeUpsert},
			Description: "`append` inserts every record with COPY; `upsert` inserts or updates by `key` (the last record of a key in a batch wins)."},
		{Name: "key", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString},
			Description: "Key columns, from `columns`: the conflict target of upsert (a primary key or unique index on exactly these columns) and the primary key of a created table. A record whose key column is missing or null goes to the dead letters."},
		{Name: "columns", Type: connector.TypeMap, Example: map[string]any{"commodity": "text", "price": "double precision", "ts": "timestamptz"},
			Description: "Column name → SQL type, or `{type: ..., from: ...}` where `from` is a dotted path into the JSON value or `@key`, `@value`, `@time`, `@partition`, `@offset`, `@headers`, `@header.NAME`. Required unless `value_column` or `evolve` is set."},
		{Name: "evolve", Type: connector.TypeBool, Default: false,
			Description: "With `create_table: true`: add a column to the table for each new top-level field of the records, of a type inferred from its values (see Evolution from the records), and write the table's other columns from the fields of their names. Off, fields that are no column are ignored."},
		{Name: "value_column", Type: connector.TypeString, Default: "",
			Description: "A jsonb column that receives each record value whole (which must then be JSON), besides `columns`."},
		{Name: "layout", Type: connector.TypeString, Default: layoutColumns, Enum: []string{layoutColumns, layoutDeadLetter},
			Description: "`columns` writes the configured columns; `dead_letter` writes the runtime's dead-letter envelopes into the fixed dead-letter layout (use it for a pipeline's `dead_letter` sink)."},
		{Name: "positions_table", Type: connector.TypeString, Default: "sluice_positions",
			Description: "With exactly-once delivery, the table of stored source positions; an unqualified name lives in the schema of `table` (or the first of search_path)."},
		{Name: "connect_timeout", Type: connector.TypeDuration, Default: 10 * time.Second,
			Description: "Time allowed to connect, including TLS and authentication."},
		{Name: "write_timeout", Type: connector.TypeDuration, Default: time.Minute,
			Description: "Time allowed for one batch, isolation of refused rows included; past it the connection is dropped and the write retried."},
	},
}

// Component returns the postgres sink, for a catalog.
func Component() connector.Component {
	return connector.SinkComponent(sinkSpec, func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
		return NewSink(cfg, env)
	})
}
