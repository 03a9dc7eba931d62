package main

import (
	"encoding/json"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/aggregate"
)

// TestDropsExactlyTheDuplicates sends random keys in frames of random sizes: the first record of
// each key passes, every later one is dropped, including a second record of a key in the same
// frame.
func TestDropsExactlyTheDuplicates(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	var h aggregate.Local
	first := map[string]bool{}
	passed := 0
	var frame []aggregate.LocalRecord
	var want []abi.Action
	flush := func() {
		out, err := h.Step(frame)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Action != want[i] || len(o.Emitted) != 0 {
				t.Fatalf("record %s: %v, want %v", frame[i].Slot.Key, o.Action, want[i])
			}
			if o.Action == abi.Pass {
				passed++
			}
		}
		frame, want = frame[:0], want[:0]
	}
	for i := 0; i < 3000; i++ {
		key := "order-" + strconv.Itoa(rng.Intn(700))
		frame = append(frame, aggregate.LocalRecord{Slot: aggregate.LocalSlot{Key: key}, Key: []byte(key), Value: []byte(`{"id":` + strconv.Itoa(i) + `}`)})
		if first[key] {
			want = append(want, abi.Drop)
		} else {
			first[key] = true
			want = append(want, abi.Pass)
		}
		if rng.Intn(100) == 0 {
			flush()
		}
	}
	flush()
	if passed != len(first) || h.Len() != len(first) {
		t.Fatalf("%d passed, %d slots held, %d distinct keys", passed, h.Len(), len(first))
	}
	for k := range first {
		if s := h.State(aggregate.LocalSlot{Key: k}); len(s) != 1 || s[0] != 1 {
			t.Fatalf("state of %s: %v", k, s)
		}
	}
}

// TestOneFrame: two records of one key in one frame: the first passes, the second drops; a slot
// whose state the host forgot (ttl) passes again.
func TestOneFrame(t *testing.T) {
	a := aggregate.LocalSlot{Key: "a"}
	slots := []abi.Slot{{Start: abi.NoWindowStart, End: abi.NoWindowEnd, Key: []byte("a")}, {Start: abi.NoWindowStart, End: abi.NoWindowEnd, Key: []byte("b"), State: []byte{1}}}
	recs := []abi.AggRecord{{Slot: 0, Value: []byte("x")}, {Slot: 1, Value: []byte("y")}, {Slot: 0, Seq: 2, Value: []byte("x")}}
	res, err := aggregate.RunStep(nil, slots, recs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcomes[0].Action != abi.Pass || res.Outcomes[1].Action != abi.Drop || res.Outcomes[2].Action != abi.Drop {
		t.Fatalf("outcomes %+v", res.Outcomes)
	}
	// One StateOut: the new slot a; b's state did not change.
	if len(res.States) != 1 || res.States[0].Slot != 0 || string(res.States[0].State) != "\x01" {
		t.Fatalf("states %+v", res.States)
	}

	var h aggregate.Local
	for i, want := range []abi.Action{abi.Pass, abi.Drop} {
		out, err := h.Step([]aggregate.LocalRecord{{Slot: a, Value: []byte("v")}})
		if err != nil || out[0].Action != want {
			t.Fatalf("step %d: %+v %v", i, out, err)
		}
	}
	if em, err := h.Emit(true, a); err != nil || len(em) != 0 { // the host forgets the slot
		t.Fatalf("emit: %+v %v", em, err)
	}
	if out, err := h.Step([]aggregate.LocalRecord{{Slot: a, Value: []byte("v")}}); err != nil || out[0].Action != abi.Pass {
		t.Fatalf("after the slot expired: %+v %v", out, err)
	}
	if m, err := aggregate.RunMerge(nil, []abi.Slot{{Key: []byte("a"), State: []byte{1}, Other: []byte{1}}}); err != nil ||
		len(m.States) != 1 || string(m.States[0].State) != "\x01" {
		t.Fatalf("merge: %+v %v", m, err)
	}
}

func TestConfig(t *testing.T) {
	h := aggregate.Local{Config: []byte(`{"ttl":"1h"}`)}
	if _, err := h.Step([]aggregate.LocalRecord{{Slot: aggregate.LocalSlot{Key: "a"}}}); err == nil || !strings.Contains(err.Error(), "stage's ttl") {
		t.Fatalf("config with a key: %v", err)
	}
	var meta map[string]any
	if err := json.Unmarshal(aggregate.MetaJSON(), &meta); err != nil || meta["name"] != "dedupe" || meta["state_version"] != 1.0 {
		t.Fatalf("meta %s", aggregate.MetaJSON())
	}
}
