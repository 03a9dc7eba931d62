package protocol

import (
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
	// buffers once Unmarshal returns).
	b := data.Materialize()
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
