// Package schema decodes record values written with a schema registry (Avro, Protobuf, JSON
// Schema) into the JSON that transforms see, and encodes JSON values back with a registry schema.
// A source's `decode:` mapping (DecodeSpec) and a sink's `encode:` mapping (EncodeSpec) configure
// it; the engine sets the headers `sluice-schema-id` and `sluice-schema-subject` from the Info
// each call returns.
//
// # Wire format
//
// Values are in the Confluent wire format: magic byte 0, the schema id (4 bytes, big-endian), for
// Protobuf the message indexes (a zigzag-varint count and that many zigzag varints; the single
// byte 0 stands for the first message of the schema), then the payload. Format json reads plain
// JSON (validated as JSON, passed on unchanged) and needs no registry; with a registry
// configured it also accepts values in the wire format, strips the header and reports the id and
// its subject, without validating against the schema (json_schema does that). Encoding with
// format json writes plain JSON and takes no registry.
//
// # Registry
//
// Schemas are fetched by id (GET /schemas/ids/{id}, with their references) and the subject of an
// id from GET /schemas/ids/{id}/versions: the first subject listed, since registries give an
// identical schema registered under several subjects one id. Each id is fetched once, by
// whichever goroutine asks first, and kept parsed, up to registry.cache_size ids; an id the
// registry does not know (HTTP 404) is remembered as unknown as well. Failures retrying may fix
// (the registry cannot be reached, answers 5xx or 429, or times out) are not remembered: they are
// errors matching ErrUnavailable, and the engine retries them with backoff. HTTP 401 and 403 wrap
// connector.ErrPermanent. The encoder registers its schema under its subject (auto_register), looks
// it up, or takes the subject's latest version, when it opens; the registry's refusal of an
// incompatible schema (HTTP 409) is a permanent error that quotes the registry's reason.
//
// Schema references are followed for all three formats: Avro named types defined in a referenced
// schema, Protobuf imports (by the reference's name) and JSON Schema $refs whose URL ends with the
// reference's name. A schema given inline to the encoder (schema, schema_file) cannot have
// references; without it the encoder uses the subject's latest schema with its references.
// Protobuf imports of google/protobuf/*.proto (the well-known types) resolve without references.
//
// # Avro as JSON
//
// The decoder transcodes Avro binary straight into JSON, driven by the writer's schema (no
// intermediate Go values), so records decode at about the speed of the Avro library alone. The
// mapping aims at what a transform expects to see:
//
//   - records and maps are JSON objects (record fields in schema order); arrays are arrays;
//   - unions are unwrapped: a ["null","string"] field is null or the string, with no {"string": ...}
//     wrapper (unlike the Avro JSON encoding);
//   - enums are their symbol as a string;
//   - int and long are JSON integers, all digits kept (a long above 2^53 is exact in the text;
//     JavaScript-based readers may round it);
//   - float and double are numbers written as encoding/json writes them; NaN and ±infinity, which
//     JSON numbers cannot hold, are the strings "NaN", "Infinity", "-Infinity" (as in the proto3
//     JSON mapping);
//   - bytes and fixed are base64 strings (standard alphabet, padded), as encoding/json writes
//     []byte, rather than the Avro JSON encoding's one-character-per-byte strings;
//   - decimal (bytes or fixed) is an exact JSON number with exactly scale digits after the point
//     ("12.50"), never rounded through a float;
//   - date is the number of days since 1970-01-01; time-millis, time-micros, timestamp-millis,
//     timestamp-micros and their local- variants are the numbers Avro stores (milliseconds or
//     microseconds, since midnight or since the epoch);
//   - uuid is its string; duration is {"months": m, "days": d, "milliseconds": ms}.
//
// Encoding reads JSON the same way, guided by the schema: numbers into int, long, float and double
// (an int out of range, or a fraction for an integer type, is refused); strings into enums
// (which must be symbols); base64 strings into bytes and fixed; decimals from numbers or numeric
// strings (more decimal places than the scale, or more digits than the precision, are refused, not
// rounded); dates also from "YYYY-MM-DD" and timestamps also from RFC 3339 text; "NaN",
// "Infinity" and "-Infinity" into float and double. A union takes the first branch whose type the
// JSON value naturally is (null, boolean, number, string or enum, array, object as record or map),
// trying the next when the value does not fit (a record missing a required field), and then the
// branches a string converts to (bytes, decimal, timestamps). A missing record field takes its
// default; a missing field without a default, and a field the record does not have (unless
// ignore_unknown_fields), send the record to the dead letters naming the field.
//
// # Protobuf as JSON
//
// Protobuf values follow the proto3 JSON mapping (google.golang.org/protobuf/encoding/protojson):
// fields under their .proto names (protobuf.field_names: json for lowerCamelCase), fields holding
// their zero value included (protobuf.emit_unpopulated, default true, so every record has every
// field), enums as names (protobuf.enums_as_ints for numbers), int64 and uint64 as decimal
// strings, bytes as base64, well-known types (Timestamp, Duration, wrappers, Struct) in their
// JSON forms. The message indexes of each value select its message. The registry may hold a
// Protobuf schema as .proto source or in serialized form (the base64 of a FileDescriptorProto, as
// Confluent's Python serializer registers it); both are read. Encoding reads the same
// mapping (both field-name styles) into the message named by encode.message (default: the
// schema's first message); unknown fields are refused unless ignore_unknown_fields.
//
// # JSON Schema
//
// Values are JSON already: decoding validates the payload against the schema of its id and passes
// it on unchanged; encoding validates the value against the subject's schema and writes it after
// the header. A value that does not match goes to the dead letters with the failing locations
// ("/price: must be >= 0").
//
// # Errors
//
// A value that cannot be decoded or encoded is a *RecordError: the engine sends the record to the
// dead letters with Error(), which names the schema id, the subject and the problem, e.g.
//
//	schema id 7 (subject prices-value): field "price": expected double, got string
//
// Decode and Encode are safe for concurrent use; Open is not.
package schema
