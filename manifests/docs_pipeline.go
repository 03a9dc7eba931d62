package manifests

import (
	"fmt"
	"strings"
)

// RenderPipelineDocs returns the markdown reference of a Pipeline document: every key the loader
// accepts, with its type, whether it is required, its default (the runtime's own, from
// runtime/pipeline), its allowed values or range, and its description. It is generated from the
// same tables the loader and the JSON Schema use. It is pure and safe to call concurrently.
func RenderPipelineDocs() string {
	var b strings.Builder
	b.WriteString("# Pipeline manifest\n\n")
	b.WriteString(documentShape.desc + " A manifest file holds one or more such documents, separated by `---`.\n\n")
	b.WriteString("| Key | Type | Required | Default | Allowed values | Description |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	writeShapeRows(&b, "", documentShape)
	b.WriteString("\nSources and sinks take the settings of their type under `config:`; `sluice docs TYPE` describes them. ")
	b.WriteString("A transform's `config:` goes to its module as JSON. ")
	b.WriteString("An aggregate stage (`aggregate:` instead of `wasm:`) runs an aggregate module (ABI 1.1, meta kinds: aggregate): the runtime takes each record's key and time, puts the record in its windows, keeps one state per key and window in the embedded store, saved with the source positions it reflects, and has the module fold records into states and turn a state into records when its window closes (or, with `early`, while it is open); records none of whose windows is still open are late. ")
	b.WriteString("Durations are written with a unit (`500ms`, `30s`); byte sizes as a number of bytes or with a unit (`64KiB`, `16MiB`, `1GB`). ")
	b.WriteString("Any value may use `${env:NAME}` or `${file:PATH}`.\n")
	return b.String()
}

func writeShapeRows(b *strings.Builder, prefix string, s shape) {
	for _, k := range s.keys {
		path := prefix + k.name
		req := ""
		if k.required {
			req = "yes"
		} else if alt := s.alternatives(k.name); alt != "" {
			req = alt
		}
		typ, def, allowed, desc := keyDocs(k)
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s | %s |\n", path, typ, req, cell(def), cell(allowed), cell(desc))
		switch {
		case k.section != nil:
			for _, r := range k.section {
				typ, def, allowed, desc := ruleDocs(r)
				fmt.Fprintf(b, "| `%s.%s` | %s |  | %s | %s | %s |\n", path, r.Name, typ, cell(def), cell(allowed), cell(desc))
			}
		case k.shape != nil:
			writeShapeRows(b, path+".", *k.shape)
		case k.fields != nil:
			writeFieldRows(b, path+".", k.fields)
		case k.of != nil && typ == "list":
			writeShapeRows(b, path+"[].", *k.of)
		case k.of != nil:
			writeShapeRows(b, path+".", *k.of)
		}
	}
}

// keyDocs describes a key's value for the reference table.
func keyDocs(k key) (typ, def, allowed, desc string) {
	desc = k.desc
	if desc == "" && k.of != nil {
		desc = k.of.desc
	}
	if desc == "" && k.shape != nil {
		desc = k.shape.desc
	}
	switch {
	case k.rule != nil:
		typ, def, allowed, _ = ruleDocs(*k.rule)
		return typ, def, allowed, desc
	case k.section != nil, k.shape != nil, k.fields != nil:
		return "mapping", "", "", desc
	}
	s, err := k.value(emptyCatalog{})
	if err != nil {
		return "", "", "", desc
	}
	switch {
	case s["type"] == "array":
		typ = "list"
	case s["const"] != nil:
		typ, allowed = "string", fmt.Sprintf("`%v`", s["const"])
	case s["$ref"] == "#/definitions/name":
		typ, allowed = "string", "a name: lowercase letters, digits, `-` and `_`"
	case s["$ref"] != nil:
		typ = "mapping"
	case s["type"] == "object":
		typ = "mapping"
	case s["type"] != nil:
		typ = fmt.Sprint(s["type"])
	default:
		typ = "string"
	}
	if d, ok := s["default"]; ok {
		def = fmt.Sprintf("`%v`", d)
	}
	if k.name == "type" && s["type"] == "string" {
		allowed = "a component name; `sluice components` lists them"
	}
	if k.allowed != "" {
		allowed = k.allowed
	}
	return typ, def, allowed, desc
}

// ruleDocs describes a setting: type, default, allowed values or range, description.
func ruleDocs(r rule) (typ, def, allowed, desc string) {
	typ = typeLabel(r.Field)
	if r.Default != nil {
		def = "`" + inlineValue(r.Default, r.Type) + "`"
	}
	var vals []string
	for _, e := range r.Enum {
		vals = append(vals, "`"+e+"`")
	}
	allowed = strings.Join(vals, ", ")
	if rt := r.rangeText(); rt != "" {
		allowed = rt
	}
	return typ, def, allowed, r.Description
}
