// Command probe is an aggregate module (ABI 1.1) written with the Go SDK, for the cross-language
// aggregation test (transforms/validate_price/crosslang/agg_test.go), which builds it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o agg_probe_go.wasm .
//
// It behaves exactly like sdk/c/testdata/agg_probe.c, which describes the behaviour, and like the
// Rust and AssemblyScript probes beside it. Where the C probe's callbacks return an error, which
// fails the whole call, this one panics: the SDK turns a panic into a failed call (an error
// returned by Accumulate would reject the record instead).
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/sluicehq/sluice/sdk/go/aggregate"
)

func main() {}

func init() {
	aggregate.Register(aggregate.Meta{Name: "agg_probe", Version: "0.0.1", Ports: []string{"alerts"}, StateVersion: 1},
		aggregate.Funcs{Accumulate: accumulate, Emit: emit, Merge: merge})
}

var errState = errors.New("agg_probe: state is not 16 bytes")

// getState reads a state blob, little-endian {u64 count, f64 sum}: empty is a new slot, anything
// but 16 bytes is an error.
func getState(b []byte) (uint64, float64, error) {
	switch len(b) {
	case 0:
		return 0, 0, nil
	case 16:
		return binary.LittleEndian.Uint64(b), math.Float64frombits(binary.LittleEndian.Uint64(b[8:])), nil
	}
	return 0, 0, errState
}

// appendState appends the state blob of count and sum to b.
func appendState(b []byte, count uint64, sum float64) []byte {
	b = binary.LittleEndian.AppendUint64(b, count)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(sum))
}

func accumulate(s *aggregate.Step, state []byte) ([]byte, error) {
	raw, ok := find(s.Record.Value, "n")
	if !ok || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		s.Reject(aggregate.CodeSchema, "n: missing or not a number")
		return state, nil
	}
	n := number(raw)
	count, sum, err := getState(state)
	if err != nil {
		panic(err)
	}
	// The state is read: its buffer (the SDK's) can take the new one.
	state = appendState(state[:0], count+1, sum+n)
	if n < 0 {
		if len(raw) > 72 {
			panic(errors.New("agg_probe: number too long"))
		}
		s.EmitInput("main")
		s.AppendEmit("alerts", func(b []byte) []byte {
			b = append(b, `{"neg":`...)
			b = append(b, raw...)
			return append(b, '}')
		})
	}
	return state, nil
}

// maxDepth is the nesting limit of the C SDK's sluice_json_find (SLUICE_JSON_MAX_DEPTH).
const maxDepth = 64

// find returns the raw text of the first top-level member called name, as the C SDK's
// sluice_json_find finds it: text must be exactly one RFC 8259 JSON text (valid UTF-8, containers
// nested at most maxDepth levels, the top-level one being level 1) whose value is an object, and
// member names are compared decoded.
func find(text []byte, name string) ([]byte, bool) {
	if !json.Valid(text) || !utf8.Valid(text) || depth(text) > maxDepth {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if k == name {
			return bytes.Trim(v, " \t\r\n"), true
		}
	}
	return nil, false
}

// depth returns the deepest nesting of containers in a valid JSON text.
func depth(text []byte) int {
	d, most, str, esc := 0, 0, false, false
	for _, c := range text {
		switch {
		case esc:
			esc = false
		case str:
			esc, str = c == '\\', c != '"'
		case c == '"':
			str = true
		case c == '{' || c == '[':
			d++
			most = max(most, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return most
}

// number converts a JSON number to the nearest float64; overflow gives ±Inf, as in the C SDK's
// sluice_json_number.
func number(raw []byte) float64 {
	x, err := strconv.ParseFloat(string(raw), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		panic(err) // not reached: find returns valid JSON numbers
	}
	return x
}

func emit(e *aggregate.Emitter, state []byte) error {
	count, sum, err := getState(state)
	if err != nil {
		return err
	}
	sl := e.Slot
	if len(sl.Key) > 128 {
		return errors.New("agg_probe: key over 128 bytes")
	}
	e.AppendEmit("main", func(b []byte) []byte {
		const hex = "0123456789abcdef"
		b = append(b, `{"key":`...)
		if sl.KeyNull {
			b = append(b, "null"...)
		} else {
			b = append(b, '"')
			for _, k := range sl.Key {
				switch {
				case k == '"' || k == '\\':
					b = append(b, '\\', k)
				case k < 0x20:
					b = append(b, '\\', 'u', '0', '0', hex[k>>4], hex[k&15])
				default:
					b = append(b, k)
				}
			}
			b = append(b, '"')
		}
		b = append(b, `,"start":`...)
		b = strconv.AppendInt(b, sl.Start, 10)
		b = append(b, `,"end":`...)
		b = strconv.AppendInt(b, sl.End, 10)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, count, 10)
		b = append(b, `,"sum":`...)
		b = appendSum(b, sum)
		return append(b, '}')
	})
	return nil
}

// appendSum appends the sum as the C probe's put_sum writes it: "-" for a negative sum, the
// integer part, then when there is a fraction "." and its digits, at most 17, each taken by
// multiplying the rest by 10. NaN and magnitudes of 1e18 or more are written as null. The explicit
// conversions keep each operation rounded on its own.
func appendSum(b []byte, x float64) []byte {
	if !(x > -1e18 && x < 1e18) {
		return append(b, "null"...)
	}
	if x < 0 {
		b, x = append(b, '-'), -x
	}
	ip := uint64(x)
	f := float64(x - float64(ip))
	b = strconv.AppendUint(b, ip, 10)
	if f > 0 {
		b = append(b, '.')
		for k := 0; k < 17 && f > 0; k++ {
			f = float64(f * 10)
			d := int32(f)
			f = float64(f - float64(d))
			b = append(b, byte('0'+d))
		}
	}
	return b
}

// merge adds the counts and the sums.
func merge(_ *aggregate.Slot, state, other []byte) ([]byte, error) {
	c1, s1, err := getState(state)
	if err != nil {
		return nil, err
	}
	c2, s2, err := getState(other)
	if err != nil {
		return nil, err
	}
	return appendState(state[:0], c1+c2, s1+s2), nil
}
