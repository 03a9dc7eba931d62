package schema

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Formats of decode: and encode:.
const (
	FormatAvro       = "avro"
	FormatProtobuf   = "protobuf"
	FormatJSONSchema = "json_schema"
	FormatJSON       = "json"
)

var formats = []string{FormatAvro, FormatProtobuf, FormatJSONSchema, FormatJSON}

func registryField() connector.Field {
	return connector.Field{
		Name: "registry", Type: connector.TypeObject,
		Description: "The schema registry (Confluent's REST API; Apicurio's ccompat API, Redpanda and Karapace speak it too). " +
			"Required by avro, protobuf and json_schema.",
		Fields: []connector.Field{
			{Name: "url", Type: connector.TypeString, Example: "http://localhost:8081",
				Description: "Base URL of the registry (for Apicurio, the ccompat API: http://host:8080/apis/ccompat/v7). Several URLs separated by commas are tried in turn."},
			{Name: "username", Type: connector.TypeString, Description: "User name for HTTP basic auth (with password)."},
			{Name: "password", Type: connector.TypeString, Secret: true, Description: "Password for HTTP basic auth."},
			{Name: "token", Type: connector.TypeString, Secret: true, Description: "Bearer token, sent as `Authorization: Bearer <token>`; excludes username/password."},
			{Name: "tls", Type: connector.TypeObject, Description: "TLS options for an https URL.",
				Fields: []connector.Field{
					{Name: "ca_file", Type: connector.TypeString, Description: "PEM file of the CAs that sign the registry's certificate (default: the system's)."},
					{Name: "cert_file", Type: connector.TypeString, Description: "PEM client certificate, for registries that require one (with key_file)."},
					{Name: "key_file", Type: connector.TypeString, Description: "PEM private key of cert_file."},
					{Name: "insecure_skip_verify", Type: connector.TypeBool, Default: false, Description: "Accept any server certificate. For tests only: it allows a man in the middle."},
				}},
			{Name: "timeout", Type: connector.TypeDuration, Default: 10 * time.Second, Description: "Limit on each registry request; a request that takes longer counts as the registry being unavailable."},
			{Name: "cache_size", Type: connector.TypeInt, Default: int64(1000), Description: "Schemas kept parsed, by id; when full, one is dropped to make room (and fetched again when needed)."},
		},
	}
}

// DecodeSpec declares the decode: mapping of a source: how record values are turned into the JSON
// the transforms see. The manifest loader validates a decode: mapping against it.
var DecodeSpec = connector.Spec{
	Name:    "decode",
	Summary: "Decode record values written with a schema (Avro, Protobuf, JSON Schema) into JSON.",
	Description: "Values in the schema registry wire format (magic byte 0, 4-byte schema id, payload) are decoded with the schema " +
		"the registry gives for their id and become JSON, so every transform works on them unchanged. The schema id and subject " +
		"travel as the headers `sluice-schema-id` and `sluice-schema-subject`. A payload that is not in the wire format, names " +
		"an id the registry does not know, or does not decode goes to the dead letters with the id, subject and reason. " +
		"See the package documentation of internal/schema for the JSON mapping of each format.",
	Fields: []connector.Field{
		{Name: "format", Type: connector.TypeString, Required: true, Enum: formats,
			Description: "avro, protobuf and json_schema read the registry wire format; json accepts plain JSON (and, with a registry, also strips the wire-format header)."},
		registryField(),
		{Name: "protobuf", Type: connector.TypeObject, Description: "How Protobuf messages become JSON (the proto3 JSON mapping).",
			Fields: []connector.Field{
				{Name: "field_names", Type: connector.TypeString, Default: "proto", Enum: []string{"proto", "json"},
					Description: "proto keeps the .proto field names (order_id); json uses their lowerCamelCase JSON names (orderId)."},
				{Name: "emit_unpopulated", Type: connector.TypeBool, Default: true,
					Description: "Write fields that hold their zero value (0, \"\", false, empty lists) instead of leaving them out, so every record has every field."},
				{Name: "enums_as_ints", Type: connector.TypeBool, Default: false, Description: "Write enum values as numbers instead of their names."},
			}},
	},
}

// EncodeSpec declares the encode: mapping of a sink: how the JSON record values are written with a
// registry schema. The manifest loader validates an encode: mapping against it.
var EncodeSpec = connector.Spec{
	Name:    "encode",
	Summary: "Encode JSON record values with a registry schema (Avro, Protobuf, JSON Schema) in the registry wire format.",
	Description: "Opening the sink registers the schema under the subject (auto_register with schema or schema_file) or looks it up; " +
		"without a schema it takes the subject's latest version. A schema the registry refuses under the subject's compatibility " +
		"rules stops the pipeline with the registry's reason. A value that does not fit the schema goes to the dead letters with " +
		"the subject and the reason.",
	Fields: []connector.Field{
		{Name: "format", Type: connector.TypeString, Required: true, Enum: formats,
			Description: "avro, protobuf and json_schema write the registry wire format; json writes the value as plain JSON (no registry)."},
		registryField(),
		{Name: "subject", Type: connector.TypeString, Example: "listings-clean-value",
			Description: "Registry subject of the schema (TopicNameStrategy: `<topic>-value`). Required by avro, protobuf and json_schema."},
		{Name: "schema", Type: connector.TypeString, Description: "Schema text (Avro JSON, .proto source, or JSON Schema); excludes schema_file. Without either, the subject's latest schema is used."},
		{Name: "schema_file", Type: connector.TypeString, Description: "File holding the schema text, read when the sink opens."},
		{Name: "message", Type: connector.TypeString, Example: "shop.v1.Listing",
			Description: "Protobuf: full name of the message to write (default: the first message of the schema)."},
		{Name: "auto_register", Type: connector.TypeBool, Default: false,
			Description: "Register schema/schema_file under the subject when opening (the registry checks compatibility and refuses an incompatible change). " +
				"When false, the schema must already be registered there."},
		{Name: "normalize", Type: connector.TypeBool, Default: false, Description: "Ask the registry to normalize the schema before registering or looking it up."},
		{Name: "ignore_unknown_fields", Type: connector.TypeBool, Default: false,
			Description: "Avro and Protobuf: drop JSON fields the schema does not have, instead of sending the record to the dead letters."},
	},
}

type tlsConfig struct {
	CAFile   string `config:"ca_file"`
	CertFile string `config:"cert_file"`
	KeyFile  string `config:"key_file"`
	Insecure bool   `config:"insecure_skip_verify"`
}

type registryConfig struct {
	URL       string        `config:"url"`
	Username  string        `config:"username"`
	Password  string        `config:"password"`
	Token     string        `config:"token"`
	TLS       tlsConfig     `config:"tls"`
	Timeout   time.Duration `config:"timeout"`
	CacheSize int           `config:"cache_size"`
}

type protobufOptions struct {
	FieldNames      string `config:"field_names"`
	EmitUnpopulated bool   `config:"emit_unpopulated"`
	EnumsAsInts     bool   `config:"enums_as_ints"`
}

type decodeConfig struct {
	Format   string          `config:"format"`
	Registry registryConfig  `config:"registry"`
	Protobuf protobufOptions `config:"protobuf"`
}

type encodeConfig struct {
	Format        string         `config:"format"`
	Registry      registryConfig `config:"registry"`
	Subject       string         `config:"subject"`
	Schema        string         `config:"schema"`
	SchemaFile    string         `config:"schema_file"`
	Message       string         `config:"message"`
	AutoRegister  bool           `config:"auto_register"`
	Normalize     bool           `config:"normalize"`
	IgnoreUnknown bool           `config:"ignore_unknown_fields"`
}

// check validates what the spec cannot express; field prefixes the field names (registry.).
func (c *registryConfig) check(needed bool, format string) error {
	if c.URL == "" {
		if needed {
			return &connector.ConfigError{Field: "registry.url", Msg: "is required with format " + format,
				Hint: "give the schema registry's base URL, e.g. registry: {url: http://localhost:8081}"}
		}
		return nil
	}
	for _, raw := range strings.Split(c.URL, ",") {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &connector.ConfigError{Field: "registry.url", Msg: fmt.Sprintf("%q is not an http or https URL", raw)}
		}
		if u.User != nil {
			return &connector.ConfigError{Field: "registry.url", Msg: "holds credentials",
				Hint: "give them as registry.username and registry.password (or registry.token), which stay out of logs"}
		}
	}
	if c.Token != "" && (c.Username != "" || c.Password != "") {
		return &connector.ConfigError{Field: "registry.token", Msg: "excludes registry.username and registry.password"}
	}
	if c.Password != "" && c.Username == "" {
		return &connector.ConfigError{Field: "registry.username", Msg: "is required with registry.password"}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return &connector.ConfigError{Field: "registry.tls.cert_file", Msg: "cert_file and key_file go together"}
	}
	if c.Timeout <= 0 {
		return &connector.ConfigError{Field: "registry.timeout", Msg: "must be greater than 0"}
	}
	if c.CacheSize <= 0 {
		return &connector.ConfigError{Field: "registry.cache_size", Msg: "must be greater than 0"}
	}
	return nil
}
