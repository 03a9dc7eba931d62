package schema

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

type encodeOptions struct {
	ignoreUnknown bool
}

var appendLong = binary.AppendVarint // zigzag varint, as Avro writes int and long

// encodeAvro appends the Avro binary form of the JSON value to dst.
func encodeAvro(n *avroNode, jsonValue, dst []byte, o *encodeOptions) ([]byte, error) {
	v, err := parseJSON(jsonValue)
	if err != nil {
		return dst, err
	}
	return n.encode(dst, v, o)
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any, jsonObject:
		return "object"
	case []byte:
		return "bytes"
	}
	if isNumber(v) {
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

func isNumber(v any) bool {
	switch v.(type) {
	case json.Number, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return true
	}
	return false
}

func mismatch(n *avroNode, v any) error {
	got := jsonType(v)
	if isNumber(v) {
		got = "number " + fmt.Sprint(v)
	}
	return errorf("expected %s, got %s", n.name, got)
}

// natural reports whether v's JSON type is the one n's type is written as (a number for int,
// a string for an enum); convertible whether v can be read into n another way (a base64 string
// for bytes, an RFC 3339 string for a timestamp).
func (n *avroNode) natural(v any) bool {
	switch v.(type) {
	case nil:
		return n.kind == avNull
	case bool:
		return n.kind == avBoolean
	case string:
		return n.kind == avString || n.kind == avEnum
	case []any:
		return n.kind == avArray
	case map[string]any, jsonObject:
		return n.kind == avRecord || n.kind == avMap || n.kind == avDuration
	case []byte:
		return n.kind == avBytes || n.kind == avFixed || n.kind == avDecimalBytes || n.kind == avDecimalFixed
	}
	if isNumber(v) {
		switch n.kind {
		case avInt, avLong, avFloat, avDouble, avDecimalBytes, avDecimalFixed:
			return true
		}
	}
	return false
}

func (n *avroNode) convertible(v any) bool {
	if _, ok := v.(string); !ok {
		return false
	}
	switch n.kind {
	case avBytes, avFixed, avDecimalBytes, avDecimalFixed, avFloat, avDouble:
		return true
	case avInt, avLong:
		return n.logical != ""
	}
	return false
}

func (n *avroNode) encode(dst []byte, v any, o *encodeOptions) ([]byte, error) {
	switch n.kind {
	case avNull:
		if v != nil {
			return dst, mismatch(n, v)
		}
		return dst, nil
	case avBoolean:
		b, ok := v.(bool)
		if !ok {
			return dst, mismatch(n, v)
		}
		if b {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case avInt, avLong:
		i, err := n.integer(v)
		if err != nil {
			return dst, err
		}
		return appendLong(dst, i), nil
	case avFloat, avDouble:
		f, err := n.float(v)
		if err != nil {
			return dst, err
		}
		if n.kind == avFloat {
			return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f))), nil
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
	case avString:
		s, ok := v.(string)
		if !ok {
			return dst, mismatch(n, v)
		}
		dst = appendLong(dst, int64(len(s)))
		return append(dst, s...), nil
	case avBytes, avFixed:
		b, err := n.bytes(v)
		if err != nil {
			return dst, err
		}
		if n.kind == avBytes {
			dst = appendLong(dst, int64(len(b)))
		} else if len(b) != n.size {
			return dst, errorf("expected %d bytes for fixed %s, got %d", n.size, n.name, len(b))
		}
		return append(dst, b...), nil
	case avDecimalBytes, avDecimalFixed:
		b, err := n.decimal(v)
		if err != nil {
			return dst, err
		}
		if n.kind == avDecimalBytes {
			dst = appendLong(dst, int64(len(b)))
		}
		return append(dst, b...), nil
	case avDuration:
		m, ok := asMap(v)
		if !ok {
			b, err := n.bytes(v)
			if err != nil || len(b) != 12 {
				return dst, mismatch(n, v)
			}
			return append(dst, b...), nil
		}
		for _, k := range []string{"months", "days", "milliseconds"} {
			x, err := (&avroNode{kind: avLong, name: "duration " + k}).integer(m[k])
			if err != nil || x < 0 || x > math.MaxUint32 {
				return dst, errorf("expected a duration {months, days, milliseconds} of unsigned 32-bit integers, got %s %v", k, m[k])
			}
			dst = binary.LittleEndian.AppendUint32(dst, uint32(x))
		}
		return dst, nil
	case avEnum:
		s, ok := v.(string)
		if !ok {
			return dst, mismatch(n, v)
		}
		i, ok := n.symIdx[s]
		if !ok {
			return dst, errorf("%q is not a symbol of enum %s (%s)", s, n.name, strings.Join(n.symbols, ", "))
		}
		return appendLong(dst, int64(i)), nil
	case avArray:
		items, ok := v.([]any)
		if !ok {
			return dst, mismatch(n, v)
		}
		if len(items) > 0 {
			dst = appendLong(dst, int64(len(items)))
			for i, it := range items {
				var err error
				if dst, err = n.elem.encode(dst, it, o); err != nil {
					return dst, inField(err, "["+strconv.Itoa(i)+"]")
				}
			}
		}
		return append(dst, 0), nil
	case avMap:
		m, ok := asMap(v)
		if !ok {
			return dst, mismatch(n, v)
		}
		if len(m) > 0 {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			dst = appendLong(dst, int64(len(keys)))
			for _, k := range keys {
				dst = appendLong(dst, int64(len(k)))
				dst = append(dst, k...)
				var err error
				if dst, err = n.elem.encode(dst, m[k], o); err != nil {
					return dst, inField(err, k)
				}
			}
		}
		return append(dst, 0), nil
	case avRecord:
		if obj, ok := v.(jsonObject); ok {
			return n.encodeObject(dst, obj, o)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return dst, mismatch(n, v)
		}
		found := 0
		for i := range n.fields {
			f := &n.fields[i]
			fv, ok := m[f.name]
			if !ok {
				if !f.hasDef {
					return dst, inField(errorf("missing, and the schema gives it no default"), f.name)
				}
				dst = append(dst, f.def...)
				continue
			}
			found++
			var err error
			if dst, err = f.node.encode(dst, fv, o); err != nil {
				return dst, inField(err, f.name)
			}
		}
		if found < len(m) && !o.ignoreUnknown {
			var unknown []string
			for k := range m {
				if !slices.ContainsFunc(n.fields, func(f avroField) bool { return f.name == k }) {
					unknown = append(unknown, k)
				}
			}
			slices.Sort(unknown)
			return dst, inField(errorf("not a field of record %s (set ignore_unknown_fields to drop such fields)", n.name), unknown[0])
		}
		return dst, nil
	case avUnion:
		return n.encodeUnion(dst, v, o)
	}
	return dst, errorf("unsupported schema node %s", n.name)
}

// asMap returns a JSON object (or a default's map) as a map; a key given twice keeps its last value.
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case jsonObject:
		out := make(map[string]any, len(m))
		for _, kv := range m {
			out[kv.key] = kv.val
		}
		return out, true
	}
	return nil, false
}

// absent marks a record field the JSON object does not have.
type absent struct{}

// encodeObject writes a parsed JSON object as record n: each field from its member (the last, if
// the key is given twice), or its default when there is none.
func (n *avroNode) encodeObject(dst []byte, obj jsonObject, o *encodeOptions) ([]byte, error) {
	var small [16]any
	vals := small[:0]
	if len(n.fields) > len(small) {
		vals = make([]any, 0, len(n.fields))
	}
	for range n.fields {
		vals = append(vals, absent{})
	}
	for _, kv := range obj {
		i, ok := n.fieldIdx[kv.key]
		if !ok {
			if o.ignoreUnknown {
				continue
			}
			var unknown []string
			for _, kv := range obj {
				if _, ok := n.fieldIdx[kv.key]; !ok {
					unknown = append(unknown, kv.key)
				}
			}
			slices.Sort(unknown)
			return dst, inField(errorf("not a field of record %s (set ignore_unknown_fields to drop such fields)", n.name), unknown[0])
		}
		vals[i] = kv.val
	}
	for i := range n.fields {
		f := &n.fields[i]
		if _, ok := vals[i].(absent); ok {
			if !f.hasDef {
				return dst, inField(errorf("missing, and the schema gives it no default"), f.name)
			}
			dst = append(dst, f.def...)
			continue
		}
		var err error
		if dst, err = f.node.encode(dst, vals[i], o); err != nil {
			return dst, inField(err, f.name)
		}
	}
	return dst, nil
}

// encodeUnion writes v with the first branch its JSON type is natural for that takes it, else the
// first it converts to.
func (n *avroNode) encodeUnion(dst []byte, v any, o *encodeOptions) ([]byte, error) {
	mark := len(dst)
	var first error
	for pass := 0; pass < 2; pass++ {
		for i, b := range n.branches {
			if pass == 0 && !b.natural(v) || pass == 1 && !b.convertible(v) {
				continue
			}
			out, err := b.encode(appendLong(dst[:mark], int64(i)), v, o)
			if err == nil {
				return out, nil
			}
			if first == nil {
				first = err
			}
		}
	}
	if first != nil {
		return dst[:mark], first
	}
	return dst[:mark], mismatch(n, v)
}

func (n *avroNode) integer(v any) (int64, error) {
	var i int64
	switch x := v.(type) {
	case json.Number:
		var err error
		if i, err = strconv.ParseInt(string(x), 10, 64); err != nil {
			f, ferr := strconv.ParseFloat(string(x), 64)
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
				return 0, errorf("expected %s, got %s", n.name, x)
			}
			i = int64(f)
		}
	case float64:
		if x != math.Trunc(x) || math.Abs(x) >= 1<<63 {
			return 0, errorf("expected %s, got %v", n.name, x)
		}
		i = int64(x)
	case float32:
		return n.integer(float64(x))
	case int:
		i = int64(x)
	case int32:
		i = int64(x)
	case int64:
		i = x
	case string:
		t, err := n.parseTime(x)
		if err != nil {
			return 0, err
		}
		i = t
	default:
		return 0, mismatch(n, v)
	}
	if n.kind == avInt && (i > math.MaxInt32 || i < math.MinInt32) {
		return 0, errorf("%d is out of range for %s", i, n.name)
	}
	return i, nil
}

// parseTime reads the string forms of the date and timestamp logical types.
func (n *avroNode) parseTime(s string) (int64, error) {
	switch n.logical {
	case avro.Date:
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return 0, errorf("expected %s (days since 1970-01-01, or YYYY-MM-DD), got %q", n.name, s)
		}
		return t.Unix() / 86400, nil
	case avro.TimestampMillis, avro.TimestampMicros, avro.LocalTimestampMillis, avro.LocalTimestampMicros:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil && (n.logical == avro.LocalTimestampMillis || n.logical == avro.LocalTimestampMicros) {
			t, err = time.Parse("2006-01-02T15:04:05.999999999", s)
		}
		if err != nil {
			return 0, errorf("expected %s (an epoch number, or an RFC 3339 time), got %q", n.name, s)
		}
		if n.logical == avro.TimestampMillis || n.logical == avro.LocalTimestampMillis {
			return t.UnixMilli(), nil
		}
		return t.UnixMicro(), nil
	}
	return 0, errorf("expected %s, got string", n.name)
}

func (n *avroNode) float(v any) (float64, error) {
	var f float64
	switch x := v.(type) {
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(x), 64); err != nil {
			return 0, errorf("expected %s, got %s", n.name, x)
		}
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case string:
		switch x {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return 0, mismatch(n, v)
	default:
		return 0, mismatch(n, v)
	}
	if n.kind == avFloat && !math.IsInf(f, 0) && math.IsInf(float64(float32(f)), 0) {
		return 0, errorf("%v is out of range for float", f)
	}
	return f, nil
}

// bytes reads bytes and fixed values: base64 text (standard alphabet, padded or not).
func (n *avroNode) bytes(v any) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		b, err := base64.StdEncoding.DecodeString(x)
		if err != nil {
			if b, err = base64.RawStdEncoding.DecodeString(x); err != nil {
				return nil, errorf("expected %s as base64 text, got %q", n.name, truncate(x, 40))
			}
		}
		return b, nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 {
		b := make([]byte, rv.Len())
		reflect.Copy(reflect.ValueOf(b), rv)
		return b, nil
	}
	return nil, mismatch(n, v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// decimal reads a decimal from a JSON number or numeric string into its two's-complement
// big-endian unscaled bytes (sized to the fixed type).
func (n *avroNode) decimal(v any) ([]byte, error) {
	var text string
	switch x := v.(type) {
	case json.Number:
		text = string(x)
	case string:
		text = x
	case float64:
		text = strconv.FormatFloat(x, 'f', -1, 64)
	case int, int64, int32:
		text = fmt.Sprint(x)
	default:
		raw, err := n.bytes(v) // a default: the unscaled bytes themselves
		if err != nil {
			return nil, mismatch(n, v)
		}
		return n.sizeDecimal(new(big.Int).SetBytes(raw), raw)
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return nil, errorf("expected %s, got %q", n.name, truncate(text, 40))
	}
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.scale)), nil)))
	if !scaled.IsInt() {
		return nil, errorf("%s has more than the %d decimal places of %s", text, n.scale, n.name)
	}
	u := scaled.Num()
	if n.prec > 0 && len(new(big.Int).Abs(u).String()) > n.prec {
		return nil, errorf("%s has more than the %d digits of %s", text, n.prec, n.name)
	}
	return n.sizeDecimal(u, nil)
}

// sizeDecimal returns u as two's-complement big-endian bytes: the fewest for bytes, exactly
// size for fixed (raw, when given, is already encoded).
func (n *avroNode) sizeDecimal(u *big.Int, raw []byte) ([]byte, error) {
	if raw != nil {
		if n.kind == avDecimalFixed && len(raw) != n.size {
			return nil, errorf("expected %d bytes for %s, got %d", n.size, n.name, len(raw))
		}
		return raw, nil
	}
	size := len(u.Bytes()) + 1
	if n.kind == avDecimalFixed {
		size = n.size
	}
	b := make([]byte, size)
	x := u
	if u.Sign() < 0 {
		x = new(big.Int).Add(u, new(big.Int).Lsh(big.NewInt(1), uint(8*size)))
	}
	if x.Sign() < 0 || x.BitLen() > 8*size || (u.Sign() >= 0 && x.BitLen() == 8*size) {
		return nil, errorf("%s does not fit in the %d bytes of %s", u.String(), size, n.name)
	}
	x.FillBytes(b)
	if n.kind == avDecimalBytes { // drop redundant sign bytes
		for len(b) > 1 && (b[0] == 0 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 != 0) {
			b = b[1:]
		}
	}
	return b, nil
}
