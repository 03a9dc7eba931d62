// Command rename_fields is the mapping example: it renames top-level members of JSON records
// (config {"fields": {"old": "new", ...}}), keeping member order and every other byte. See
// README.md.
package main

import (
	"errors"

	"github.com/sluicehq/sluice/sdk/go/transform"
	"github.com/sluicehq/sluice/transforms/internal/rawjson"
)

func main() {}

var (
	// renames maps old member names to new ones; set once per instance at init.
	renames map[string]string
	members []rawjson.Member // reused per record
	outName []string         // reused per record
)

const schema = `{"type":"object","required":["fields"],"additionalProperties":false,"properties":{
"fields":{"type":"object","minProperties":1,"additionalProperties":{"type":"string","minLength":1}}}}`

func init() {
	transform.Register(transform.Meta{
		Name:         "rename_fields",
		Version:      "1.0.0",
		Kinds:        []transform.Kind{transform.KindMap},
		ConfigSchema: schema,
	}, transform.ProcessFunc(process), transform.OnInit(setup))
}

func setup() error {
	var c struct {
		Fields map[string]string `json:"fields"`
	}
	if err := transform.Config(&c); err != nil {
		return err
	}
	if len(c.Fields) == 0 {
		return errors.New("config: fields: give at least one \"old\": \"new\" pair")
	}
	for o, n := range c.Fields {
		if o == "" || n == "" {
			return errors.New("config: fields: names must not be empty")
		}
	}
	renames = c.Fields
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
		members, outName = members[:0], outName[:0]
		renamed := false
		if rawjson.Members(doc, func(m rawjson.Member) bool {
			name := m.Name()
			if n, ok := renames[name]; ok {
				name, renamed = n, true
			}
			members = append(members, m)
			outName = append(outName, name)
			return true
		}) != nil {
			b.Reject(i, transform.CodeInvalidInput, "not a JSON object")
			continue
		}
		if !renamed {
			continue // nothing to rename: PASS
		}
		if dup := duplicateTarget(); dup != "" {
			b.Reject(i, transform.CodeSchema, dup+": already present (rename target)")
			continue
		}
		b.AppendEmit(i, "", nil, func(dst []byte) []byte {
			at := 0
			for k, m := range members {
				if _, ok := renames[m.Name()]; !ok {
					continue
				}
				dst = append(dst, v[at:base+m.NameStart]...)
				dst = rawjson.AppendString(dst, outName[k])
				at = base + m.NameEnd
			}
			return append(dst, v[at:]...)
		})
	}
	return nil
}

// duplicateTarget returns a new name that collides with another output name of the record, or "".
// Duplicates that the input already had (and no rename created) are left alone.
func duplicateTarget() string {
	for k, m := range members {
		if _, ok := renames[m.Name()]; !ok {
			continue
		}
		for j := range members {
			if j != k && outName[j] == outName[k] {
				return outName[k]
			}
		}
	}
	return ""
}
