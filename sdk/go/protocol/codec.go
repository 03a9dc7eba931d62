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
// but moves record batches without copying them: a WriteRequest or ReadResponse that carries only
// a batch is sent as a two-byte-or-so header followed by the batch buffer itself, and received
// with the batch aliasing the received message instead of a copy of it. The sender must not
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
			return batchOnly(m.Batch), nil
		}
	case *pb.ReadResponse:
		if !m.Eof && m.Error == nil && len(m.ProtoReflect().GetUnknown()) == 0 {
			return batchOnly(m.Batch), nil
		}
	}
	return c.fallback.Marshal(v)
}

// batchOnly encodes a message whose only field is bytes field 1 holding batch, referencing batch.
func batchOnly(batch []byte) mem.BufferSlice {
	if len(batch) == 0 {
		return nil // proto3 omits an empty bytes field: the empty message
	}
	hdr := protowire.AppendTag(make([]byte, 0, 11), 1, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(len(batch)))
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.SliceBuffer(batch)}
}

func (c batchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	var dst *[]byte
	switch m := v.(type) {
	case *pb.WriteRequest:
		dst = &m.Batch
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
	if num, typ, n := protowire.ConsumeTag(b); n > 0 && num == 1 && typ == protowire.BytesType {
		if batch, m := protowire.ConsumeBytes(b[n:]); m > 0 && n+m == len(b) {
			*dst = batch[:len(batch):len(batch)]
			return nil
		}
	}
	// Anything else (more fields, unknown fields, garbage) is the proto codec's business.
	return c.fallback.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, v)
}
