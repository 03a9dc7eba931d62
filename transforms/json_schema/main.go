// Command json_schema validates JSON records against the JSON Schema given in its config
// ({"schema": {...}}), with github.com/santhosh-tekuri/jsonschema/v6. Valid records pass; the others
// are rejected with reasons that name the failing JSON pointer, e.g. "/price: must be >= 0". See
// README.md.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sluicehq/sluice/internal/schemamsg"
	"github.com/sluicehq/sluice/sdk/go/transform"
)

func main() {}

// schema is compiled once per instance at init and only read afterwards.
var schema *jsonschema.Schema

// maxLeaves caps how many failures one reason lists.
const maxLeaves = 8

const configSchema = `{"type":"object","required":["schema"],"additionalProperties":false,"properties":{
"schema":{"type":["object","boolean"]},"assert_format":{"type":"boolean"}}}`

func init() {
	transform.Register(transform.Meta{
		Name:         "json_schema",
		Version:      "1.0.0",
		Kinds:        []transform.Kind{transform.KindValidate},
		ConfigSchema: configSchema,
	}, transform.ProcessFunc(process), transform.OnInit(setup))
}

// noLoader refuses every external reference: a guest has no filesystem or network, and a schema
// must be self-contained.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, errors.New("external schema references are not supported: " + url)
}

func setup() error {
	var c struct {
		Schema       json.RawMessage `json:"schema"`
		AssertFormat bool            `json:"assert_format"`
	}
	if err := transform.Config(&c); err != nil {
		return err
	}
	if len(c.Schema) == 0 {
		return errors.New("config: schema: required")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(c.Schema))
	if err != nil {
		return errors.New("config: schema: " + err.Error())
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.UseLoader(noLoader{})
	if c.AssertFormat {
		comp.AssertFormat()
	}
	const url = "sluice:///config/schema.json"
	if err := comp.AddResource(url, doc); err != nil {
		return errors.New("config: schema: " + err.Error())
	}
	s, err := comp.Compile(url)
	if err != nil {
		var sve *jsonschema.SchemaValidationError
		var ve *jsonschema.ValidationError
		if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
			// One line naming each offending keyword, instead of the library's indented tree.
			return errors.New("config: schema: not a valid JSON Schema (draft 2020-12): " + schemamsg.Reason(ve, maxLeaves))
		}
		return errors.New("config: schema: " + err.Error())
	}
	schema = s
	return nil
}

func process(b *transform.Batch) error {
	for i := 0; i < b.Len(); i++ {
		v := b.Record(i).Value
		if !utf8.Valid(v) {
			b.Reject(i, transform.CodeInvalidInput, "not valid JSON")
			continue
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(v))
		if err != nil {
			b.Reject(i, transform.CodeInvalidInput, "not valid JSON")
			continue
		}
		err = schema.Validate(inst)
		if err == nil {
			continue
		}
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			b.Reject(i, transform.CodeSchema, err.Error())
			continue
		}
		b.Reject(i, transform.CodeSchema, schemamsg.Reason(ve, maxLeaves))
	}
	return nil
}
