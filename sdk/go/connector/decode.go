package connector

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
)

// Decode fills target, a pointer to a struct, from cfg through the spec: each struct field tagged
// `config:"name"` receives the value of the spec's field of that name, or its Default when cfg
// does not set it. It is how a connector reads its configuration, so that defaults live only in
// the spec:
//
//	type sourceConfig struct {
//		Path   string        `config:"path"`
//		Follow bool          `config:"follow"`
//		Poll   time.Duration `config:"poll_interval"`
//	}
//	var c sourceConfig
//	if err := spec.Decode(cfg, &c); err != nil {
//		return nil, err
//	}
//
// Go types per field type: TypeString string; TypeInt and TypeByteSize any integer type;
// TypeFloat float64 or float32; TypeBool bool; TypeDuration time.Duration; TypeList a slice (of
// the element's Go type, or []any); TypeMap a map with string keys (values of the element's Go
// type, or any); TypeObject a struct decoded the same way, or Config; TypeAny any. A missing
// required field or a value of the wrong type is a *ConfigError naming the field (dotted for
// nested fields). A tag naming a field the spec does not declare is an error too: the spec and the
// struct must agree.
func (s *Spec) Decode(cfg Config, target any) error {
	v := reflect.ValueOf(target)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("connector %q: decode: target must be a pointer to a struct, not %T", s.Name, target)
	}
	return decodeStruct(s.Fields, map[string]any(cfg), v.Elem(), "")
}

// Config builds a configuration from Go values through the spec, as loading a manifest would:
// defaults applied (nested objects too), types checked, required fields present, unknown keys
// refused. Tests and tools use it to build the Config a factory receives. Integers may be given
// as int; durations as time.Duration.
func (s *Spec) Config(values map[string]any) (Config, error) {
	out, err := normalizeObject(s.Fields, values, "")
	if err != nil {
		return nil, err
	}
	return Config(out), nil
}

func decodeStruct(fields []Field, values map[string]any, dst reflect.Value, prefix string) error {
	t := dst.Type()
	for i := range t.NumField() {
		name, ok := t.Field(i).Tag.Lookup("config")
		if !ok || name == "-" {
			continue
		}
		f, found := fieldNamed(fields, name)
		if !found {
			return fmt.Errorf("decode: struct field %s: the spec declares no field %q", t.Field(i).Name, prefix+name)
		}
		raw, set := values[name]
		if !set || raw == nil {
			if f.Default == nil {
				if f.Required {
					return &ConfigError{Field: prefix + name, Msg: "is required"}
				}
				if f.Type != TypeObject {
					continue
				}
				raw = map[string]any{} // an absent object still gets its fields' defaults
			} else {
				raw = f.Default
			}
		}
		if err := assign(f, raw, dst.Field(i), prefix+name); err != nil {
			return err
		}
	}
	return nil
}

func fieldNamed(fields []Field, name string) (Field, bool) {
	for _, f := range fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

func wrongType(path string, want string, v any) error {
	return &ConfigError{Field: path, Msg: fmt.Sprintf("want %s, got %T", want, v)}
}

var durationType = reflect.TypeOf(time.Duration(0))

// assign stores the value of field f in dst, converting it to dst's type.
func assign(f Field, v any, dst reflect.Value, path string) error {
	if dst.Kind() == reflect.Interface {
		dst.Set(reflect.ValueOf(v))
		return nil
	}
	switch f.Type {
	case TypeString:
		s, ok := v.(string)
		if !ok || dst.Kind() != reflect.String {
			return wrongType(path, "a string", v)
		}
		dst.SetString(s)
	case TypeBool:
		b, ok := v.(bool)
		if !ok || dst.Kind() != reflect.Bool {
			return wrongType(path, "a boolean", v)
		}
		dst.SetBool(b)
	case TypeInt, TypeByteSize:
		n, ok := asInt(v)
		if !ok || !dst.CanInt() {
			return wrongType(path, "an integer", v)
		}
		if dst.OverflowInt(n) {
			return &ConfigError{Field: path, Msg: fmt.Sprintf("%d is out of range", n)}
		}
		dst.SetInt(n)
	case TypeFloat:
		x, ok := asFloat(v)
		if !ok || !dst.CanFloat() {
			return wrongType(path, "a number", v)
		}
		dst.SetFloat(x)
	case TypeDuration:
		d, ok := asDuration(v)
		if !ok || dst.Type() != durationType {
			return wrongType(path, "a duration", v)
		}
		dst.SetInt(int64(d))
	case TypeObject:
		m, ok := asMap(v)
		if !ok {
			return wrongType(path, "an object", v)
		}
		if dst.Type() == reflect.TypeOf(Config(nil)) {
			dst.Set(reflect.ValueOf(Config(m)))
			return nil
		}
		if dst.Kind() != reflect.Struct {
			return wrongType(path, "an object", v)
		}
		return decodeStruct(f.Fields, m, dst, path+".")
	case TypeList:
		return assignList(f, v, dst, path)
	case TypeMap:
		return assignMap(f, v, dst, path)
	default:
		rv := reflect.ValueOf(v)
		if !rv.Type().AssignableTo(dst.Type()) {
			return wrongType(path, dst.Type().String(), v)
		}
		dst.Set(rv)
	}
	return nil
}

func assignList(f Field, v any, dst reflect.Value, path string) error {
	list, ok := v.([]any)
	if !ok {
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
			list = make([]any, rv.Len())
			for i := range list {
				list[i] = rv.Index(i).Interface()
			}
		} else {
			return wrongType(path, "a list", v)
		}
	}
	if dst.Kind() != reflect.Slice {
		return wrongType(path, "a list", v)
	}
	out := reflect.MakeSlice(dst.Type(), len(list), len(list))
	elem := Field{Type: TypeAny}
	if f.Elem != nil {
		elem = *f.Elem
	}
	for i, e := range list {
		if err := assign(elem, e, out.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	dst.Set(out)
	return nil
}

func assignMap(f Field, v any, dst reflect.Value, path string) error {
	m, ok := asMap(v)
	if !ok || dst.Kind() != reflect.Map || dst.Type().Key().Kind() != reflect.String {
		return wrongType(path, "a map", v)
	}
	out := reflect.MakeMapWithSize(dst.Type(), len(m))
	elem := Field{Type: TypeAny}
	if f.Elem != nil {
		elem = *f.Elem
	}
	for k, e := range m {
		ev := reflect.New(dst.Type().Elem()).Elem()
		if err := assign(elem, e, ev, path+"."+k); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), ev)
	}
	dst.Set(out)
	return nil
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}

func asDuration(v any) (time.Duration, bool) {
	switch d := v.(type) {
	case time.Duration:
		return d, true
	case int64:
		return time.Duration(d), true
	case int:
		return time.Duration(d), true
	}
	return 0, false
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case Config:
		return m, true
	}
	return nil, false
}

// normalizeObject is Spec.Config for one level of fields.
func normalizeObject(fields []Field, values map[string]any, prefix string) (map[string]any, error) {
	var unknown []string
	for k := range values {
		if _, ok := fieldNamed(fields, k); !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, &ConfigError{Field: prefix + unknown[0], Msg: "unknown field"}
	}
	out := map[string]any{}
	for _, f := range fields {
		v, set := values[f.Name]
		path := prefix + f.Name
		if !set || v == nil {
			switch {
			case f.Default != nil:
				v = f.Default
			case f.Required:
				return nil, &ConfigError{Field: path, Msg: "is required"}
			case f.Type == TypeObject && hasDefault(f.Fields):
				v = map[string]any{}
			default:
				continue
			}
		}
		nv, err := normalizeValue(f, v, path)
		if err != nil {
			return nil, err
		}
		out[f.Name] = nv
	}
	return out, nil
}

func hasDefault(fields []Field) bool {
	for _, f := range fields {
		if f.Default != nil || (f.Type == TypeObject && hasDefault(f.Fields)) {
			return true
		}
	}
	return false
}

// normalizeValue converts v to the Go type Config holds for the field's type.
func normalizeValue(f Field, v any, path string) (any, error) {
	switch f.Type {
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return nil, wrongType(path, "a string", v)
		}
		if len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
			return nil, &ConfigError{Field: path, Msg: fmt.Sprintf("%q is not one of %s", s, strings.Join(f.Enum, ", "))}
		}
		return s, nil
	case TypeBool:
		if _, ok := v.(bool); !ok {
			return nil, wrongType(path, "a boolean", v)
		}
		return v, nil
	case TypeInt, TypeByteSize:
		n, ok := asInt(v)
		if !ok {
			return nil, wrongType(path, "an integer", v)
		}
		return n, nil
	case TypeFloat:
		x, ok := asFloat(v)
		if !ok {
			return nil, wrongType(path, "a number", v)
		}
		return x, nil
	case TypeDuration:
		d, ok := asDuration(v)
		if !ok {
			return nil, wrongType(path, "a duration", v)
		}
		return d, nil
	case TypeObject:
		m, ok := asMap(v)
		if !ok {
			return nil, wrongType(path, "an object", v)
		}
		return normalizeObject(f.Fields, m, path+".")
	case TypeList:
		list, ok := v.([]any)
		if !ok {
			rv := reflect.ValueOf(v)
			if rv.Kind() != reflect.Slice {
				return nil, wrongType(path, "a list", v)
			}
			list = make([]any, rv.Len())
			for i := range list {
				list[i] = rv.Index(i).Interface()
			}
		}
		if f.Elem == nil {
			return list, nil
		}
		out := make([]any, len(list))
		for i, e := range list {
			nv, err := normalizeValue(*f.Elem, e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = nv
		}
		return out, nil
	case TypeMap:
		m, ok := asMap(v)
		if !ok {
			return nil, wrongType(path, "a map", v)
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			if f.Elem == nil {
				out[k] = e
				continue
			}
			nv, err := normalizeValue(*f.Elem, e, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = nv
		}
		return out, nil
	}
	return v, nil
}
