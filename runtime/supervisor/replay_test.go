package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// pickySink refuses, record by record, the values a multiple of 7 while refusing is set, and
// keeps the rest; one instance serves every run, so it outlives restarts and replays.
type pickySink struct {
	refusing atomic.Bool
	mu       sync.Mutex
	got      map[string]int
}

func (s *pickySink) Open(context.Context) error { return nil }
func (s *pickySink) Write(_ context.Context, recs []connector.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var failed []connector.RecordError
	for i, r := range recs {
		n, _ := strconv.Atoi(string(r.Value))
		if s.refusing.Load() && n%7 == 0 {
			failed = append(failed, connector.RecordError{Index: i, Err: errors.New("multiple of 7 refused")})
			continue
		}
		s.got[string(r.Value)]++
	}
	if failed != nil {
		return &connector.BatchError{Failed: failed}
	}
	return nil
}
func (s *pickySink) Close(context.Context) error { return nil }

func (s *pickySink) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

// Records a sink refused go to a file dead-letter sink; once the sink takes them, a replay of
// all delivers each once while the pipeline keeps following its source; a second replay of the
// same letters is refused, and a forced one delivers them again.
func TestReplayDeadLettersIntoARunningPipeline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in, dlq := filepath.Join(dir, "in.txt"), filepath.Join(dir, "dead.jsonl")
	var text strings.Builder
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(&text, "%d\n", i)
	}
	if err := os.WriteFile(in, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	sink := &pickySink{got: map[string]int{}}
	sink.refusing.Store(true)
	comps := append(file.Components(), connector.SinkComponent(connector.Spec{Name: "picky"},
		func(connector.Config, connector.Env) (connector.Sink, error) { return sink, nil }))
	cat, err := catalog.New(comps...)
	if err != nil {
		t.Fatal(err)
	}
	sup := newSupervisor(t, cat, supervisor.RestartPolicy{})
	p := &pipeline.Pipeline{Name: "nums",
		Source:     pipeline.Component{Type: "file", Config: connector.Config{"path": in, "follow": true}},
		Sinks:      []pipeline.Sink{{Name: "picky", Component: pipeline.Component{Type: "picky", Config: connector.Config{}}}},
		DeadLetter: &pipeline.Component{Type: "file", Config: connector.Config{"path": dlq}}}
	if problems := sup.Add(context.Background(), p); len(problems) > 0 {
		t.Fatal(problems)
	}
	if _, err := sup.ReplayDeadLetters(context.Background(), "nums", supervisor.ReplaySelection{All: true}); !errors.Is(err, supervisor.ErrNotRunning) {
		t.Fatalf("replay before Run: %v, want ErrNotRunning", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, supervisor.RunOptions{}) }()
	deadLetters := func() int {
		b, _ := os.ReadFile(dlq)
		return strings.Count(string(b), "\n")
	}
	waitUntil(t, "7 refused and 43 kept", func() bool { return deadLetters() == 7 && len(sink.counts()) == 43 })

	sink.refusing.Store(false)
	res, err := sup.ReplayDeadLetters(context.Background(), "nums", supervisor.ReplaySelection{All: true})
	if err != nil || res.Selected != 7 || res.Replayed != 7 || res.Delivered != 7 || res.DeadLettered != 0 || res.Error != "" {
		t.Fatalf("replay = %+v, %v", res, err)
	}
	got := sink.counts()
	for i := 1; i <= 50; i++ {
		if got[strconv.Itoa(i)] != 1 {
			t.Fatalf("record %d delivered %d times after the replay", i, got[strconv.Itoa(i)])
		}
	}
	if _, err := sup.ReplayDeadLetters(context.Background(), "nums", supervisor.ReplaySelection{Indexes: []int{2}}); !errors.Is(err, supervisor.ErrAlreadyReplayed) {
		t.Fatalf("second replay: %v, want ErrAlreadyReplayed", err)
	}
	if _, err := sup.ReplayDeadLetters(context.Background(), "nums", supervisor.ReplaySelection{Indexes: []int{7}}); !errors.Is(err, supervisor.ErrBadReplaySelection) {
		t.Fatalf("replay past the end: %v, want ErrBadReplaySelection", err)
	}
	res, err = sup.ReplayDeadLetters(context.Background(), "nums", supervisor.ReplaySelection{Indexes: []int{2}, Force: true})
	if err != nil || res.Replayed != 1 || sink.counts()["21"] != 2 {
		t.Fatalf("forced replay = %+v, %v; record 21 delivered %d times, want 2", res, err, sink.counts()["21"])
	}

	f, err := os.OpenFile(in, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "51")
	f.Close()
	waitUntil(t, "record 51 after the replays", func() bool { return sink.counts()["51"] == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
