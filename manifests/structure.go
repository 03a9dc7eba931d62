package manifests

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// key is one key of a fixed mapping of a Pipeline document. The loader's strict key checks and
// the JSON Schema's properties and required lists both come from the shapes below, so a key
// cannot be known to one and not the other.
type key struct {
	name     string
	required bool
	desc     string
	// A key's value is one of: a setting (rule), a mapping of settings (section), a nested shape,
	// or whatever value describes (in the JSON Schema, its description aside).
	rule    *rule
	section []rule
	shape   *shape
	// fields is a mapping checked against connector fields, nested objects included (decode:,
	// encode:).
	fields []connector.Field
	value  func(cat Catalog) (schemaObj, error)
	// of is, for the docs, the shape of a list's items or of a definition (source, sinks...).
	of *shape
	// nullable keys may be written as null, which the loader reads as absent.
	nullable bool
	// allowed overrides, in the docs, the allowed values worked out from value.
	allowed string
}

// valueSchema describes the key's value in the JSON Schema.
func (k key) valueSchema(cat Catalog) (schemaObj, error) {
	switch {
	case k.rule != nil:
		return fromRule(*k.rule)(cat)
	case k.section != nil:
		return rulesSchema(k.section, "")
	case k.shape != nil:
		return k.shape.jsonSchema(cat)
	case k.fields != nil:
		return fieldsSchema(k.fields)
	}
	return k.value(cat)
}

// shape is a fixed mapping of the document: its keys, in the order the docs give them.
type shape struct {
	desc string
	keys []key
	// oneOf lists alternatives: the mapping holds the keys of exactly one of them and none of
	// the others' (a transform's wasm or aggregate; a window's kind).
	oneOf []alternative
}

// alternative is one way of writing a mapping: keys it requires, and optional keys that belong
// to it alone.
type alternative struct {
	required, with []string
}

// alternatives renders, for the docs, the alternatives of oneOf when key is required by one
// ("one of `wasm`, `aggregate`"), or "" when it is not.
func (s shape) alternatives(key string) string {
	in := false
	parts := make([]string, len(s.oneOf))
	for i, alt := range s.oneOf {
		in = in || contains(alt.required, key)
		quoted := make([]string, len(alt.required))
		for j, k := range alt.required {
			quoted[j] = "`" + k + "`"
		}
		parts[i] = strings.Join(quoted, " with ")
	}
	if !in {
		return ""
	}
	return "one of " + strings.Join(parts, ", ")
}

// names lists the keys the loader accepts.
func (s shape) names() []string {
	out := make([]string, len(s.keys))
	for i, k := range s.keys {
		out[i] = k.name
	}
	return out
}

// jsonSchema describes the mapping: a closed object with its required keys.
func (s shape) jsonSchema(cat Catalog) (schemaObj, error) {
	props := schemaObj{}
	var req []any
	for _, k := range s.keys {
		v, err := k.valueSchema(cat)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.name, err)
		}
		if k.nullable {
			v = schemaObj{"anyOf": []any{v, schemaObj{"type": "null"}}}
		}
		if k.desc != "" {
			v["description"] = k.desc
		}
		props[k.name] = v
		if k.required {
			req = append(req, k.name)
		}
	}
	out := schemaObj{"type": "object", "additionalProperties": false, "properties": props}
	if len(req) > 0 {
		out["required"] = req
	}
	if len(s.oneOf) > 0 {
		out["oneOf"] = s.oneOfSchema()
	}
	if s.desc != "" {
		out["description"] = s.desc
	}
	return out, nil
}

// oneOfSchema says that the mapping holds the keys of exactly one alternative of oneOf: each
// branch requires its keys and refuses those of the other alternatives.
func (s shape) oneOfSchema() []any {
	var out []any
	for i, alt := range s.oneOf {
		branch := schemaObj{"required": anySlice(alt.required)}
		var others []any
		for j, o := range s.oneOf {
			for _, k := range append(o.required[:len(o.required):len(o.required)], o.with...) {
				if j != i && !contains(alt.required, k) && !contains(alt.with, k) {
					others = append(others, schemaObj{"required": []any{k}})
				}
			}
		}
		if len(others) > 0 {
			branch["not"] = schemaObj{"anyOf": others}
		}
		out = append(out, branch)
	}
	return out
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Value descriptions for keys.
func static(s schemaObj) func(Catalog) (schemaObj, error) {
	return func(Catalog) (schemaObj, error) { return copySchema(s), nil }
}

func definition(name string) func(Catalog) (schemaObj, error) {
	return static(schemaObj{"$ref": "#/definitions/" + name})
}

func listOf(name string, minItems int) func(Catalog) (schemaObj, error) {
	s := schemaObj{"type": "array", "items": schemaObj{"$ref": "#/definitions/" + name}}
	if minItems > 0 {
		s["minItems"] = minItems
	}
	return static(s)
}

func fromRule(r rule) func(Catalog) (schemaObj, error) {
	return func(Catalog) (schemaObj, error) {
		s, err := ruleSchema(r)
		if err != nil {
			return nil, err
		}
		delete(s, "description") // the key's own
		return s, nil
	}
}

// componentType describes the type: key of a source or sink: one of the catalog's names.
func componentType(kind connector.Kind) func(Catalog) (schemaObj, error) {
	return func(cat Catalog) (schemaObj, error) {
		s := schemaObj{"type": "string"}
		if names := cat.Names(kind); len(names) > 0 {
			enum := make([]any, len(names))
			for i, n := range names {
				enum[i] = n
			}
			s["enum"] = enum
		}
		return s, nil
	}
}

func copySchema(s schemaObj) schemaObj {
	out := make(schemaObj, len(s))
	for k, v := range s {
		if m, ok := v.(schemaObj); ok {
			v = copySchema(m)
		}
		out[k] = v
	}
	return out
}

// ruleKeys turns settings into keys of a mapping.
func ruleKeys(rules []rule) []key {
	out := make([]key, len(rules))
	for i := range rules {
		out[i] = key{name: rules[i].Name, desc: rules[i].Description, rule: &rules[i]}
	}
	return out
}

// The shapes of a Pipeline document.
var (
	documentShape = shape{
		desc: "One pipeline: a source, optional WASM transforms, and one or more sinks.",
		keys: []key{
			{name: "apiVersion", required: true, desc: "Manifest API version.", value: static(schemaObj{"const": APIVersion})},
			{name: "kind", required: true, desc: "Document kind.", value: static(schemaObj{"const": "Pipeline"})},
			{name: "metadata", required: true, shape: &metadataShape},
			{name: "spec", required: true, shape: &specShape},
		},
	}
	metadataShape = shape{keys: []key{
		{name: "name", required: true, desc: "Name of the pipeline, unique across the manifests loaded together.", value: definition("name")},
		{name: "labels", desc: "Free-form string labels.", value: static(schemaObj{"type": "object", "additionalProperties": schemaObj{"type": "string"}})},
	}}
	specShape = shape{keys: []key{
		{name: "source", required: true, value: definition("source"), of: &sourceShape},
		{name: "transforms", desc: "WASM transforms, applied in order.", value: listOf("transform", 0), of: &transformShape, nullable: true},
		{name: "sinks", required: true, desc: "One or more sinks (fan-out).", value: listOf("sink", 1), of: &sinkShape},
		{name: "dead_letter", value: definition("dead_letter"), of: &deadLetterShape, nullable: true},
		{name: deliveryRule.Name, desc: deliveryRule.Description, rule: &deliveryRule, nullable: true},
		{name: "batch", desc: "How the engine groups records into batches.", section: batchRules, nullable: true},
		{name: "buffer", desc: "Bounds on the records in flight between the source and the sinks.", section: bufferRules, nullable: true},
		{name: "lease", desc: leaseDesc, fields: leaseFields, nullable: true},
	}}
	sourceShape = shape{desc: "The source the pipeline reads from.", keys: []key{
		{name: "type", required: true, desc: "Which source; `sluice components` lists them.", value: componentType(connector.KindSource)},
		{name: "config", desc: "Settings of the component; see `sluice docs TYPE`.", value: static(schemaObj{"type": "object"})},
		{name: "decode", desc: schema.DecodeSpec.Summary, fields: schema.DecodeSpec.Fields, nullable: true},
	}}
	sinkShape = shape{desc: "A sink the pipeline writes to. Every sink gets every record of its port.", keys: []key{
		{name: "name", required: true, desc: "Name of the sink, unique among the pipeline's sinks and transforms; not `source` or `dead_letter`.", value: definition("name")},
		{name: "type", required: true, desc: "Which sink; `sluice components` lists them.", value: componentType(connector.KindSink)},
		{name: "config", desc: "Settings of the component; see `sluice docs TYPE`.", value: static(schemaObj{"type": "object"})},
		{name: "from", desc: "Output port of the last transform this sink reads; main when not set.", value: static(schemaObj{"$ref": "#/definitions/name", "default": DefaultPort})},
		{name: "batch", desc: "This sink's own batches, gathered from the pipeline's without holding up the other sinks: for a lake that wants large commits beside a cache that wants every record at once. Not set: the sink writes the pipeline's batches as they come.", section: sinkBatchRules, nullable: true},
		{name: "encode", desc: schema.EncodeSpec.Summary, fields: schema.EncodeSpec.Fields, nullable: true},
	}}
	deadLetterShape = shape{desc: "Where rejected and failed records go, with the reason.", keys: append([]key{
		{name: "type", required: true, desc: "Which sink; `sluice components` lists them.", value: componentType(connector.KindSink)},
		{name: "config", desc: "Settings of the component; see `sluice docs TYPE`.", value: static(schemaObj{"type": "object"})},
	}, ruleKeys(deadLetterRules)...)}
	transformShape = shape{desc: "A WASM transform stage: a plain transform (wasm:) or an aggregate stage (aggregate:).", oneOf: []alternative{{required: []string{"wasm"}, with: []string{"sha256", "config", "limits"}}, {required: []string{"aggregate"}}}, keys: []key{
		{name: "name", required: true, desc: "Name of the transform, unique among the pipeline's transforms and sinks; not `source` or `dead_letter`.", value: definition("name")},
		{name: "wasm", desc: "Path of the .wasm module, relative to the manifest file's directory. A transform has wasm: or aggregate:, not both.", value: static(wasmSchema)},
		{name: "sha256", desc: sha256Desc, value: static(sha256Schema)},
		{name: "config", desc: configDesc, value: static(schemaObj{"type": "object"})},
		{name: "limits", desc: "Resource limits of the transform's WASM instances.", section: limitsRules},
		{name: "aggregate", desc: "Makes the transform an aggregate stage: the runtime keys the records, puts them in windows and keeps a state per key and window, which an aggregate module (ABI 1.1, meta kinds: aggregate) folds records into and turns into records when the window closes. A transform has wasm: or aggregate:, not both.", shape: &aggregateShape},
		{name: onRejectRule.Name, desc: onRejectRule.Description, rule: &onRejectRule},
	}}
	aggregateShape = shape{keys: []key{
		{name: "wasm", required: true, desc: "Path of the aggregate module, relative to the manifest file's directory.", value: static(wasmSchema)},
		{name: "sha256", desc: sha256Desc, value: static(sha256Schema)},
		{name: "key", desc: "JSONPath of the key in the record value (`$.commodity`, `$.items[0].sku`, `$['odd key']`); `$` is the whole value. Unset: the record key. A record without the path is rejected.", value: static(jsonPathSchema), nullable: true},
		{name: "time", desc: "JSONPath of the event time in the record value: epoch milliseconds, or RFC 3339 text. Unset: processing time (the runtime's clock), which delivery exactly_once refuses.", value: static(jsonPathSchema), nullable: true},
		{name: "window", desc: "The windows a record's time falls in: exactly one of tumbling, hopping (with every) and session. Unset: one slot per key, kept until ttl expires it.", shape: &windowShape, nullable: true},
		{name: allowedLatenessRule.Name, desc: allowedLatenessRule.Description, rule: &allowedLatenessRule, nullable: true},
		{name: ttlRule.Name, desc: ttlRule.Description, rule: &ttlRule, nullable: true},
		{name: earlyRule.Name, desc: earlyRule.Description, rule: &earlyRule, nullable: true},
		{name: "late", desc: "Where late records go (every window of their time has closed): dead_letter, drop (counted in the metrics), or the name of an output port, which a sink must read with from:.",
			value: static(schemaObj{"type": "string", "pattern": NamePattern, "default": pipeline.LateDeadLetter}), allowed: "`dead_letter`, `drop` or a port name", nullable: true},
		{name: "config", desc: configDesc, value: static(schemaObj{"type": "object"})},
		{name: "limits", desc: "Resource limits of the stage's WASM instances and of its state.", section: aggregateLimitsRules},
	}}
	windowShape = shape{oneOf: []alternative{{required: []string{"tumbling"}}, {required: []string{"hopping", "every"}}, {required: []string{"session"}}}, keys: ruleKeys(windowRules)}
)

// Values shared by a transform's and an aggregate stage's keys.
const (
	sha256Desc = "Pins the module's SHA-256 digest (hex); loading fails when it does not match."
	configDesc = "Configuration handed to the module once, as JSON, when an instance starts."
)

var (
	wasmSchema     = schemaObj{"type": "string", "minLength": 1}
	sha256Schema   = schemaObj{"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
	jsonPathSchema = schemaObj{"type": "string", "pattern": `^\$`}
)
