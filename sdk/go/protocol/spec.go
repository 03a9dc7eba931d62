package protocol

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// Spec converts a spec to its message. Defaults and examples travel as JSON with durations as Go
// duration strings.
func Spec(s connector.Spec) (*pb.Spec, error) {
	fields, err := fieldsToProto(s.Fields)
	if err != nil {
		return nil, fmt.Errorf("spec %s: %w", s.Name, err)
	}
	return &pb.Spec{Name: s.Name, Kind: string(s.Kind), Summary: s.Summary, Description: s.Description,
		Fields: fields, Bounded: s.Bounded}, nil
}

func fieldsToProto(fs []connector.Field) ([]*pb.Field, error) {
	out := make([]*pb.Field, len(fs))
	for i, f := range fs {
		pf, err := fieldToProto(f)
		if err != nil {
			return nil, err
		}
		out[i] = pf
	}
	return out, nil
}

func fieldToProto(f connector.Field) (*pb.Field, error) {
	pf := &pb.Field{Name: f.Name, Type: string(f.Type), Description: f.Description, Required: f.Required,
		Enum: f.Enum, Secret: f.Secret}
	var err error
	if f.Default != nil {
		if pf.DefaultJson, err = jsonValue(f.Default); err != nil {
			return nil, fmt.Errorf("field %s default: %w", f.Name, err)
		}
	}
	if f.Example != nil {
		if pf.ExampleJson, err = jsonValue(f.Example); err != nil {
			return nil, fmt.Errorf("field %s example: %w", f.Name, err)
		}
	}
	if pf.Fields, err = fieldsToProto(f.Fields); err != nil {
		return nil, err
	}
	if f.Elem != nil {
		if pf.Elem, err = fieldToProto(*f.Elem); err != nil {
			return nil, err
		}
	}
	return pf, nil
}

func jsonValue(v any) (string, error) {
	b, err := json.Marshal(jsonable(v))
	return string(b), err
}

// FromSpec converts a message back to a spec.
func FromSpec(p *pb.Spec) (connector.Spec, error) {
	fields, err := fieldsFromProto(p.Fields)
	if err != nil {
		return connector.Spec{}, fmt.Errorf("spec %s: %w", p.Name, err)
	}
	return connector.Spec{Name: p.Name, Kind: connector.Kind(p.Kind), Summary: p.Summary,
		Description: p.Description, Fields: fields, Bounded: p.Bounded}, nil
}

func fieldsFromProto(ps []*pb.Field) ([]connector.Field, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make([]connector.Field, len(ps))
	for i, p := range ps {
		f, err := fieldFromProto(p)
		if err != nil {
			return nil, err
		}
		out[i] = f
	}
	return out, nil
}

func fieldFromProto(p *pb.Field) (connector.Field, error) {
	f := connector.Field{Name: p.Name, Type: connector.Type(p.Type), Description: p.Description,
		Required: p.Required, Enum: p.Enum, Secret: p.Secret}
	var err error
	if f.Fields, err = fieldsFromProto(p.Fields); err != nil {
		return f, err
	}
	if p.Elem != nil {
		e, err := fieldFromProto(p.Elem)
		if err != nil {
			return f, err
		}
		f.Elem = &e
	}
	if p.DefaultJson != "" {
		if f.Default, err = decodeJSONValue([]byte(p.DefaultJson), &f); err != nil {
			return f, fmt.Errorf("field %s default: %w", f.Name, err)
		}
	}
	if p.ExampleJson != "" {
		if f.Example, err = decodeJSONValue([]byte(p.ExampleJson), &f); err != nil {
			return f, fmt.Errorf("field %s example: %w", f.Name, err)
		}
	}
	return f, nil
}

// EncodeConfig renders a validated configuration as a JSON object, durations as Go duration
// strings.
func EncodeConfig(cfg connector.Config) ([]byte, error) {
	if cfg == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(jsonable(map[string]any(cfg)))
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b, nil
}

// DecodeConfig parses a JSON configuration and gives every declared field the Go type its
// connector.Type maps to (int64 for ints and byte sizes, time.Duration for durations, and so on),
// so a connector reads the same Config in a plugin as compiled in. Undeclared keys keep JSON types
// with integral numbers as int64.
func DecodeConfig(data []byte, fields []connector.Field) (connector.Config, error) {
	var raw map[string]any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	cfg, err := typedObject(raw, fields)
	if err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	return connector.Config(cfg), nil
}

func decodeJSONValue(data []byte, f *connector.Field) (any, error) {
	var raw any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, err
	}
	return typed(raw, f)
}

func typedObject(raw map[string]any, fields []connector.Field) (map[string]any, error) {
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		var f *connector.Field
		for i := range fields {
			if fields[i].Name == k {
				f = &fields[i]
				break
			}
		}
		tv, err := typed(v, f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = tv
	}
	return out, nil
}

func typed(v any, f *connector.Field) (any, error) {
	if v == nil {
		return nil, nil
	}
	if f == nil {
		return generic(v), nil
	}
	switch f.Type {
	case connector.TypeInt, connector.TypeByteSize:
		if n, ok := v.(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				return i, nil
			}
			fl, err := n.Float64()
			if err != nil || fl != math.Trunc(fl) {
				return nil, fmt.Errorf("want an integer, got %s", n)
			}
			return int64(fl), nil
		}
	case connector.TypeFloat:
		if n, ok := v.(json.Number); ok {
			return n.Float64()
		}
	case connector.TypeDuration:
		switch x := v.(type) {
		case string:
			d, err := time.ParseDuration(x)
			if err != nil {
				return nil, err
			}
			return d, nil
		case json.Number:
			i, err := x.Int64()
			if err != nil {
				return nil, fmt.Errorf("want a duration, got %s", x)
			}
			return time.Duration(i), nil
		}
	case connector.TypeObject:
		if m, ok := v.(map[string]any); ok {
			return typedObject(m, f.Fields)
		}
	case connector.TypeList:
		if l, ok := v.([]any); ok {
			out := make([]any, len(l))
			for i, e := range l {
				te, err := typed(e, f.Elem)
				if err != nil {
					return nil, fmt.Errorf("[%d]: %w", i, err)
				}
				out[i] = te
			}
			return out, nil
		}
	case connector.TypeMap:
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, e := range m {
				te, err := typed(e, f.Elem)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", k, err)
				}
				out[k] = te
			}
			return out, nil
		}
	}
	return generic(v), nil
}

// generic turns json.Numbers into int64 when integral, float64 otherwise, as YAML decoding does.
func generic(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = generic(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = generic(e)
		}
		return out
	}
	return v
}

// jsonable replaces durations with their string form, recursively.
func jsonable(v any) any {
	switch x := v.(type) {
	case time.Duration:
		return x.String()
	case connector.Config:
		return jsonable(map[string]any(x))
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}
