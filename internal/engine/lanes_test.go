package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// slowStage takes longer on some batches than on others, drops the records whose number ends in
// 7 and emits those ending in 3 twice, and records how many batches it held at once. Its first
// call waits (at most a minute) for a second call to start, so that "several at once" does not
// depend on timing: with one batch at a time, the first call waits its minute out and the test
// fails.
type slowStage struct {
	now, most atomic.Int32
	calls     atomic.Int32
	second    chan struct{} // closed when a call starts while another runs
	once      sync.Once
}

func (*slowStage) Name() string                { return "slow" }
func (*slowStage) Close(context.Context) error { return nil }
func (s *slowStage) Process(_ context.Context, in []connector.Record) (transform.Result, error) {
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	if n > 1 {
		s.once.Do(func() { close(s.second) })
	}
	if s.calls.Add(1) == 1 {
		select {
		case <-s.second:
		case <-time.After(time.Minute):
		}
	}
	first, _ := strconv.Atoi(string(bytes.TrimPrefix(in[0].Value, []byte("line-"))))
	if first/100%3 == 0 {
		time.Sleep(3 * time.Millisecond) // every third batch is slow: later ones finish first
	}
	res := transform.Result{Actions: make([]transform.Action, len(in))}
	for i, r := range in {
		switch r.Value[len(r.Value)-1] {
		case '7':
			res.Actions[i] = transform.Drop
		case '3':
			res.Actions[i] = transform.Emit
			res.Emitted = append(res.Emitted, transform.Emitted{Input: i, Record: connector.Record{Value: r.Value}},
				transform.Emitted{Input: i, Record: connector.Record{Value: append(append([]byte(nil), r.Value...), '+')}})
		}
	}
	return res, nil
}

// Batches go through the transforms several at once (one per instance of the largest pool), and
// their results still reach the sinks in the order the batches were read.
func TestBatchesTransformedAtOnceKeepTheirOrder(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	var lines, want []string
	for i := range 20_000 {
		l := fmt.Sprintf("line-%d", i)
		lines = append(lines, l)
		switch i % 10 {
		case 7:
		case 3:
			want = append(want, l, l+"+")
		default:
			want = append(want, l)
		}
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &memSink{}
	p := spec("lanes", pipeline.Component{Type: "file", Config: connector.Config{"path": in}}, sink("out", newMemSink(t, out)))
	p.Batch.MaxRecords = 100
	p.Transforms = []pipeline.Transform{{Name: "slow", Limits: pipeline.Limits{Instances: 4}}}
	st := &slowStage{second: make(chan struct{})}
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(dir, "data")), DrainTimeout: 10 * time.Second,
		NewStage: func(context.Context, string, pipeline.Transform, *slog.Logger) (transform.Stage, error) {
			return st, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := out.got()
	if len(got) != len(want) {
		t.Fatalf("%d records in the sink, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d is %q, want %q: the batches came out of order", i, got[i], want[i])
		}
	}
	if m := st.most.Load(); m < 2 || m > 4 {
		t.Fatalf("the stage held at most %d batches at once, want 2 to 4 (its instances)", m)
	}
	t.Logf("%d batches of 100 records, at most %d at once, delivered in order", len(lines)/100, st.most.Load())
}
