package wasmhost_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

const statsWasm = "../../transforms/stats/stats.wasm"

func statsStage(t *testing.T, cfg wasmhost.StageConfig) *wasmhost.Stage {
	t.Helper()
	h, _ := newHost(t)
	m, err := h.Load(context.Background(), statsWasm, "")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Meta().IsAggregate() || m.Meta().ABI != "1.1" {
		t.Fatalf("meta %+v: want an aggregate module of ABI 1.1", m.Meta())
	}
	if cfg.Config == nil {
		cfg.Config = []byte(`{"field":"price"}`)
	}
	st, err := h.NewStage(context.Background(), m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return st
}

func aggPrices(prices ...string) ([]connector.Record, []abi.AggRecord) {
	var in []connector.Record
	var recs []abi.AggRecord
	for i, p := range prices {
		v := []byte(fmt.Sprintf(`{"commodity":"corn","price":%s}`, p))
		in = append(in, connector.Record{Value: v})
		recs = append(recs, abi.AggRecord{Slot: uint32(i % 2), Seq: uint64(i), TimeMs: int64(1000 + i), Value: v, KeyNull: true})
	}
	return in, recs
}

// The host's aggregate calls on the stats module: two slots folded in one frame, their states
// carried into a second call, then emitted.
func TestAggregateStepAndEmit(t *testing.T) {
	st := statsStage(t, wasmhost.StageConfig{})
	ctx := context.Background()
	slots := []abi.Slot{{Start: 0, End: 60000, Key: []byte("corn")}, {Start: 0, End: 60000, Key: []byte("wheat")}}
	in, recs := aggPrices("1", "10", "3", "20", `"x"`)
	res, err := st.Step(ctx, in, recs, slots)
	if err != nil {
		t.Fatal(err)
	}
	want := []transform.Action{transform.Drop, transform.Drop, transform.Drop, transform.Drop, transform.Reject}
	if fmt.Sprint(res.Actions) != fmt.Sprint(want) {
		t.Fatalf("actions %v, want %v", res.Actions, want)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Input != 4 {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	if len(res.States) != 2 {
		t.Fatalf("%d state changes, want 2", len(res.States))
	}
	for _, c := range res.States {
		slots[c.Slot].State = c.State
	}
	in2, recs2 := aggPrices("5")
	if res, err = st.Step(ctx, in2, recs2, slots); err != nil {
		t.Fatal(err)
	}
	for _, c := range res.States {
		slots[c.Slot].State = c.State
	}
	slots[0].Final, slots[1].Final = true, true
	er, err := st.Emit(ctx, slots)
	if err != nil {
		t.Fatal(err)
	}
	if len(er.Records) != 2 || len(er.Failed) != 0 {
		t.Fatalf("emit: %+v", er)
	}
	var corn struct {
		Key                   string
		Count                 int
		Min, Max, Mean, First float64
		WindowEnd             int64 `json:"window_end"`
	}
	if err := json.Unmarshal(er.Records[0].Record.Value, &corn); err != nil {
		t.Fatal(err)
	}
	// corn got 1, 3 and 5 (the inputs at even indexes of both frames).
	if corn.Key != "corn" || corn.Count != 3 || corn.Min != 1 || corn.Max != 5 || corn.Mean != 3 || corn.First != 1 || corn.WindowEnd != 60000 {
		t.Fatalf("corn: %s", er.Records[0].Record.Value)
	}
	if string(er.Records[0].Record.Key) != "corn" || er.Records[0].Record.Time.UnixMilli() != 59999 {
		t.Fatalf("corn record key %q time %v: want the slot's key and window_end-1", er.Records[0].Record.Key, er.Records[0].Record.Time)
	}
}

// A state over limits.state makes the record fail alone; when every record of a batch does, the
// stage is broken, with the reason.
func TestAggregateStateOverTheLimit(t *testing.T) {
	st := statsStage(t, wasmhost.StageConfig{StateBytes: 8})
	slots := []abi.Slot{{Start: 0, End: 60000, Key: []byte("corn")}, {Start: 0, End: 60000, Key: []byte("wheat")}}
	in, recs := aggPrices("1", "2", "3", "4", "5", "6", "7", "8", "9", "10")
	_, err := st.Step(context.Background(), in, recs, slots)
	if !errors.Is(err, transform.ErrBroken) || !strings.Contains(err.Error(), "over the state limit of 8 bytes (limits.state)") {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
	// Fewer records than the probes, on a stage not yet found broken: each is rejected with the
	// reason.
	st = statsStage(t, wasmhost.StageConfig{StateBytes: 8})
	in, recs = aggPrices("1", "2")
	res, err := st.Step(context.Background(), in, recs, slots)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rejected {
		if r.Code != abi.CodeInvalidResult || !strings.Contains(r.Reason, "over the state limit") {
			t.Fatalf("rejected %+v", r)
		}
	}
	if len(res.Rejected) != 2 {
		t.Fatalf("rejected %+v, want both", res.Rejected)
	}
}

// A state blob the module cannot read fails the records of its slot with the module's message.
func TestAggregateCorruptState(t *testing.T) {
	st := statsStage(t, wasmhost.StageConfig{})
	slots := []abi.Slot{{Start: 0, End: 60000, Key: []byte("corn"), State: []byte("garbage")}}
	in, recs := aggPrices("1")
	recs[0].Slot = 0
	res, err := st.Step(context.Background(), in, recs, slots)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 1 || !strings.Contains(res.Rejected[0].Reason, "state") {
		t.Fatalf("rejected %+v: want the record refused with the module's word on the state", res.Rejected)
	}
	t.Log(res.Rejected[0].Reason)
	if _, err := st.Emit(context.Background(), []abi.Slot{{Start: 0, End: 60000, Key: []byte("corn"), State: []byte("garbage"), Final: true}}); err != nil {
		t.Fatal(err)
	}
}

// A plain (1.0) transform is not an aggregate module, and an aggregate module cannot be
// processed as one.
func TestAggregateModuleIsNotAPlainTransform(t *testing.T) {
	st := statsStage(t, wasmhost.StageConfig{})
	_, err := st.Process(context.Background(), []connector.Record{{Value: []byte(`{}`)}})
	if err == nil {
		t.Fatal("Process on an aggregate module succeeded")
	}
	t.Log(err)
}
