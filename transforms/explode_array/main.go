// Command explode_array is the one-to-many example: it splits a JSON array member of each record
// into one record per element on port "main", and routes records whose array is empty or missing
// to port "empty". See README.md.
package main

import (
	"errors"
	"strconv"

	"github.com/sluicehq/sluice/sdk/go/transform"
	"github.com/sluicehq/sluice/transforms/internal/rawjson"
)

func main() {}

// config is the decoded config, set once per instance at init.
type config struct {
	// Field is the top-level member holding the array (required).
	Field string `json:"field"`
	// As renames the member in the output records (default: Field).
	As string `json:"as"`
	// IndexField, when set, adds a member with the element's 0-based index after the element.
	IndexField string `json:"index_field"`
}

var (
	cfg   config
	elems []rawjson.Span // reused per record
)

// PortEmpty receives the records whose array is empty or missing, unchanged.
const PortEmpty = "empty"

const schema = `{"type":"object","required":["field"],"additionalProperties":false,"properties":{
"field":{"type":"string","minLength":1},"as":{"type":"string","minLength":1},"index_field":{"type":"string","minLength":1}}}`

func init() {
	transform.Register(transform.Meta{
		Name:         "explode_array",
		Version:      "1.0.0",
		Kinds:        []transform.Kind{transform.KindFlatMap, transform.KindRoute},
		Ports:        []string{PortEmpty},
		ConfigSchema: schema,
	}, transform.ProcessFunc(process), transform.OnInit(setup))
}

func setup() error {
	var c config
	if err := transform.Config(&c); err != nil {
		return err
	}
	if c.Field == "" {
		return errors.New("config: field: required")
	}
	if c.As == "" {
		c.As = c.Field
	}
	cfg = c
	return nil
}

func process(b *transform.Batch) error {
	for i := 0; i < b.Len(); i++ {
		v := b.Record(i).Value
		if !rawjson.Valid(v) {
			b.Reject(i, transform.CodeInvalidInput, "not valid JSON")
			continue
		}
		doc, base := rawjson.Trim(v)
		var arr rawjson.Member
		found, taken := 0, ""
		if rawjson.Members(doc, func(m rawjson.Member) bool {
			switch n := m.Name(); {
			case n == cfg.Field:
				arr = m
				found++
			case (cfg.IndexField != "" && n == cfg.IndexField) || n == cfg.As:
				taken = n // an output member would be duplicated
			}
			return true
		}) != nil {
			b.Reject(i, transform.CodeInvalidInput, "not a JSON object")
			continue
		}
		switch {
		case found > 1:
			b.Reject(i, transform.CodeSchema, cfg.Field+": duplicate key")
			continue
		case found == 0:
			b.Emit(i, PortEmpty, nil, v)
			continue
		case rawjson.KindOf(doc[arr.ValueStart:arr.ValueEnd]) != rawjson.Array:
			b.Reject(i, transform.CodeSchema, cfg.Field+": must be an array")
			continue
		case taken != "":
			b.Reject(i, transform.CodeSchema, taken+": already present (output member)")
			continue
		}
		elems = elems[:0]
		_ = rawjson.Elements(doc[arr.ValueStart:arr.ValueEnd], func(s, e int) bool {
			elems = append(elems, rawjson.Span{Start: arr.ValueStart + s, End: arr.ValueStart + e})
			return true
		})
		if len(elems) == 0 {
			b.Emit(i, PortEmpty, nil, v)
			continue
		}
		for k, el := range elems {
			b.AppendEmit(i, "", nil, func(dst []byte) []byte {
				dst = append(dst, v[:base+arr.NameStart]...)
				dst = rawjson.AppendString(dst, cfg.As)
				dst = append(dst, ':')
				dst = append(dst, doc[el.Start:el.End]...)
				if cfg.IndexField != "" {
					dst = append(dst, ',')
					dst = rawjson.AppendString(dst, cfg.IndexField)
					dst = append(dst, ':')
					dst = strconv.AppendInt(dst, int64(k), 10)
				}
				return append(dst, v[base+arr.ValueEnd:]...)
			})
		}
	}
	return nil
}
