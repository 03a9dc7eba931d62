package engine_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// metaSource reads three records, then io.EOF; it notes whether the runtime asked it to leave
// out its metadata headers.
type metaSource struct {
	omitted atomic.Bool
	read    bool
}

func (s *metaSource) OmitMetadataHeaders()                             { s.omitted.Store(true) }
func (s *metaSource) Open(context.Context, []connector.Position) error { return nil }
func (s *metaSource) Ack(context.Context, []connector.Position) error  { return nil }
func (s *metaSource) Close(context.Context) error                      { return nil }
func (s *metaSource) Read(context.Context) ([]connector.Record, error) {
	if s.read {
		return nil, io.EOF
	}
	s.read = true
	recs := make([]connector.Record, 3)
	for i := range recs {
		recs[i] = connector.Record{Value: []byte("v"), Position: connector.Position{Partition: "p", Offset: int64(i)}}
	}
	return recs, nil
}

// blindSink is a memSink that says it reads no header.
type blindSink struct{ *memSink }

func (blindSink) IgnoresHeaders() bool { return true }

// The source leaves out its metadata headers only when nothing reads headers: no transform, and
// every sink, the dead-letter one too, ignoring them.
func TestMetadataHeadersOnlyWhenRead(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transform bool
		sinks     []connector.Sink
		dlq       connector.Sink
		omit      bool
	}{
		{name: "blind sinks", sinks: []connector.Sink{blindSink{&memSink{}}, blindSink{&memSink{}}}, omit: true},
		{name: "blind sink and dead letters", sinks: []connector.Sink{blindSink{&memSink{}}}, dlq: blindSink{&memSink{}}, omit: true},
		{name: "a sink that may read headers", sinks: []connector.Sink{blindSink{&memSink{}}, &memSink{}}},
		{name: "dead letters that may read headers", sinks: []connector.Sink{blindSink{&memSink{}}}, dlq: &memSink{}},
		{name: "a transform", transform: true, sinks: []connector.Sink{blindSink{&memSink{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &metaSource{}
			var sinks []pipeline.Sink
			for i, s := range tc.sinks {
				sinks = append(sinks, sink(string(rune('a'+i)), object(t, s)))
			}
			p := spec("meta", object(t, src), sinks...)
			if tc.dlq != nil {
				d := object(t, tc.dlq)
				p.DeadLetter = &d
			}
			if tc.transform {
				p.Transforms = []pipeline.Transform{{Name: "reject"}}
			}
			stages := func(context.Context, string, pipeline.Transform, *slog.Logger) (transform.Stage, error) {
				return rejectStage{}, nil
			}
			if err := runPipeline(t, context.Background(), p, openStore(t, filepath.Join(t.TempDir(), "cp")), stages); err != nil {
				t.Fatal(err)
			}
			if got := src.omitted.Load(); got != tc.omit {
				t.Fatalf("OmitMetadataHeaders called: %v, want %v", got, tc.omit)
			}
		})
	}
}
