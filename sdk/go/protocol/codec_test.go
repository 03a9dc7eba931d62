package protocol

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// The batch codec must produce exactly what the proto codec reads and read exactly what it
// writes, whichever path a message takes.
func TestCodecMatchesProto(t *testing.T) {
	std := encoding.GetCodecV2(grpcproto.Name)
	fast := Codec()
	big := bytes.Repeat([]byte("record"), 50000)
	for _, c := range []struct {
		name string
		msg  proto.Message
		out  func() proto.Message
	}{
		{"write batch", &pb.WriteRequest{Batch: big}, func() proto.Message { return &pb.WriteRequest{} }},
		{"write empty", &pb.WriteRequest{}, func() proto.Message { return &pb.WriteRequest{} }},
		{"write ordered", &pb.WriteRequest{Batch: big, WriteId: 1 << 40, Chain: true}, func() proto.Message { return &pb.WriteRequest{} }},
		{"write ordered empty", &pb.WriteRequest{WriteId: 7}, func() proto.Message { return &pb.WriteRequest{} }},
		{"read batch", &pb.ReadResponse{Batch: []byte{1, 2, 3}}, func() proto.Message { return &pb.ReadResponse{} }},
		{"read eof", &pb.ReadResponse{Eof: true}, func() proto.Message { return &pb.ReadResponse{} }},
		{"read error", &pb.ReadResponse{Batch: []byte{9}, Error: &pb.Error{Kind: pb.ErrorKind_ERROR_KIND_PERMANENT, Message: "boom"}}, func() proto.Message { return &pb.ReadResponse{} }},
		{"other message", &pb.ReadRequest{MaxRecords: 5, Seq: 7}, func() proto.Message { return &pb.ReadRequest{} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, dir := range []struct {
				name     string
				enc, dec encoding.CodecV2
			}{{"fast to proto", fast, std}, {"proto to fast", std, fast}, {"fast to fast", fast, fast}} {
				data, err := dir.enc.Marshal(c.msg)
				if err != nil {
					t.Fatalf("%s: marshal: %v", dir.name, err)
				}
				if want, _ := proto.Marshal(c.msg); !bytes.Equal(data.Materialize(), want) {
					t.Fatalf("%s: encoding differs from proto.Marshal", dir.name)
				}
				got := c.out()
				if err := dir.dec.Unmarshal(data, got); err != nil {
					t.Fatalf("%s: unmarshal: %v", dir.name, err)
				}
				if !proto.Equal(got, c.msg) {
					t.Fatalf("%s: got %v, want %v", dir.name, got, c.msg)
				}
			}
		})
	}
}

// A received batch must not alias gRPC's buffers, which are reused after Unmarshal.
func TestCodecBatchOwnsMemory(t *testing.T) {
	data, err := Codec().Marshal(&pb.WriteRequest{Batch: []byte("abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	raw := data.Materialize()
	var m pb.WriteRequest
	if err := Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &m); err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		raw[i] = 0
	}
	if string(m.Batch) != "abcdef" {
		t.Fatalf("batch changed with the receive buffer: %q", m.Batch)
	}
}

func TestCodecRejectsGarbage(t *testing.T) {
	var m pb.WriteRequest
	if err := Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x05, 1})}, &m); err == nil {
		t.Fatal("a truncated message was accepted")
	}
}

// A WriteRequest's batch that the receiver released is received into again; one it did not
// release is never overwritten.
func TestCodecReleasedBatchReused(t *testing.T) {
	recvBufs = bufRecycler{} // other tests leave batches unreleased
	recv := func(fill byte) []byte {
		t.Helper()
		data, err := Codec().Marshal(&pb.WriteRequest{Batch: bytes.Repeat([]byte{fill}, 200<<10), WriteId: 1})
		if err != nil {
			t.Fatal(err)
		}
		var m pb.WriteRequest
		if err := Codec().Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		return m.Batch
	}
	a := recv('a')
	b := recv('b')
	if &a[0] == &b[0] || a[0] != 'a' || a[len(a)-1] != 'a' {
		t.Fatal("an unreleased batch was received into")
	}
	ReleaseBatch(a)
	ReleaseBatch(a) // twice: nothing
	c := recv('c')
	if &c[0] != &a[0] {
		t.Fatal("a released batch's memory was not reused")
	}
	if d := recv('d'); &d[0] == &a[0] || c[0] != 'c' || b[0] != 'b' {
		t.Fatal("a batch in use was received into")
	}
	ReleaseBatch([]byte("not a batch")) // nothing
}
