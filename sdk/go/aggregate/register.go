package aggregate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

// Meta describes an aggregate module. It becomes the JSON the host reads through tf_meta (ABI.md
// sections 8 and 13.1); its abi is "1.1" and its kinds ["aggregate"].
type Meta struct {
	// Name is required: 1 to 64 characters from [A-Za-z0-9_.-]. The host stores it with the
	// state and refuses to resume state written by a module of another name.
	Name string
	// Version is required; SemVer is recommended.
	Version string
	// Ports names the extra output ports, after "main" (which is always port 0 and need not be
	// listed). Names match [a-z][a-z0-9_]{0,63}.
	Ports []string
	// ConfigSchema is an optional JSON Schema (draft 2020-12) for the config object, as JSON text.
	// The host validates the config against it before init.
	ConfigSchema string
	// StateVersion names the layout of the module's state blobs (0 to 2^31-1). Change it when
	// the layout changes: the host refuses to resume state written under another version.
	StateVersion int
}

// Funcs are the module's aggregation functions. Accumulate and Emit are required; Merge is
// needed by session windows only.
type Funcs struct {
	// Accumulate folds the record s.Record into state, the current state of the slot s.Slot
	// (empty for a new slot), and returns the new state. state is a buffer the SDK owns for the
	// slot during the call: Accumulate may change it in place, re-slice it, append to it or return
	// another slice (which the SDK copies). Returning an empty state forgets the slot.
	//
	// The record is dropped (absorbed) unless Accumulate calls s.Pass, s.Reject or one of the
	// s.Emit methods. An error rejects the record, with the code of a *RejectError (see Rejectf)
	// or CodeUnspecified: the state is then left as it was and emits are discarded, so reject
	// before changing state in place.
	Accumulate func(s *Step, state []byte) ([]byte, error)
	// Emit turns a slot's state into records (tf_agg_emit): e.Slot.Final tells whether the window
	// closes (the host deletes the slot after the call) or the call is an early update. Emitted
	// records take the slot's key and the time window_end - 1 unless set otherwise. An error
	// fails the call (the host retries it, then splits it).
	Emit func(e *Emitter, state []byte) error
	// Merge folds other into state, both states of the slot (tf_agg_merge, session windows:
	// state is the earlier session's), and returns the merged state. state is a buffer the SDK
	// owns, as in Accumulate; other is read-only. An error fails the call. Without Merge, a
	// merge call fails with an error.
	Merge func(slot *Slot, state, other []byte) ([]byte, error)
}

// Option configures Register.
type Option func(*module)

// OnInit registers fn to run once per instance when the config arrives (tf_init), before the first
// frame. Use Config inside fn to decode the config. An error fails the stage with its message.
func OnInit(fn func() error) Option {
	return func(m *module) { m.onInit = fn }
}

// StateLimit bounds the module's states at n bytes (1 to abi.MaxStateLimit): a record that would
// make its slot's state larger is rejected with CodeOutOfRange and leaves the state as it was, and
// a merge or emit that would is a failed call. The default is abi.MaxStateLimit, the largest
// limits.state a stage may set; the stage's own limit (64 KiB by default) is the host's to check.
func StateLimit(n int) Option {
	return func(m *module) {
		if n < 1 || n > abi.MaxStateLimit {
			panic("aggregate: StateLimit " + strconv.Itoa(n) + " outside [1, " + strconv.Itoa(abi.MaxStateLimit) + "]")
		}
		m.stateLimit, m.declaredLimit = n, n
	}
}

// Register declares the module's aggregation. Call it once, from an init function of package main.
// It panics on an invalid Meta, on missing Accumulate or Emit (programming errors, reported by the
// host as a failed module start) or on a second call.
func Register(meta Meta, funcs Funcs, opts ...Option) {
	if mod.registered {
		panic("aggregate: Register called twice")
	}
	if funcs.Accumulate == nil || funcs.Emit == nil {
		panic("aggregate: Register: Accumulate and Emit are required")
	}
	mj, ports, err := encodeMeta(meta)
	if err != nil {
		panic("aggregate: Register: " + err.Error())
	}
	mod.registered = true
	mod.funcs, mod.meta, mod.ports = funcs, mj, ports
	mod.stateLimit = abi.MaxStateLimit
	for _, o := range opts {
		o(&mod)
	}
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

func encodeMeta(meta Meta) ([]byte, []string, error) {
	if !validName(meta.Name) {
		return nil, nil, errors.New("meta: name " + strconv.Quote(meta.Name) + " must match [A-Za-z0-9_.-]{1,64}")
	}
	if meta.Version == "" {
		return nil, nil, errors.New("meta: version is required")
	}
	if meta.StateVersion < 0 || int64(meta.StateVersion) > 1<<31-1 {
		return nil, nil, errors.New("meta: state_version must be between 0 and 2^31-1")
	}
	ports := []string{abi.DefaultPort}
	for _, p := range meta.Ports {
		if p == abi.DefaultPort {
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
	b = strconv.AppendInt(b, abi.Major, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, abi.MinorAggregate, 10)
	b = append(b, `","kinds":["`+abi.KindAggregate+`"],"ports":[`...)
	for i, p := range ports {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, p)
	}
	b = append(b, `],"state_version":`...)
	b = strconv.AppendInt(b, int64(meta.StateVersion), 10)
	if s := bytes.TrimSpace([]byte(meta.ConfigSchema)); len(s) > 0 {
		if !json.Valid(s) {
			return nil, nil, errors.New("meta: config_schema is not valid JSON")
		}
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
		return fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return errors.New("config: trailing data after the JSON object")
	}
	return nil
}

// ConfigBytes returns the raw config JSON received at init (a copy owned by the SDK; do not modify).
func ConfigBytes() []byte { return mod.config }

// Code is a reject code (ABI.md section 10.1). Codes 0xF000 and above are reserved for the host.
type Code = uint16

// Well-known reject codes (ABI.md section 10.1). A module may use any code from 4 to 0xEFFF.
const (
	CodeUnspecified  = abi.CodeUnspecified
	CodeInvalidInput = abi.CodeInvalidInput // not parseable: not JSON, not UTF-8, wrong shape
	CodeSchema       = abi.CodeSchema       // a field missing or of the wrong type
	CodeOutOfRange   = abi.CodeOutOfRange   // a value outside its allowed range
)

// RejectError is an error that carries a reject code; Accumulate returns it to reject a record.
// A package-level *RejectError can be returned for every record without allocating.
type RejectError struct {
	Code   Code
	Reason string
}

// Error returns the reason.
func (e *RejectError) Error() string { return e.Reason }

// Reject returns a *RejectError with the code and the reason.
func Reject(code Code, reason string) error { return &RejectError{Code: code, Reason: reason} }

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
// stage by the host: log per frame, not per record). Outside WebAssembly it writes nothing.
func Log(level Level, msg string) { hostLog(level, msg) }

// Logf is Log with fmt formatting.
func Logf(level Level, format string, args ...any) { hostLog(level, fmt.Sprintf(format, args...)) }

// Count adds delta to the stage counter name ([a-z][a-z0-9_]{0,63}; at most 32 names per stage).
// Outside WebAssembly it does nothing.
func Count(name string, delta int64) { hostMetricAdd(name, delta) }
