package manifests

import (
	"fmt"

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
	value   func(cat Catalog) (schemaObj, error)
	// of is, for the docs, the shape of a list's items or of a definition (source, sinks...).
	of *shape
	// nullable keys may be written as null, which the loader reads as absent.
	nullable bool
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
	}
	return k.value(cat)
}

// shape is a fixed mapping of the document: its keys, in the order the docs give them.
type shape struct {
	desc string
	keys []key
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
	if s.desc != "" {
		out["description"] = s.desc
	}
	return out, nil
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
	}}
	sourceShape = shape{desc: "The source the pipeline reads from.", keys: []key{
		{name: "type", required: true, desc: "Which source; `sluice components` lists them.", value: componentType(connector.KindSource)},
		{name: "config", desc: "Settings of the component; see `sluice docs TYPE`.", value: static(schemaObj{"type": "object"})},
	}}
	sinkShape = shape{desc: "A sink the pipeline writes to. Every sink gets every record of its port.", keys: []key{
		{name: "name", required: true, desc: "Name of the sink, unique among the pipeline's sinks and transforms; not `source` or `dead_letter`.", value: definition("name")},
		{name: "type", required: true, desc: "Which sink; `sluice components` lists them.", value: componentType(connector.KindSink)},
		{name: "config", desc: "Settings of the component; see `sluice docs TYPE`.", value: static(schemaObj{"type": "object"})},
		{name: "from", desc: "Output port of the last transform this sink reads; main when not set.", value: static(schemaObj{"$ref": "#/definitions/name", "default": DefaultPort})},
		{name: "batch", desc: "This sink's own batches, gathered from the pipeline's without holding up the other sinks: for a lake that wants large commits beside a cache that wants every record at once. Not set: the sink writes the pipeline's batches as they come.", section: sinkBatchRules, nullable: true},
	}}
	deadLetterShape = shape{desc: "Where rejected and failed records go, with the reason.", keys: append([]key{
		{name: "type", required: true, desc: "Which sink; `sluice components` lists them.", value: componentType(connector.KindSink)},
		{name: "config", desc: "Settings of the component; see `sluice docs TYPE`.", value: static(schemaObj{"type": "object"})},
	}, ruleKeys(deadLetterRules)...)}
	transformShape = shape{desc: "A WASM transform stage.", keys: []key{
		{name: "name", required: true, desc: "Name of the transform, unique among the pipeline's transforms and sinks; not `source` or `dead_letter`.", value: definition("name")},
		{name: "wasm", required: true, desc: "Path of the .wasm module, relative to the manifest file's directory.", value: static(schemaObj{"type": "string", "minLength": 1})},
		{name: "sha256", desc: "Pins the module's SHA-256 digest (hex); loading fails when it does not match.", value: static(schemaObj{"type": "string", "pattern": "^[0-9a-fA-F]{64}$"})},
		{name: "config", desc: "Configuration handed to the module once, as JSON, when an instance starts.", value: static(schemaObj{"type": "object"})},
		{name: "limits", desc: "Resource limits of the transform's WASM instances.", section: limitsRules},
		{name: onRejectRule.Name, desc: onRejectRule.Description, rule: &onRejectRule},
	}}
)
