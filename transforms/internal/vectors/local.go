//go:build !wasip1

package vectors

import "github.com/sluicehq/sluice/sdk/go/transform"

// Local runs the transform registered in the current test binary (package main of a Go
// transform) natively through the Go SDK's local runner, all inputs in one batch.
func Local(config []byte, values [][]byte) ([]Outcome, error) {
	in := make([]transform.LocalRecord, len(values))
	for i, v := range values {
		in[i] = transform.LocalRecord{Value: v, Timestamp: transform.NoTimestamp}
	}
	res, err := transform.RunLocal(config, in)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, len(res))
	for i, r := range res {
		o := Outcome{Action: actionName(r.Action), Code: r.Code, Reason: r.Reason}
		for _, e := range r.Emitted {
			o.Emitted = append(o.Emitted, Output{Port: e.Port, Value: e.Value})
		}
		out[i] = o
	}
	return out, nil
}
