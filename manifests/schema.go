package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// SchemaDraft is the JSON Schema dialect JSONSchema writes: draft-07, the one yaml-language-server
// and most editors support fully (including if/then).
const SchemaDraft = "http://json-schema.org/draft-07/schema#"

// Patterns shared by the schema and the docs.
const (
	referencePattern = `\$\{(env|file):[^}]+\}`
	durationPattern  = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	byteSizePattern  = `^ *[0-9][0-9_]*(\.[0-9]+)? *([kKmMgGtT][iI]?[bB]?|[bB])? *$`
	// positiveByteSizePattern is byteSizePattern with a non-zero digit somewhere in the number.
	positiveByteSizePattern = `^ *([0-9_]*[1-9][0-9_]*(\.[0-9]+)?|[0-9][0-9_]*\.[0-9]*[1-9][0-9]*) *([kKmMgGtT][iI]?[bB]?|[bB])? *$`
)

type schemaObj = map[string]any

// JSONSchema returns a JSON Schema (draft-07) for one manifest document, generated from the
// components of cat at the time of the call. Source, sink and dead-letter configs are checked
// against their component's spec by switching on type (if/then), with descriptions, defaults and
// enums; ${env:...} and ${file:...} references are accepted wherever a typed value is. Editors use
// it through a "# yaml-language-server: $schema=PATH" comment. The output is deterministic (keys
// sorted). It is safe to call concurrently; it fails only if a spec's Default or Example cannot be
// encoded as JSON.
func JSONSchema(cat Catalog) ([]byte, error) {
	defs := schemaObj{
		"name": schemaObj{
			"type": "string", "pattern": NamePattern,
			"description": "Lowercase letters, digits, '-' and '_', starting and ending with a letter or digit.",
		},
		"reference": schemaObj{
			"type": "string", "pattern": referencePattern,
			"description": "A ${env:NAME} or ${file:PATH} reference, resolved when the manifest is loaded.",
		},
		"duration": schemaObj{
			"description": "A duration with a unit: 500ms, 30s, 1m30s, 2h.",
			"anyOf": []any{
				schemaObj{"type": "string", "pattern": durationPattern},
				schemaObj{"const": 0},
				schemaObj{"$ref": "#/definitions/reference"},
			},
		},
		"bytesize": schemaObj{
			"description": "A size in bytes: a number, or a number with a unit (KB, MB, GB: powers of 1000; KiB, MiB, GiB: powers of 1024).",
			"anyOf": []any{
				schemaObj{"type": "integer", "minimum": 0, "maximum": int64(math.MaxInt64)},
				schemaObj{"type": "string", "pattern": byteSizePattern},
				schemaObj{"$ref": "#/definitions/reference"},
			},
		},
	}
	var err error
	for _, kind := range []connector.Kind{connector.KindSource, connector.KindSink} {
		for _, name := range cat.Names(kind) {
			c, _ := cat.Lookup(kind, name)
			obj, ferr := fieldsSchema(c.Spec.Fields)
			if ferr != nil && err == nil {
				err = fmt.Errorf("schema: %s %q: %w", kind, name, ferr)
			}
			obj["description"] = fmt.Sprintf("Configuration of the %s %s.", name, kind)
			defs[string(kind)+"."+name] = obj
		}
	}
	if err != nil {
		return nil, err
	}
	for name, sh := range map[string]shape{"source": sourceShape, "sink": sinkShape, "dead_letter": deadLetterShape} {
		kind := connector.KindSink
		if name == "source" {
			kind = connector.KindSource
		}
		if defs[name], err = componentSchema(cat, kind, sh); err != nil {
			return nil, fmt.Errorf("schema: %s: %w", name, err)
		}
	}
	if defs["transform"], err = transformShape.jsonSchema(cat); err != nil {
		return nil, fmt.Errorf("schema: transform: %w", err)
	}
	root, err := documentShape.jsonSchema(cat)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	root["$schema"] = SchemaDraft
	root["title"] = "Sluice pipeline manifest"
	root["definitions"] = defs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("schema: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// componentSchema describes a source, sink or dead-letter mapping with its config checked
// against the spec of the component its type names (if/then per catalog entry).
func componentSchema(cat Catalog, kind connector.Kind, sh shape) (schemaObj, error) {
	out, err := sh.jsonSchema(cat)
	if err != nil {
		return nil, err
	}
	var branches []any
	for _, n := range cat.Names(kind) {
		c, _ := cat.Lookup(kind, n)
		then := schemaObj{"properties": schemaObj{"config": schemaObj{"$ref": "#/definitions/" + string(kind) + "." + n}}}
		if hasRequired(c.Spec.Fields) {
			then["required"] = []any{"config"}
		}
		branches = append(branches, schemaObj{
			"if":   schemaObj{"properties": schemaObj{"type": schemaObj{"const": n}}, "required": []any{"type"}},
			"then": then,
		})
	}
	if len(branches) > 0 {
		out["allOf"] = branches
	}
	return out, nil
}

func hasRequired(fields []connector.Field) bool {
	for _, f := range fields {
		if f.Required && f.Default == nil {
			return true
		}
	}
	return false
}

// fieldsSchema describes an object with the given fields.
func fieldsSchema(fields []connector.Field) (schemaObj, error) {
	props := schemaObj{}
	var req []any
	var err error
	for _, f := range fields {
		s, ferr := fieldSchema(f)
		if ferr != nil && err == nil {
			err = fmt.Errorf("field %q: %w", f.Name, ferr)
		}
		props[f.Name] = s
		if f.Required && f.Default == nil {
			req = append(req, f.Name)
		}
	}
	out := schemaObj{"type": "object", "additionalProperties": false, "properties": props}
	if len(req) > 0 {
		out["required"] = req
	}
	return out, err
}

// fieldSchema describes one field's value.
func fieldSchema(f connector.Field) (schemaObj, error) {
	ft := typeOf(f.Type)
	if ft == nil {
		return nil, fmt.Errorf("unsupported field type %q", f.Type)
	}
	s, err := ft.schema(f)
	if err != nil {
		return nil, err
	}
	desc := f.Description
	if f.Secret {
		desc = strings.TrimSpace(desc + " Secret: prefer ${env:NAME} or ${file:PATH}.")
	}
	if desc != "" {
		s["description"] = desc
	}
	if f.Default != nil {
		v, err := jsonValue(f.Default, f.Type)
		if err != nil {
			return nil, fmt.Errorf("default: %w", err)
		}
		s["default"] = v
	}
	if f.Example != nil && !f.Secret {
		v, err := jsonValue(f.Example, f.Type)
		if err != nil {
			return nil, fmt.Errorf("example: %w", err)
		}
		s["examples"] = []any{v}
	}
	return s, nil
}

// jsonValue renders a Go value of a field as it would be written in a manifest: durations as
// "20ms", byte sizes as "4MiB".
func jsonValue(v any, t connector.Type) (any, error) {
	switch x := v.(type) {
	case time.Duration:
		return formatDuration(x), nil
	case int64:
		if t == connector.TypeByteSize {
			return FormatByteSize(x), nil
		}
		return x, nil
	case int:
		return jsonValue(int64(x), t)
	case connector.Config:
		return jsonValue(map[string]any(x), t)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			j, err := jsonValue(e, connector.TypeAny)
			if err != nil {
				return nil, err
			}
			out[k] = j
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			j, err := jsonValue(e, connector.TypeAny)
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	}
	if _, err := json.Marshal(v); err != nil {
		return nil, err
	}
	return v, nil
}
