//go:build !wasip1

package transform

import (
	"fmt"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

// LocalRecord is an input record for RunLocal.
type LocalRecord struct {
	// Key is the record key; KeyNull marks it absent.
	Key     []byte
	KeyNull bool
	Value   []byte
	// Timestamp in Unix milliseconds; use NoTimestamp for none.
	Timestamp int64
	// Headers as key/value pairs, in order.
	Headers [][2]string
}

// LocalOutcome is what the transform decided for one input record.
type LocalOutcome struct {
	Action Action
	Code   Code
	Reason string
	// Emitted holds the records emitted for this input, in order (EMIT only).
	Emitted []LocalEmitted
}

// LocalEmitted is one emitted record.
type LocalEmitted struct {
	Port string
	// Key is the emitted key unless KeyInherited (the host then uses the input's key) or KeyNull.
	Key          []byte
	KeyInherited bool
	KeyNull      bool
	Value        []byte
	// Timestamp is the emitted time, or NoTimestamp when it is inherited from the input.
	Timestamp int64
	// Headers are the emitted headers unless HeadersInherited.
	Headers          [][2]string
	HeadersInherited bool
}

// RunLocal runs the registered transform natively, without WebAssembly: it initialises it with
// config (a JSON object; nil means "{}"), encodes in as one ABI v1 input frame, processes it, and
// decodes and checks the result frame as the host does. It is meant for unit tests of package main
// of a transform; the WebAssembly build does not include it. Not safe for concurrent use.
func RunLocal(config []byte, in []LocalRecord) ([]LocalOutcome, error) {
	if config == nil {
		config = []byte("{}")
	}
	copy(reserve(uint32(len(config))), config)
	if initialize(uint32(len(config))) != 0 {
		return nil, fmt.Errorf("init: %s", mod.lastErr)
	}
	if len(in) == 0 {
		return nil, nil
	}
	frame := encodeFrame(in)
	copy(reserve(uint32(len(frame))), frame)
	res, code := process(uint32(len(frame)))
	if code != 0 {
		return nil, fmt.Errorf("process: batch error %d: %s", code, mod.lastErr)
	}
	return decodeResult(res, len(in), mod.ports)
}

// MetaJSON returns the metadata JSON the module reports through tf_meta.
func MetaJSON() []byte { return mod.meta }

// encodeFrame builds a TFB1 frame as the host does (sdk/go/abi).
func encodeFrame(in []LocalRecord) []byte {
	size := abi.DataOffset(len(in))
	for _, r := range in {
		kv := 0
		for _, h := range r.Headers {
			kv += len(h[0]) + len(h[1])
		}
		size += len(r.Key) + len(r.Value) + abi.HeadersSize(len(r.Headers), kv)
	}
	f := make([]byte, size)
	abi.PutFrameHeader(f, len(in), size)
	pos := abi.DataOffset(len(in))
	for i, r := range in {
		key := r.Key
		if key == nil && !r.KeyNull {
			key = []byte{}
		} else if r.KeyNull {
			key = nil
		}
		pos = abi.PutRecord(f, i, pos, key, r.Value, r.Timestamp, len(r.Headers),
			func(k int) (string, []byte) { return r.Headers[k][0], []byte(r.Headers[k][1]) })
	}
	return f
}

// decodeResult checks a TFR1 frame as the host does (sdk/go/abi) and decodes it, keeping what the
// host would inherit from the input as flags.
func decodeResult(res []byte, nIn int, ports []string) ([]LocalOutcome, error) {
	out := make([]LocalOutcome, nIn)
	actions, err := abi.DecodeResult(res, nIn, len(ports), make([]Action, 0, nIn), func(i int, d *abi.Disposition) {
		o := LocalOutcome{Code: d.Code, Reason: string(d.Reason)}
		for _, x := range d.Outputs {
			e := LocalEmitted{Port: ports[x.Port], Timestamp: x.TimeMs, KeyInherited: x.KeyInherit, KeyNull: x.KeyNull,
				HeadersInherited: x.HeadersInherit, Value: append([]byte{}, x.Value...)}
			if !x.KeyInherit && !x.KeyNull {
				e.Key = append([]byte{}, x.Key...)
			}
			if x.Headers != nil {
				_ = abi.EachHeader(x.Headers, func(k, v []byte) { // checked by DecodeResult
					e.Headers = append(e.Headers, [2]string{string(k), string(v)})
				})
			}
			o.Emitted = append(o.Emitted, e)
		}
		out[i] = o
	})
	for i, a := range actions {
		out[i].Action = a
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
