package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/plugin"
	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// recorder is a sink that keeps the values it wrote, fails a whole batch holding "fail" and
// refuses the records valued "bad".
type recorder struct {
	mu     sync.Mutex
	writes []string
}

func (r *recorder) Open(context.Context) error { return nil }
func (r *recorder) Write(_ context.Context, recs []connector.Record) error {
	var vals []string
	be := &connector.BatchError{}
	for i, rec := range recs {
		switch string(rec.Value) {
		case "fail":
			return errors.New("the system is down")
		case "bad":
			be.Failed = append(be.Failed, connector.RecordError{Index: i, Err: errors.New("refused")})
		}
		vals = append(vals, string(rec.Value))
	}
	r.mu.Lock()
	r.writes = append(r.writes, strings.Join(vals, "+"))
	r.mu.Unlock()
	if len(be.Failed) > 0 {
		return be
	}
	return nil
}
func (r *recorder) Close(context.Context) error { return nil }

func recorderServer(t *testing.T) (pb.ConnectorServer, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := plugin.NewServer(plugin.Plugin{Components: []connector.Component{connector.SinkComponent(connector.Spec{Name: "r"},
		func(connector.Config, connector.Env) (connector.Sink, error) { return rec, nil })}}, nil)
	resp, err := srv.Specs(context.Background(), &pb.SpecsRequest{})
	if err != nil || !strings.Contains(fmt.Sprint(resp.Features), protocol.FeatureOrderedWrites) {
		t.Fatalf("specs = %v, %v; want the %s feature", resp, err, protocol.FeatureOrderedWrites)
	}
	if resp, err := srv.OpenSink(context.Background(), &pb.OpenSinkRequest{Name: "r", ConfigJson: []byte("{}")}); err != nil || resp.Error != nil {
		t.Fatalf("open: %v %v", err, resp.GetError())
	}
	return srv, rec
}

func write(id uint64, chain bool, vals ...string) *pb.WriteRequest {
	recs := make([]connector.Record, len(vals))
	for i, v := range vals {
		recs[i].Value = []byte(v)
	}
	return &pb.WriteRequest{Batch: protocol.AppendBatch(nil, recs), WriteId: id, Chain: chain}
}

// Writes reach the connector in write_id order, one at a time, whatever order their calls
// arrive in; per-record failures come back with each write.
func TestOrderedWrites(t *testing.T) {
	srv, rec := recorderServer(t)
	reqs := []*pb.WriteRequest{write(1, false, "a", "b"), write(2, true, "c", "bad"), write(3, true, "e")}
	answers := make([]*pb.WriteResponse, len(reqs))
	var wg sync.WaitGroup
	for i := len(reqs) - 1; i >= 0; i-- { // the last write first
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := srv.Write(context.Background(), reqs[i])
			if err != nil {
				t.Error(err)
			}
			answers[i] = resp
		}()
	}
	wg.Wait()
	if got := strings.Join(rec.writes, " "); got != "a+b c+bad e" {
		t.Fatalf("connector wrote %q, want %q", got, "a+b c+bad e")
	}
	if be := protocol.BatchError(answers[1].Failed, 0); answers[1].Error != nil || len(be.Failed) != 1 || be.Failed[0].Index != 1 {
		t.Fatalf("write 2 answered %v; want record 1 failed", answers[1])
	}
	if answers[0].Error != nil || answers[2].Error != nil {
		t.Fatalf("answers %v", answers)
	}
	if resp, _ := srv.Write(context.Background(), write(2, false, "again")); resp.Error == nil {
		t.Fatal("a write_id already taken was written")
	}
}

// A chained write whose predecessor failed is not written, so no batch becomes durable after an
// earlier one that failed; an unchained write after it is.
func TestChainedWriteAfterFailure(t *testing.T) {
	srv, rec := recorderServer(t)
	ctx := context.Background()
	for _, c := range []struct {
		req     *pb.WriteRequest
		wantErr string
	}{
		{write(1, false, "a"), ""},
		{write(2, true, "fail"), "the system is down"},
		{write(3, true, "b"), "not written"},
		{write(4, true, "c"), "not written"},
		{write(5, false, "b"), ""},
		{write(6, true, "c"), ""},
	} {
		resp, err := srv.Write(ctx, c.req)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetError().GetMessage(); (c.wantErr == "") != (got == "") || !strings.Contains(got, c.wantErr) {
			t.Fatalf("write %d answered %q, want %q", c.req.WriteId, got, c.wantErr)
		}
	}
	if got := strings.Join(rec.writes, " "); got != "a b c" {
		t.Fatalf("connector wrote %q, want %q", got, "a b c")
	}
}
