package protocol

import (
	"slices"
	"sync"
	"unsafe"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// Codec returns the gRPC codec both ends of the plugin connection use. It speaks plain protobuf
// (the wire format stays that of plugin.proto, so either end may use gRPC's default codec)
// but moves record batches without copying them: a WriteRequest (a batch, its write_id and chain)
// or a ReadResponse that carries only a batch is sent as a header of a few bytes followed by the
// batch buffer itself, and received with the batch aliasing the received message instead of a
// copy of it. The sender must not
// modify a batch until the call is over. Every other message goes through gRPC's proto codec.
// The codec is stateless and safe for concurrent use.
func Codec() encoding.CodecV2 { return batchCodec{fallback: encoding.GetCodecV2(grpcproto.Name)} }

type batchCodec struct{ fallback encoding.CodecV2 }

// Name is the proto codec's: the content subtype on the wire does not change.
func (batchCodec) Name() string { return grpcproto.Name }

func (c batchCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *pb.WriteRequest:
		if len(m.ProtoReflect().GetUnknown()) == 0 {
			var tail []byte
			if m.WriteId != 0 {
				tail = protowire.AppendTag(tail, 2, protowire.VarintType)
				tail = protowire.AppendVarint(tail, m.WriteId)
			}
			if m.Chain {
				tail = protowire.AppendTag(tail, 3, protowire.VarintType)
				tail = protowire.AppendVarint(tail, 1)
			}
			return withBatch(m.Batch, tail), nil
		}
	case *pb.ReadResponse:
		if !m.Eof && m.Error == nil && len(m.ProtoReflect().GetUnknown()) == 0 {
			return withBatch(m.Batch, nil), nil
		}
	}
	return c.fallback.Marshal(v)
}

// withBatch encodes a message made of bytes field 1 holding batch, referencing batch, followed by
// the encoded fields tail (field order, as proto.Marshal writes it).
func withBatch(batch, tail []byte) mem.BufferSlice {
	var out mem.BufferSlice
	if len(batch) > 0 { // proto3 omits an empty bytes field
		hdr := protowire.AppendTag(make([]byte, 0, 11), 1, protowire.BytesType)
		hdr = protowire.AppendVarint(hdr, uint64(len(batch)))
		out = append(out, mem.SliceBuffer(hdr), mem.SliceBuffer(batch))
	}
	if len(tail) > 0 {
		out = append(out, mem.SliceBuffer(tail))
	}
	return out
}

func (c batchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	var dst *[]byte
	var wr *pb.WriteRequest
	switch m := v.(type) {
	case *pb.WriteRequest:
		dst, wr = &m.Batch, m
	case *pb.ReadResponse:
		dst = &m.Batch
	default:
		return c.fallback.Unmarshal(data, v)
	}
	if data.Len() == 0 {
		return c.fallback.Unmarshal(data, v)
	}
	// One copy, into memory of our own that the records may keep referencing (gRPC reuses its
	// buffers once Unmarshal returns). A WriteRequest's copy may be memory a receiver gave back
	// with ReleaseBatch.
	var b []byte
	if wr != nil {
		b = recvBufs.get(data.Len())
		data.CopyTo(b)
	} else {
		b = data.Materialize()
	}
	if decodeFast(b, dst, wr) {
		return nil
	}
	// Anything else (other fields, unknown fields, garbage) is the proto codec's business.
	*dst = nil
	if wr != nil {
		wr.WriteId, wr.Chain = 0, false
	}
	return c.fallback.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, v)
}

// decodeFast decodes b when it holds only the batch (field 1) and, in a WriteRequest (wr not
// nil), its write_id and chain, with the batch aliasing b. It reports false for anything else.
func decodeFast(b []byte, batch *[]byte, wr *pb.WriteRequest) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return false
			}
			*batch = v[:len(v):len(v)]
			b = b[m:]
		case wr != nil && (num == 2 || num == 3) && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 || (num == 3 && v > 1) {
				return false
			}
			if num == 2 {
				wr.WriteId = v
			} else {
				wr.Chain = v == 1
			}
			b = b[m:]
		default:
			return false
		}
	}
	return true
}

// ReleaseBatch tells the codec that the receiver of a WriteRequest is done with its batch and with
// everything decoded from it (the records alias it): the memory may receive a later WriteRequest.
// A batch the codec did not receive into reusable memory (small, or one of more at once than it
// keeps track of) is left to the garbage collector; releasing one twice, or any other slice, does
// nothing. The plugin server releases a batch once the connector's Write returned, which the
// connector contract allows (a sink must not assume a record's slices stay unchanged after the
// call that handed them over).
func ReleaseBatch(batch []byte) { recvBufs.put(batch) }

// recvBufs recycles the memory WriteRequests are received into: a batch of 8192 100-byte records
// is 0.8 MiB, which the runtime would otherwise clear, fill and collect per call.
var recvBufs bufRecycler

const (
	recycleMin  = 64 << 10 // smaller and larger messages are allocated as before
	recycleMax  = 4 << 20
	recycleKeep = 6 // buffers tracked, in use or free: a few writes in flight and decoding
)

type bufRecycler struct {
	mu    sync.Mutex
	inUse [][]byte // buffers handed out, by their full capacity
	free  [][]byte
}

// get returns a buffer of length n, reused when one large enough is free.
func (r *bufRecycler) get(n int) []byte {
	if n < recycleMin || n > recycleMax {
		return make([]byte, n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var b []byte
	for i, f := range r.free {
		if cap(f) >= n {
			b = f
			r.free = slices.Delete(r.free, i, i+1)
			break
		}
	}
	if b == nil {
		if len(r.inUse)+len(r.free) >= recycleKeep {
			return make([]byte, n) // not tracked: the garbage collector's
		}
		b = make([]byte, n, n+n/8) // room for slightly larger batches later
	}
	r.inUse = append(r.inUse, b[:0])
	return b[:n]
}

// put makes the tracked buffer that batch lies in free again.
func (r *bufRecycler) put(batch []byte) {
	if cap(batch) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(batch)))
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, b := range r.inUse {
		base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if p >= base && p < base+uintptr(cap(b)) {
			r.inUse = slices.Delete(r.inUse, i, i+1)
			r.free = append(r.free, b)
			return
		}
	}
}
