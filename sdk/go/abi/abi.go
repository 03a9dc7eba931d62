// Package abi is the Sluice transform ABI, version 1, in Go: the constants, the action type, the
// encoding of input frames (TFB1) and the checked decoding of result frames (TFR1) that
// sdk/abi/v1/ABI.md specifies. The WASM host (internal/wasmhost) and the Go guest SDK
// (sdk/go/transform) both use it, so the two sides of the boundary cannot drift apart. It depends
// on the standard library only, so that guests built with it stay small.
package abi

import "encoding/binary"

// Version of the ABI this package implements (ABI.md section 12).
const (
	Major = 1
	Minor = 0 // a plain transform's; aggregate modules report MinorAggregate (agg.go)
	// Version is what a plain transform's tf_abi_version returns: major << 16 | minor.
	Version = Major<<16 | Minor
)

// Frame layout (ABI.md sections 6 and 7). Fields are little-endian; offsets are relative to the
// first byte of their frame.
const (
	InMagic       = 0x31424654 // "TFB1", input frame
	OutMagic      = 0x31524654 // "TFR1", result frame
	InHeaderSize  = 40         // FrameHeader in v1.0 (a guest accepts larger ones)
	DescSize      = 48         // RecordDesc and OutDesc in v1.0
	OutHeaderSize = 32         // ResultHeader
	DispSize      = 12         // Disposition
	KindRecords   = 1          // the frame kind of v1.0
	FlagKeyNull   = 1          // RecordDesc/OutDesc flags: the key is null
	// Inherit in an OutDesc's key_len or hdr_len: take the input record's key or headers.
	Inherit = 0xFFFFFFFF
	// NoTimestamp (INT64_MIN) in ts_ms: the record has no time (input) or inherits the input's
	// (output).
	NoTimestamp = -1 << 63
)

// Limits (ABI.md section 11).
const (
	MaxFrameBytes   = 4 << 20  // input frame, unless a quarter of the memory limit is smaller
	MaxFrameRecords = 4096     // input frame
	MaxResultBytes  = 64 << 20 // result frame
	MaxOutRecords   = 65536    // n_out of a result frame
	MaxOutHeaders   = 1024     // headers of one emitted record (its encoded header list's count)
	// HeaderCost is what a host charges for each header of an emitted record on top of its key
	// and value bytes (section 7.2): the header's memory on the host, so that empty headers are
	// not free. sdk/go/connector's Record.Size charges the same.
	HeaderCost     = 48
	MaxReasonBytes = 1024     // reject reasons and tf_last_error, truncated by the host
	MaxMetaBytes   = 64 << 10 // tf_meta
	MaxLogLine     = 1024     // tf_host_v1.log, stdout and stderr lines
)

// DefaultPort is output port 0 of every module: passed records and emitted records of port index
// 0 go there (ABI.md section 8).
const DefaultPort = "main"

// Batch error codes a tf_process may return (ABI.md section 10.3).
const (
	ErrGeneric     = -1
	ErrUnsupported = -2 // unsupported input frame
	ErrNoMemory    = -3
)

// Well-known reject codes (ABI.md section 10.1). Codes 4 to 0xEFFF are the transform's own;
// 0xF000 and above belong to the host.
const (
	CodeUnspecified  uint16 = 0
	CodeInvalidInput uint16 = 1 // not parseable: not JSON, not UTF-8, wrong shape
	CodeSchema       uint16 = 2 // a field missing or of the wrong type
	CodeOutOfRange   uint16 = 3 // a value outside its allowed range
)

// Host reject codes for records the host isolates as poison (ABI.md section 10.2).
const (
	CodeTrap          uint16 = 0xFF01
	CodeDeadline      uint16 = 0xFF02
	CodeMemory        uint16 = 0xFF03
	CodeGuestError    uint16 = 0xFF04
	CodeInvalidResult uint16 = 0xFF05
)

// Action is the disposition of one input record (ABI.md section 7.2). It is the one action type
// of Sluice: runtime/transform and sdk/go/transform name it too.
type Action uint8

// Actions.
const (
	// Pass forwards the input record unchanged on port main; nothing is copied.
	Pass Action = 0
	// Drop removes the record; it counts as delivered.
	Drop Action = 1
	// Emit replaces the record by the records emitted for it (zero or more).
	Emit Action = 2
	// Reject refuses the record with a code and a reason.
	Reject Action = 3
)

// String names the action as ABI.md does.
func (a Action) String() string {
	switch a {
	case Pass:
		return "PASS"
	case Drop:
		return "DROP"
	case Emit:
		return "EMIT"
	case Reject:
		return "REJECT"
	}
	return "INVALID"
}

var le = binary.LittleEndian
