package iceberg

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestMergePositions(t *testing.T) {
	p := func(part string, off int64) connector.Position {
		return connector.Position{Partition: part, Offset: off}
	}
	stored := map[string]connector.Position{"a": p("a", 10), "b": p("b", 20), "c": p("c", 30)}
	for _, tc := range []struct {
		name  string
		given []connector.Position
		want  map[string]int64
		moved bool
	}{
		{"forward, and a new partition", []connector.Position{p("a", 15), p("d", 1)}, map[string]int64{"a": 15, "b": 20, "c": 30, "d": 1}, true},
		{"behind and equal move nothing", []connector.Position{p("a", 5), p("b", 20)}, map[string]int64{"a": 10, "b": 20, "c": 30}, false},
		{"none given", nil, map[string]int64{"a": 10, "b": 20, "c": 30}, false},
		{"one behind, one forward", []connector.Position{p("a", 9), p("c", 31)}, map[string]int64{"a": 10, "b": 20, "c": 31}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, moved := mergePositions(stored, tc.given)
			if moved != tc.moved || len(next) != len(tc.want) {
				t.Fatalf("mergePositions = %v, moved %v; want %v, moved %v", next, moved, tc.want, tc.moved)
			}
			for k, off := range tc.want {
				if next[k].Offset != off || next[k].Partition != k {
					t.Fatalf("mergePositions = %v; want %v", next, tc.want)
				}
			}
			if stored["a"].Offset != 10 || len(stored) != 3 {
				t.Fatalf("mergePositions changed the stored positions: %v", stored)
			}
		})
	}
}

func TestConflictBackoff(t *testing.T) {
	for attempt, want := range []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond} {
		for range 50 {
			if d := conflictBackoff(attempt); d < want/2 || d > want {
				t.Fatalf("conflictBackoff(%d) = %v, want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	for _, attempt := range []int{8, 20, 1000} {
		if d := conflictBackoff(attempt); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("conflictBackoff(%d) = %v, want within [0.5s, 1s]", attempt, d)
		}
	}
}
