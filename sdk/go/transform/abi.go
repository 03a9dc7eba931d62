package transform

import (
	"encoding/binary"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

// The ABI's constants and types are sdk/go/abi's; these names are the SDK's shorthands for them.
const (
	abiMajor   = abi.Major
	abiMinor   = abi.Minor
	abiVersion = abi.Version // value of tf_abi_version

	inMagic  = abi.InMagic
	outMagic = abi.OutMagic

	inHeaderSize   = abi.InHeaderSize // a guest accepts larger ones
	descSize       = abi.DescSize
	outHeaderSize  = abi.OutHeaderSize
	dispSize       = abi.DispSize
	kindRecords    = abi.KindRecords
	noTimestamp    = abi.NoTimestamp
	inherit32      = abi.Inherit
	flagKeyIsNull  = abi.FlagKeyNull
	maxReasonBytes = abi.MaxReasonBytes

	errGeneric     = abi.ErrGeneric
	errUnsupported = abi.ErrUnsupported
	errNoMemory    = abi.ErrNoMemory
)

// Code is a reject code (ABI section 10.1). Codes 0xF000 and above are reserved for the host.
type Code = uint16

// Well-known reject codes (ABI section 10.1). A transform may use any code from 4 to 0xEFFF for its
// own purposes.
const (
	// CodeUnspecified carries no particular meaning.
	CodeUnspecified = abi.CodeUnspecified
	// CodeInvalidInput: the record is not parseable (not JSON, not UTF-8, wrong shape).
	CodeInvalidInput = abi.CodeInvalidInput
	// CodeSchema: a field is missing or of the wrong type.
	CodeSchema = abi.CodeSchema
	// CodeOutOfRange: a value lies outside its allowed range.
	CodeOutOfRange = abi.CodeOutOfRange
)

// Action is the disposition of one input record (ABI section 7.2): the ABI's one action type.
type Action = abi.Action

// Actions.
const (
	// ActionPass keeps the input record unchanged; the host forwards its own copy.
	ActionPass = abi.Pass
	// ActionDrop removes the record; it counts as delivered.
	ActionDrop = abi.Drop
	// ActionEmit replaces the record by the records emitted for it (zero or more).
	ActionEmit = abi.Emit
	// ActionReject refuses the record with a code and a reason.
	ActionReject = abi.Reject
)

var le = binary.LittleEndian
