package vectors

import (
	"context"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Stage passes values through st (a WASM stage, for the built modules) in batches of batch
// records, so that outcomes are checked across frame boundaries too, and returns one outcome per
// value.
func Stage(ctx context.Context, st transform.Stage, values [][]byte, batch int) ([]Outcome, error) {
	out := make([]Outcome, 0, len(values))
	for start := 0; start < len(values); start += batch {
		end := min(start+batch, len(values))
		recs := make([]connector.Record, end-start)
		for i := range recs {
			recs[i] = connector.Record{Value: values[start+i]}
		}
		res, err := st.Process(ctx, recs)
		if err != nil {
			return nil, err
		}
		out = append(out, FromResult(res, len(recs))...)
	}
	return out, nil
}

// FromResult turns a stage's result for n inputs into outcomes.
func FromResult(res transform.Result, n int) []Outcome {
	out := make([]Outcome, n)
	for o := range res.Outcomes() {
		v := &out[o.Input]
		v.Action = actionName(o.Action)
		for _, e := range o.Emitted {
			v.Emitted = append(v.Emitted, Output{Port: e.Port, Value: e.Record.Value})
		}
		if o.Action == transform.Reject {
			v.Code, v.Reason = o.Rejected.Code, o.Rejected.Reason
		}
	}
	return out
}
