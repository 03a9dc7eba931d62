package transform

import "encoding/binary"

// ABI v1 constants (sdk/abi/v1/ABI.md). Frame fields are little-endian; offsets are relative to the
// first byte of their frame.
const (
	abiMajor   = 1
	abiMinor   = 0
	abiVersion = abiMajor<<16 | abiMinor // value of tf_abi_version

	inMagic  = 0x31424654 // "TFB1"
	outMagic = 0x31524654 // "TFR1"

	inHeaderSize   = 40 // FrameHeader size in v1.0 (larger values are accepted)
	descSize       = 48 // RecordDesc / OutDesc size in v1.0
	outHeaderSize  = 32 // ResultHeader size
	dispSize       = 12 // Disposition size
	kindRecords    = 1
	noTimestamp    = -1 << 63 // INT64_MIN: no time / inherit the input's time
	inherit32      = 0xFFFFFFFF
	flagKeyIsNull  = 1
	maxReasonBytes = 1024 // the host truncates reasons and error messages to this many bytes
)

// Batch error codes returned by tf_process (ABI section 10.3).
const (
	errGeneric     = -1
	errUnsupported = -2
	errNoMemory    = -3
)

// Code is a reject code (ABI section 10.1). Codes 0xF000 and above are reserved for the host.
type Code = uint16

// Well-known reject codes (ABI section 10.1). A transform may use any code from 4 to 0xEFFF for its
// own purposes.
const (
	// CodeUnspecified carries no particular meaning.
	CodeUnspecified Code = 0
	// CodeInvalidInput: the record is not parseable (not JSON, not UTF-8, wrong shape).
	CodeInvalidInput Code = 1
	// CodeSchema: a field is missing or of the wrong type.
	CodeSchema Code = 2
	// CodeOutOfRange: a value lies outside its allowed range.
	CodeOutOfRange Code = 3
)

// Action is the disposition of one input record (ABI section 7.2).
type Action uint8

// Actions.
const (
	// ActionPass keeps the input record unchanged; the host forwards its own copy.
	ActionPass Action = 0
	// ActionDrop removes the record; it counts as delivered.
	ActionDrop Action = 1
	// ActionEmit replaces the record by the records emitted for it (zero or more).
	ActionEmit Action = 2
	// ActionReject refuses the record with a code and a reason.
	ActionReject Action = 3
)

// String names the action as the ABI does.
func (a Action) String() string {
	switch a {
	case ActionPass:
		return "PASS"
	case ActionDrop:
		return "DROP"
	case ActionEmit:
		return "EMIT"
	case ActionReject:
		return "REJECT"
	}
	return "INVALID"
}

var le = binary.LittleEndian
