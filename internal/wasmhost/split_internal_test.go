package wasmhost

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A batch is split for several instances only into frames of at least parallelMinWork of guest
// work by the stage's recent time per record: a fast guest's 1,024-record batch runs whole, a slow
// guest's is split across the instances.
func TestSplitOnlyFramesWorthIt(t *testing.T) {
	ctx := context.Background()
	h, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, "testdata/hostile.wasm", "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStage(ctx, m, StageConfig{Name: "t", Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	batch := make([]connector.Record, 1024)
	for i := range batch {
		batch[i] = connector.Record{Value: fmt.Appendf(nil, "v%d", i)}
	}
	for _, tc := range []struct {
		perRecord time.Duration
		frames    uint64
	}{
		{0, 2},                     // nothing measured yet: split at the record minimum
		{300 * time.Nanosecond, 1}, // 1,024 × 300 ns: under 2 × 0.5 ms, one frame
		{2 * time.Microsecond, 2},  // 512 × 2 µs per frame: worth a second instance
	} {
		s.perRecord.Store(int64(tc.perRecord))
		before := s.Stats().Frames
		if _, err := s.Process(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if got := s.Stats().Frames - before; got != tc.frames {
			t.Errorf("at %s per record: %d frames, want %d", tc.perRecord, got, tc.frames)
		}
	}
	if s.perRecord.Load() <= 0 {
		t.Error("the time per record was not measured")
	}
}
