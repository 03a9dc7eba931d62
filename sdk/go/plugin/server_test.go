package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/plugin"
	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// batches is a source returning fixed batches of 100 records of 36 bytes each, then io.EOF.
type batches struct {
	n, next  int
	closed   int
	failOpen bool
}

func (b *batches) Open(context.Context, []connector.Position) error {
	if b.failOpen {
		return errors.New("cannot open")
	}
	return nil
}

func (b *batches) Read(ctx context.Context) ([]connector.Record, error) {
	if b.next >= b.n {
		return nil, io.EOF
	}
	out := make([]connector.Record, 100)
	for i := range out {
		out[i] = connector.Record{Value: fmt.Appendf(nil, "%04d", b.next), Position: connector.Position{Offset: int64(b.next)}}
		b.next++
	}
	return out, nil
}

func (b *batches) Ack(context.Context, []connector.Position) error { return nil }
func (b *batches) Close(context.Context) error                     { b.closed++; return nil }

func newServer(t *testing.T, src *batches) pb.ConnectorServer {
	t.Helper()
	srv := plugin.NewServer(plugin.Plugin{Components: []connector.Component{connector.SourceComponent(
		connector.Spec{Name: "b"},
		func(connector.Config, connector.Env) (connector.Source, error) { return src, nil },
	)}}, nil)
	resp, err := srv.OpenSource(context.Background(), &pb.OpenSourceRequest{Name: "b", ConfigJson: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil && !src.failOpen {
		t.Fatalf("open: %v", resp.Error)
	}
	return srv
}

func read(t *testing.T, srv pb.ConnectorServer, req *pb.ReadRequest) ([]connector.Record, *pb.ReadResponse) {
	t.Helper()
	if req.MaxWaitMs == 0 {
		req.MaxWaitMs = 5000
	}
	resp, err := srv.Read(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := protocol.DecodeBatch(resp.Batch)
	if err != nil {
		t.Fatal(err)
	}
	return recs, resp
}

func TestReadRespectsCredits(t *testing.T) {
	size := int64((&connector.Record{Value: []byte("0000")}).Size())
	tests := []struct {
		name     string
		records  int32
		bytes    int64
		wantSize []int
	}{
		{"records", 30, 1 << 20, []int{30, 30, 30, 10, 30}},
		{"bytes", 1000, 3*size + 1, []int{3, 3, 3}},
		{"one record always", 1000, 1, []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, &batches{n: 1000})
			for i, want := range tt.wantSize {
				recs, _ := read(t, srv, &pb.ReadRequest{MaxRecords: tt.records, MaxBytes: tt.bytes, Seq: uint64(i)})
				if len(recs) != want {
					t.Fatalf("answer %d has %d records, want %d", i, len(recs), want)
				}
			}
		})
	}
}

func TestReadResendsUnreceivedBatch(t *testing.T) {
	srv := newServer(t, &batches{n: 300})
	first, _ := read(t, srv, &pb.ReadRequest{MaxRecords: 50, Seq: 0})
	again, _ := read(t, srv, &pb.ReadRequest{MaxRecords: 50, Seq: 0})
	if len(again) != 50 || string(again[0].Value) != string(first[0].Value) {
		t.Fatalf("resent batch starts at %s, want %s", again[0].Value, first[0].Value)
	}
	next, _ := read(t, srv, &pb.ReadRequest{MaxRecords: 50, Seq: 1})
	if string(next[0].Value) != "0050" {
		t.Fatalf("next batch starts at %s, want 0050", next[0].Value)
	}
	if _, resp := read(t, srv, &pb.ReadRequest{MaxRecords: 50, Seq: 7}); resp.Error == nil {
		t.Fatal("a seq from the future was accepted")
	}
	seen := 100
	for seq := uint64(2); ; seq++ {
		recs, resp := read(t, srv, &pb.ReadRequest{MaxRecords: 50, Seq: seq})
		if resp.Eof {
			break
		}
		seen += len(recs)
	}
	if seen != 300 {
		t.Fatalf("read %d records, want 300", seen)
	}
}

func TestCloseAfterFailedOpen(t *testing.T) {
	src := &batches{failOpen: true}
	srv := newServer(t, src)
	for range 2 {
		if _, err := srv.Close(context.Background(), &pb.CloseRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if src.closed == 0 {
		t.Fatal("Close did not reach the source after a failed Open")
	}
}

type failing struct{}

func (failing) Open(context.Context) error { return nil }
func (failing) Write(_ context.Context, recs []connector.Record) error {
	be := &connector.BatchError{}
	for i, r := range recs {
		if string(r.Value) == "bad" {
			be.Failed = append(be.Failed, connector.RecordError{Index: i, Err: errors.New("refused")})
		}
	}
	if len(be.Failed) > 0 {
		return be
	}
	return nil
}
func (failing) Close(context.Context) error { return nil }

func TestWriteMapsBatchError(t *testing.T) {
	srv := plugin.NewServer(plugin.Plugin{Components: []connector.Component{connector.SinkComponent(connector.Spec{Name: "f"},
		func(connector.Config, connector.Env) (connector.Sink, error) { return failing{}, nil })}}, nil)
	ctx := context.Background()
	if resp, err := srv.OpenSink(ctx, &pb.OpenSinkRequest{Name: "f", ConfigJson: []byte("{}")}); err != nil || resp.Error != nil {
		t.Fatalf("open: %v %v", err, resp.GetError())
	}
	recs := []connector.Record{{Value: []byte("ok")}, {Value: []byte("bad")}, {Value: []byte("ok")}, {Value: []byte("bad")}}
	resp, err := srv.Write(ctx, &pb.WriteRequest{Batch: protocol.AppendBatch(nil, recs)})
	if err != nil {
		t.Fatal(err)
	}
	be := protocol.BatchError(resp.Failed, 10)
	if len(be.Failed) != 2 || be.Failed[0].Index != 11 || be.Failed[1].Index != 13 || be.Failed[0].Err.Error() != "refused" {
		t.Fatalf("failed = %+v", be.Failed)
	}
	resp, err = srv.Write(ctx, &pb.WriteRequest{Batch: []byte{0xff}})
	if err != nil || resp.Error == nil {
		t.Fatalf("a malformed batch was accepted: %v %v", err, resp)
	}
}

func TestOpenUnknownConnector(t *testing.T) {
	srv := plugin.NewServer(plugin.Plugin{}, nil)
	resp, err := srv.OpenSource(context.Background(), &pb.OpenSourceRequest{Name: "nope"})
	if err != nil || resp.Error == nil {
		t.Fatalf("open of an unknown source = %v, %v", resp, err)
	}
}

func TestSpecsRefusesBadComponents(t *testing.T) {
	src := func(connector.Config, connector.Env) (connector.Source, error) { return nil, nil }
	for name, cs := range map[string][]connector.Component{
		"twice":     {connector.SourceComponent(connector.Spec{Name: "a"}, src), connector.SourceComponent(connector.Spec{Name: "a"}, src)},
		"no kind":   {{Spec: connector.Spec{Name: "a"}, NewSource: src}},
		"no name":   {connector.SourceComponent(connector.Spec{}, src)},
		"no source": {{Spec: connector.Spec{Name: "a", Kind: connector.KindSource}}},
	} {
		if _, err := plugin.NewServer(plugin.Plugin{Components: cs}, nil).Specs(context.Background(), &pb.SpecsRequest{}); err == nil {
			t.Errorf("%s: specs accepted", name)
		}
	}
	ok := []connector.Component{connector.SourceComponent(connector.Spec{Name: "a"}, src), connector.SinkComponent(connector.Spec{Name: "a"},
		func(connector.Config, connector.Env) (connector.Sink, error) { return nil, nil })}
	resp, err := plugin.NewServer(plugin.Plugin{Components: ok}, nil).Specs(context.Background(), &pb.SpecsRequest{})
	if err != nil || len(resp.Specs) != 2 || resp.Specs[0].Kind != "source" || resp.Specs[1].Kind != "sink" {
		t.Fatalf("specs = %v, %v; want a source and a sink named a", resp, err)
	}
	// A server that Serve did not put on a data connection does not claim one: the host would
	// wait on a connection nobody serves.
	if got := fmt.Sprint(resp.Features); got != "["+protocol.FeatureOrderedWrites+"]" {
		t.Fatalf("features = %s; want only %s", got, protocol.FeatureOrderedWrites)
	}
}
