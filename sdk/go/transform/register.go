package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Kind describes what a transform does (meta "kinds"; descriptive only).
type Kind string

// Kinds of ABI v1.
const (
	KindValidate Kind = "validate"
	KindFilter   Kind = "filter"
	KindMap      Kind = "map"
	KindFlatMap  Kind = "flatmap"
	KindRoute    Kind = "route"
)

// Meta describes a transform. It becomes the JSON the host reads through tf_meta (ABI section 8).
type Meta struct {
	// Name is required: 1 to 64 characters from [A-Za-z0-9_.-].
	Name string
	// Version is required; SemVer is recommended.
	Version string
	// Kinds is required and non-empty.
	Kinds []Kind
	// Ports names the extra output ports, after "main" (which is always port 0 and need not be
	// listed). Names match [a-z][a-z0-9_]{0,63}.
	Ports []string
	// ConfigSchema is an optional JSON Schema (draft 2020-12) for the config object, as JSON text.
	// The host validates the config against it before init.
	ConfigSchema string
}

// Processor handles one batch. Process sets a disposition for each record it does not want to
// pass; returning an error fails the whole batch (the host retries it on a fresh instance, then
// bisects it so that only the records that fail alone are rejected).
type Processor interface {
	Process(b *Batch) error
}

// ProcessFunc adapts a function to Processor.
type ProcessFunc func(b *Batch) error

// Process calls f(b).
func (f ProcessFunc) Process(b *Batch) error { return f(b) }

// Option configures Register.
type Option func(*module)

// OnInit registers fn to run once per instance when the config arrives (tf_init), before the first
// batch. Use Config inside fn to decode the config. An error fails the stage with its message.
func OnInit(fn func() error) Option {
	return func(m *module) { m.onInit = fn }
}

// validName reports whether s matches [A-Za-z0-9_.-]{1,64} (meta name).
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validPort reports whether s matches [a-z][a-z0-9_]{0,63} (port and counter names).
func validPort(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Register declares the module's single transform. Call it once, from an init function of package
// main. It panics on an invalid Meta (a programming error, reported by the host as a failed module
// start) or on a second call.
func Register(meta Meta, p Processor, opts ...Option) {
	if mod.proc != nil {
		panic("transform: Register called twice")
	}
	if p == nil {
		panic("transform: Register: nil Processor")
	}
	mj, ports, err := encodeMeta(meta)
	if err != nil {
		panic("transform: Register: " + err.Error())
	}
	mod.proc, mod.meta, mod.ports = p, mj, ports
	for _, o := range opts {
		o(&mod)
	}
}

func encodeMeta(meta Meta) ([]byte, []string, error) {
	if !validName(meta.Name) {
		return nil, nil, errors.New("meta: name " + strconv.Quote(meta.Name) + " must match [A-Za-z0-9_.-]{1,64}")
	}
	if meta.Version == "" {
		return nil, nil, errors.New("meta: version is required")
	}
	if len(meta.Kinds) == 0 {
		return nil, nil, errors.New("meta: at least one kind is required")
	}
	ports := []string{"main"}
	for _, p := range meta.Ports {
		if p == "main" {
			continue
		}
		if !validPort(p) {
			return nil, nil, errors.New("meta: port " + strconv.Quote(p) + " must match [a-z][a-z0-9_]{0,63}")
		}
		for _, q := range ports {
			if q == p {
				return nil, nil, errors.New("meta: port " + strconv.Quote(p) + " listed twice")
			}
		}
		ports = append(ports, p)
	}
	if len(ports) > 64 {
		return nil, nil, errors.New("meta: at most 64 ports")
	}
	var b []byte
	b = append(b, `{"name":`...)
	b = appendJSONString(b, meta.Name)
	b = append(b, `,"version":`...)
	b = appendJSONString(b, meta.Version)
	b = append(b, `,"abi":"`...)
	b = strconv.AppendInt(b, abiMajor, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, abiMinor, 10)
	b = append(b, `","kinds":[`...)
	for i, k := range meta.Kinds {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, string(k))
	}
	b = append(b, `],"ports":[`...)
	for i, p := range ports {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, p)
	}
	b = append(b, ']')
	if s := bytes.TrimSpace([]byte(meta.ConfigSchema)); len(s) > 0 {
		b = append(b, `,"config_schema":`...)
		b = append(b, s...)
	}
	b = append(b, '}')
	return b, ports, nil
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// Config decodes the config JSON object into v (encoding/json rules; unknown fields are an
// error). It is meant for OnInit; before init it sees an empty object.
func Config(v any) error {
	cfg := mod.config
	if len(bytes.TrimSpace(cfg)) == 0 {
		cfg = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(cfg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return wrap("config", err)
	}
	if dec.More() {
		return errors.New("config: trailing data after the JSON object")
	}
	return nil
}

// ConfigBytes returns the raw config JSON received at init (a copy owned by the SDK; do not modify).
func ConfigBytes() []byte { return mod.config }

// RejectError is an error that carries a reject code; Validate and Map turn it into a REJECT.
type RejectError struct {
	Code   Code
	Reason string
}

// Error returns the reason.
func (e *RejectError) Error() string { return e.Reason }

// Rejectf returns a *RejectError with the code and a formatted reason.
func Rejectf(code Code, format string, args ...any) error {
	return &RejectError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

func rejectOf(err error) (Code, string) {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Code, re.Reason
	}
	return CodeUnspecified, err.Error()
}

// Validate returns a Processor that passes each record for which fn returns nil and rejects the
// others, with the code of a *RejectError (see Rejectf) or CodeUnspecified, and the error text as
// the reason.
func Validate(fn func(r Record) error) Processor {
	return ProcessFunc(func(b *Batch) error {
		for i := 0; i < b.Len(); i++ {
			if err := fn(b.Record(i)); err != nil {
				code, reason := rejectOf(err)
				b.Reject(i, code, reason)
			}
		}
		return nil
	})
}

// Filter returns a Processor that passes the records for which keep returns true and drops the
// others.
func Filter(keep func(r Record) bool) Processor {
	return ProcessFunc(func(b *Batch) error {
		for i := 0; i < b.Len(); i++ {
			if !keep(b.Record(i)) {
				b.Drop(i)
			}
		}
		return nil
	})
}

// Map returns a Processor that replaces each record's value by what fn appends to dst (the
// result frame itself, so nothing is copied twice), keeping its key, time and headers, on the main
// port. An error rejects the record as Validate does.
func Map(fn func(r Record, dst []byte) ([]byte, error)) Processor {
	return ProcessFunc(func(b *Batch) error {
		for i := 0; i < b.Len(); i++ {
			r := b.Record(i)
			var ferr error
			mark := len(b.out)
			b.AppendEmit(i, "", nil, func(dst []byte) []byte {
				out, err := fn(r, dst)
				if err != nil {
					ferr = err
					return dst
				}
				return out
			})
			if ferr != nil {
				b.out = b.out[:mark]
				code, reason := rejectOf(ferr)
				b.Reject(i, code, reason)
			}
		}
		return nil
	})
}

// Level is a log level of the host's log import.
type Level int32

// Log levels.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

// Log sends one line to the host's structured logger (truncated to 1,024 bytes, rate-limited per
// stage by the host: log per batch, not per record). Outside WebAssembly it writes nothing.
func Log(level Level, msg string) { hostLog(level, msg) }

// Logf is Log with fmt formatting.
func Logf(level Level, format string, args ...any) { hostLog(level, fmt.Sprintf(format, args...)) }

// Count adds delta to the stage counter name ([a-z][a-z0-9_]{0,63}; at most 32 names per stage).
// Outside WebAssembly it does nothing.
func Count(name string, delta int64) { hostMetricAdd(name, delta) }
