package wasmhost

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A step frame split by slot over two instances gives exactly what the frame run whole gives:
// the same actions, rejections and states, call after call, and the same records when the slots
// are emitted; a shard that fails (a slot whose state the module cannot read) makes the frame
// run whole, where the failing slot's records alone are rejected.
func TestAggregateShardedStepEqualsWhole(t *testing.T) {
	ctx := context.Background()
	h, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, "../../transforms/stats/stats.wasm", "")
	if err != nil {
		t.Fatal(err)
	}
	stage := func(instances int) *Stage {
		s, err := h.NewStage(ctx, m, StageConfig{Name: fmt.Sprint("stats", instances), Instances: instances, Config: []byte(`{"field":"price"}`)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(ctx) })
		return s
	}
	whole, sharded := stage(1), stage(2)
	sharded.aggShardMin = 2

	for _, corrupt := range []bool{false, true} {
		t.Run(fmt.Sprint("corrupt=", corrupt), func(t *testing.T) {
			const nslots = 37
			slots := func() []abi.Slot {
				ss := make([]abi.Slot, nslots)
				for i := range ss {
					ss[i] = abi.Slot{Start: 0, End: 60000, Key: []byte(fmt.Sprintf("k%02d", i))}
				}
				if corrupt {
					ss[5].State = []byte("garbage")
				}
				return ss
			}
			ws, ss := slots(), slots()
			for call := 0; call < 3; call++ {
				var in []connector.Record
				var recs []abi.AggRecord
				for i := 0; i < 300; i++ {
					price := fmt.Sprintf("%d.%02d", 10+(i*7+call)%90, (i*13)%100)
					if i%41 == 3 {
						price = `"x"` // the module rejects it
					}
					v := []byte(fmt.Sprintf(`{"price":%s}`, price))
					in = append(in, connector.Record{Value: v})
					recs = append(recs, abi.AggRecord{Slot: uint32((i*i + call) % nslots), Seq: uint64(i), TimeMs: int64(1000 + i), Value: v, KeyNull: true})
				}
				framesBefore := sharded.stats.frames.Load()
				wr, err := whole.Step(ctx, in, recs, ws)
				if err != nil {
					t.Fatal(err)
				}
				sr, err := sharded.Step(ctx, in, recs, ss)
				if err != nil {
					t.Fatal(err)
				}
				if !corrupt && sharded.stats.frames.Load()-framesBefore != 2 {
					t.Fatalf("call %d: %d successful guest calls, want the frame's two shards", call, sharded.stats.frames.Load()-framesBefore)
				}
				if !reflect.DeepEqual(wr.Actions, sr.Actions) || !reflect.DeepEqual(wr.Rejected, sr.Rejected) || !reflect.DeepEqual(wr.Emitted, sr.Emitted) {
					t.Fatalf("call %d: sharded actions %v rejected %+v, whole %v %+v", call, sr.Actions, sr.Rejected, wr.Actions, wr.Rejected)
				}
				if corrupt && (len(wr.Rejected) == 0 || wr.Rejected[0].Code == 0 && wr.Rejected[0].Reason == "") {
					t.Fatalf("call %d: nothing rejected for the corrupt slot", call)
				}
				if len(wr.States) != len(sr.States) {
					t.Fatalf("call %d: %d state changes sharded, %d whole", call, len(sr.States), len(wr.States))
				}
				for k := range wr.States {
					w, s := wr.States[k], sr.States[k]
					if w.Slot != s.Slot || w.Delete != s.Delete || !bytes.Equal(w.State, s.State) {
						t.Fatalf("call %d: state change %d: sharded %+v, whole %+v", call, k, s, w)
					}
					ws[w.Slot].State, ss[s.Slot].State = w.State, s.State
				}
			}
			emit := func(st *Stage, slots []abi.Slot) transform.EmitResult {
				var keep []abi.Slot
				for _, s := range slots {
					if s.State != nil && string(s.State) != "garbage" {
						s.Final = true
						keep = append(keep, s)
					}
				}
				er, err := st.Emit(ctx, keep)
				if err != nil {
					t.Fatal(err)
				}
				return er
			}
			we, se := emit(whole, ws), emit(sharded, ss)
			if len(we.Records) == 0 || len(we.Records) != len(se.Records) {
				t.Fatalf("emitted %d records sharded, %d whole", len(se.Records), len(we.Records))
			}
			for k := range we.Records {
				if !bytes.Equal(we.Records[k].Record.Value, se.Records[k].Record.Value) {
					t.Fatalf("record %d: sharded %s, whole %s", k, se.Records[k].Record.Value, we.Records[k].Record.Value)
				}
			}
		})
	}
}
