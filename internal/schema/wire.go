package schema

import (
	"encoding/binary"
	"fmt"
)

// The registry's wire format: magic byte 0, the schema id as 4 bytes big-endian, then (Protobuf
// only) the message indexes, then the payload.
const (
	magicByte  = 0
	headerSize = 5
)

// splitHeader returns the schema id of a wire-format payload and the bytes after the header.
func splitHeader(b []byte) (int, []byte, error) {
	if len(b) < headerSize {
		if len(b) > 0 && b[0] != magicByte {
			return 0, nil, fmt.Errorf("payload is not in the schema registry wire format: its first byte is %#02x, not the magic byte 0", b[0])
		}
		return 0, nil, fmt.Errorf("payload of %d bytes is shorter than the schema registry wire format's %d-byte header", len(b), headerSize)
	}
	if b[0] != magicByte {
		return 0, nil, fmt.Errorf("payload is not in the schema registry wire format: its first byte is %#02x, not the magic byte 0", b[0])
	}
	return int(binary.BigEndian.Uint32(b[1:5])), b[headerSize:], nil
}

// appendHeader appends the wire-format header for schema id to dst.
func appendHeader(dst []byte, id int) []byte {
	return binary.BigEndian.AppendUint32(append(dst, magicByte), uint32(id))
}

// readMessageIndexes reads the Protobuf message-index array: a zigzag varint count, then that many
// zigzag varints; a count of 0 means the first message ([0]).
func readMessageIndexes(b []byte) ([]int, []byte, error) {
	n, k := binary.Varint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("payload ends inside its Protobuf message indexes")
	}
	b = b[k:]
	if n == 0 {
		return []int{0}, b, nil
	}
	if n < 0 || n > 100 {
		return nil, nil, fmt.Errorf("invalid Protobuf message-index count %d", n)
	}
	idx := make([]int, n)
	for i := range idx {
		v, k := binary.Varint(b)
		if k <= 0 {
			return nil, nil, fmt.Errorf("payload ends inside its Protobuf message indexes")
		}
		if v < 0 {
			return nil, nil, fmt.Errorf("invalid Protobuf message index %d", v)
		}
		idx[i] = int(v)
		b = b[k:]
	}
	return idx, b, nil
}

// appendMessageIndexes appends the Protobuf message-index array for idx ([0] is written as the
// single byte 0).
func appendMessageIndexes(dst []byte, idx []int) []byte {
	if len(idx) == 1 && idx[0] == 0 {
		return append(dst, 0)
	}
	dst = binary.AppendVarint(dst, int64(len(idx)))
	for _, i := range idx {
		dst = binary.AppendVarint(dst, int64(i))
	}
	return dst
}
