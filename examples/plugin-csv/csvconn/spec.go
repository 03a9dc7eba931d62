// Package csvconn is a CSV file source and sink for Sluice, written against sdk/go/connector. It
// runs as the plugin binary built from the directory above, or compiled into a build of Sluice:
// Components is what either way takes.
package csvconn

import "github.com/sluicehq/sluice/sdk/go/connector"

// Components returns the csv source and the csv sink: their specs and factories.
func Components() []connector.Component {
	return []connector.Component{
		connector.SourceComponent(SourceSpec(), NewSource),
		connector.SinkComponent(SinkSpec(), NewSink),
	}
}

// SourceSpec declares the csv source.
func SourceSpec() connector.Spec {
	return connector.Spec{
		Name:    "csv",
		Kind:    connector.KindSource,
		Summary: "Reads the rows of a CSV file as JSON records",
		Description: "Every row becomes one record whose value is a JSON object keyed by the header " +
			"row (or a JSON array of strings without a header). The position is the byte offset after " +
			"the row, so a restarted pipeline continues with the next row.",
		Bounded: true,
		Fields: []connector.Field{
			{Name: "path", Type: connector.TypeString, Required: true, Description: "CSV file to read.", Example: "data/prices.csv"},
			{Name: "header", Type: connector.TypeBool, Default: true, Description: "The first row names the columns."},
			{Name: "key_column", Type: connector.TypeString, Description: "Column whose value becomes the record key (needs header)."},
			{Name: "delimiter", Type: connector.TypeString, Default: ",", Description: "Field delimiter, one character."},
			{Name: "batch_size", Type: connector.TypeInt, Default: int64(1000), Description: "Rows per batch."},
		},
	}
}

// SinkSpec declares the csv sink.
func SinkSpec() connector.Spec {
	return connector.Spec{
		Name:    "csv",
		Kind:    connector.KindSink,
		Summary: "Appends JSON object records as CSV rows",
		Description: "Every record value must be a JSON object; the listed columns are taken from it " +
			"(strings as they are, other values as JSON, missing ones empty). A record whose value is " +
			"not a JSON object fails on its own and goes to the dead-letter sink. Every batch is " +
			"fsynced before Write returns.",
		Fields: []connector.Field{
			{Name: "path", Type: connector.TypeString, Required: true, Description: "CSV file to append to; created when missing, its directory must exist.", Example: "out/prices.csv"},
			{Name: "columns", Type: connector.TypeList, Required: true, Elem: &connector.Field{Type: connector.TypeString},
				Description: "Columns to write, in order.", Example: []any{"sku", "price"}},
			{Name: "header", Type: connector.TypeBool, Default: true, Description: "Write a header row when the file is empty."},
			{Name: "delimiter", Type: connector.TypeString, Default: ",", Description: "Field delimiter, one character."},
		},
	}
}

func delimiter(cfg connector.Config) (rune, error) {
	d := cfg.String("delimiter")
	if d == "" {
		return ',', nil
	}
	r := []rune(d)
	if len(r) != 1 || r[0] == '"' || r[0] == '\n' || r[0] == '\r' {
		return 0, &connector.ConfigError{Field: "delimiter", Msg: "want one character other than a quote or a newline"}
	}
	return r[0], nil
}
