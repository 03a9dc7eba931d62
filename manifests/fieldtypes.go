package manifests

import (
	"fmt"
	"math"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// fieldType is everything this package knows about one connector.Type, in one place: how the
// loader decodes a value and words its problems, how the JSON Schema describes a value and how
// the docs show the type. Adding a type is adding an entry to fieldTypes.
type fieldType struct {
	// noun says what a value is, for "expected ..." messages ("an integer").
	noun string
	// hint says how to write a value; empty when the noun says it all.
	hint string
	// decode turns a (resolved) node into the type's Go value, reporting problems at the node.
	decode func(d *docDecoder, n *yaml.Node, f connector.Field, l loc, secret bool, col *collector) (any, bool)
	// schema is the JSON Schema of a value, without description, default or examples.
	schema func(f connector.Field) (schemaObj, error)
	// ranged adds a range (the JSON Schema keywords in num: minimum, maximum...) to the schema s
	// of a value; positive says the range excludes zero. nil for types without ranges.
	ranged func(s, num schemaObj, positive bool) schemaObj
	// label names the type in the docs' field tables; nil means the type's name.
	label func(f connector.Field) string
	// placeholder is the value the docs' example shows for a required field without an Example.
	placeholder func(f connector.Field) *yaml.Node
}

// int64Bounds bounds an integer schema to int64, as the loader decodes integers (it sets no
// bound the schema already has); other schemas are returned as they are.
func int64Bounds(s schemaObj) schemaObj {
	if s["type"] != "integer" {
		return s
	}
	if _, ok := s["minimum"]; !ok {
		if _, ok := s["exclusiveMinimum"]; !ok {
			s["minimum"] = int64(math.MinInt64)
		}
	}
	if _, ok := s["maximum"]; !ok {
		if _, ok := s["exclusiveMaximum"]; !ok {
			s["maximum"] = int64(math.MaxInt64)
		}
	}
	return s
}

// fieldTypes holds every connector.Type the manifests understand; "" means TypeAny. It is filled
// in init because the collection types' decoders refer back to it.
var fieldTypes map[connector.Type]*fieldType

func init() {
	ref := schemaObj{"$ref": "#/definitions/reference"}
	withRef := func(typ string) func(connector.Field) (schemaObj, error) {
		return func(connector.Field) (schemaObj, error) {
			return schemaObj{"anyOf": []any{int64Bounds(schemaObj{"type": typ}), ref}}, nil
		}
	}
	rangedNumber := func(typ string) func(s, num schemaObj, _ bool) schemaObj {
		return func(s, num schemaObj, _ bool) schemaObj {
			num["type"] = typ
			s["anyOf"] = []any{int64Bounds(num), ref}
			return s
		}
	}
	anyType := &fieldType{
		noun: "a value",
		decode: func(d *docDecoder, n *yaml.Node, _ connector.Field, l loc, secret bool, col *collector) (any, bool) {
			return d.anyValue(n, l, secret, col)
		},
		schema:      func(connector.Field) (schemaObj, error) { return schemaObj{}, nil },
		placeholder: func(connector.Field) *yaml.Node { return mapNode() },
	}
	fieldTypes = map[connector.Type]*fieldType{
		connector.TypeString: {
			noun:   "a string",
			decode: scalarDecoder(decodeString),
			schema: func(f connector.Field) (schemaObj, error) {
				s := schemaObj{"type": "string"}
				if len(f.Enum) > 0 {
					enum := make([]any, len(f.Enum))
					for i, e := range f.Enum {
						enum[i] = e
					}
					s["enum"] = enum
				}
				return s, nil
			},
			placeholder: func(f connector.Field) *yaml.Node {
				if len(f.Enum) > 0 {
					return strNode(f.Enum[0])
				}
				return strNode("<" + f.Name + ">")
			},
		},
		connector.TypeInt: {
			noun: "an integer", decode: scalarDecoder(decodeInt), schema: withRef("integer"), ranged: rangedNumber("integer"),
			placeholder: func(f connector.Field) *yaml.Node { return valueNode(int64(1), f.Type) },
		},
		connector.TypeFloat: {
			noun: "a number", decode: scalarDecoder(decodeFloat), schema: withRef("number"), ranged: rangedNumber("number"),
			placeholder: func(f connector.Field) *yaml.Node { return valueNode(1.0, f.Type) },
		},
		connector.TypeBool: {
			noun: "true or false", hint: "write true or false", decode: scalarDecoder(decodeBool), schema: withRef("boolean"),
			placeholder: func(f connector.Field) *yaml.Node { return valueNode(true, f.Type) },
		},
		connector.TypeDuration: {
			noun: "a duration", hint: "use a number with a unit: 500ms, 30s, 1m30s, 2h", decode: scalarDecoder(decodeDuration),
			schema:      func(connector.Field) (schemaObj, error) { return schemaObj{"$ref": "#/definitions/duration"}, nil },
			placeholder: func(connector.Field) *yaml.Node { return strNode("30s") },
		},
		connector.TypeByteSize: {
			noun: "a byte size", hint: "use a number of bytes or a number with a unit: 512KiB, 64MiB, 1GB", decode: scalarDecoder(decodeByteSize),
			schema: func(connector.Field) (schemaObj, error) { return schemaObj{"$ref": "#/definitions/bytesize"}, nil },
			// A size written with a unit can only be checked for being positive (by pattern).
			ranged: func(s, num schemaObj, positive bool) schemaObj {
				num["type"] = "integer"
				int64Bounds(num)
				pattern := byteSizePattern
				if positive {
					pattern = positiveByteSizePattern
				}
				delete(s, "$ref")
				s["anyOf"] = []any{num, schemaObj{"type": "string", "pattern": pattern}, ref}
				return s
			},
			placeholder: func(connector.Field) *yaml.Node { return strNode("1MiB") },
		},
		connector.TypeObject: {
			noun: "a mapping",
			decode: func(d *docDecoder, n *yaml.Node, f connector.Field, l loc, secret bool, col *collector) (any, bool) {
				return d.object(n, n, f.Fields, l, secret, col)
			},
			schema:      func(f connector.Field) (schemaObj, error) { return fieldsSchema(f.Fields) },
			placeholder: func(connector.Field) *yaml.Node { return mapNode() },
		},
		connector.TypeList: {
			noun: "a list", decode: decodeList, schema: collectionSchema, label: collectionLabel,
			placeholder: func(f connector.Field) *yaml.Node {
				elem := connector.Field{Name: f.Name, Type: connector.TypeString}
				if f.Elem != nil {
					elem = *f.Elem
					elem.Name = f.Name
				}
				return &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{typeOf(elem.Type).placeholder(elem)}}
			},
		},
		connector.TypeMap: {
			noun: "a mapping", decode: decodeMap, schema: collectionSchema, label: collectionLabel,
			placeholder: func(connector.Field) *yaml.Node { return mapNode() },
		},
		connector.TypeAny: anyType,
		"":                anyType,
	}
}

// typeOf returns the entry of a type, or nil for a type this package does not know.
func typeOf(t connector.Type) *fieldType { return fieldTypes[t] }

// typeLabel names a field's type in the docs.
func typeLabel(f connector.Field) string {
	if ft := typeOf(f.Type); ft != nil && ft.label != nil {
		return ft.label(f)
	}
	if f.Type == "" {
		return string(connector.TypeAny)
	}
	return string(f.Type)
}

func collectionLabel(f connector.Field) string {
	word := "list"
	if f.Type == connector.TypeMap {
		word = "map"
	}
	if f.Elem != nil && f.Elem.Type != "" && f.Elem.Type != connector.TypeAny {
		return fmt.Sprintf("%s of %s", word, typeLabel(*f.Elem))
	}
	return word
}

func collectionSchema(f connector.Field) (schemaObj, error) {
	items := schemaObj{}
	if f.Elem != nil {
		var err error
		if items, err = fieldSchema(*f.Elem); err != nil {
			return nil, err
		}
	}
	if f.Type == connector.TypeList {
		return schemaObj{"type": "array", "items": items}, nil
	}
	return schemaObj{"type": "object", "additionalProperties": items}, nil
}

func elemOf(f connector.Field) connector.Field {
	if f.Elem != nil {
		return *f.Elem
	}
	return connector.Field{Type: connector.TypeAny}
}

func decodeList(d *docDecoder, n *yaml.Node, f connector.Field, l loc, secret bool, col *collector) (any, bool) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "", "%s: expected a list, got %s", l.at(), describe(n, secret))
		return nil, false
	}
	elem := elemOf(f)
	out := make([]any, 0, len(n.Content))
	ok := true
	for i, e := range n.Content {
		el := l.index(i)
		col.field(el, d.pos(e))
		v, good := d.value(e, elem, el, secret || elem.Secret, col)
		if !good {
			ok = false
		}
		out = append(out, v)
	}
	return out, ok
}

func decodeMap(d *docDecoder, n *yaml.Node, f connector.Field, l loc, secret bool, col *collector) (any, bool) {
	m, order := d.mapping(n, l, nil)
	if m == nil {
		return nil, false
	}
	elem := elemOf(f)
	out := make(map[string]any, len(m))
	ok := true
	for _, k := range order {
		kl := l.child(k)
		col.field(kl, d.pos(m[k].key))
		v, good := d.value(m[k].val, elem, kl, secret || elem.Secret, col)
		if !good {
			ok = false
		}
		out[k] = v
	}
	return out, ok
}
