// Package template renders the small text templates with which connectors name keys, topics,
// streams, table rows and paths from record content.
//
// A template is literal text with placeholders in double braces:
//
//	price:{{commodity}}            a field of the record's JSON value
//	{{value.listing.id}}           the same, spelled out (needed when a field is named like a keyword)
//	{{items.0.sku}}                a number indexes an array
//	{{key}}                        the record key
//	{{value}}                      the whole value
//	{{header.trace-id}}            the first header with that key
//	{{partition}} {{offset}}       the record's source position
//	{{time}} {{time_ms}}           the record time: RFC 3339 in UTC with milliseconds, or epoch milliseconds
//	{{"{{"}}                       a quoted literal, for text that contains "{{"
//
// Spaces inside the braces are ignored. A JSON string renders without its quotes and with its
// escapes decoded; numbers and booleans render as their JSON text; objects and arrays render as
// compact JSON. A field that is missing or null, a header that is absent, or a value that is not
// JSON is a render error: a sink sends that record to the dead letters and writes the others.
//
// Templates are parsed once, when a connector is constructed (ParseField gives a
// *connector.ConfigError, so `sluice validate` points at the field), and rendered per record
// without allocating beyond the output (Append).
package template
