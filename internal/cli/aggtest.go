package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/internal/aggregate"
	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// `sluice transform test` on an aggregate module (ABI.md section 13): the records go through the
// same host side as in a pipeline (keys, event time, windows, lateness), in memory; at the end of
// the input the open windows close, as at the end of a bounded source.
type aggTestFlags struct {
	key      string
	time     string
	window   string
	lateness time.Duration
	ttl      time.Duration
}

func (a *aggTestFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&a.key, "key", "", "aggregate modules: JSONPath of the key in the value ($.commodity), $ for the whole value; default the record key (none here)")
	fl.StringVar(&a.time, "time", "", "aggregate modules: JSONPath of the event time (epoch ms or RFC 3339); default processing time")
	fl.StringVar(&a.window, "window", "", "aggregate modules: tumbling:SIZE, hopping:SIZE/EVERY or session:GAP; default none (one slot per key)")
	fl.DurationVar(&a.lateness, "allowed-lateness", 0, "aggregate modules: how far the watermark stays behind the largest event time")
	fl.DurationVar(&a.ttl, "ttl", 0, "aggregate modules without a window: forget a key idle this long (event time)")
}

// testResult is what one call made: a plain stage's result, and an aggregate stage's window
// records and late records.
type testResult struct {
	transform.Result
	agg aggregate.Result
}

// write prints the window records to out and the late records (as rejects, code 0xFF07) to enc.
func (r *testResult) write(out *bufio.Writer, enc *json.Encoder, lines []int, emitted, rejected *int) error {
	for _, o := range r.agg.Out {
		*emitted++
		out.Write(o.Record.Value)
		out.WriteByte('\n')
	}
	for _, l := range r.agg.Letters {
		*rejected++
		line, value := 0, string(l.Record.Value)
		if l.Input >= 0 && l.Input < len(lines) {
			line = lines[l.Input]
		}
		if err := enc.Encode(rejectLine{Line: line, Value: value, Code: l.Code, Reason: l.Reason}); err != nil {
			return fmt.Errorf("--rejects: %w", err)
		}
	}
	return nil
}

type processFunc func(ctx context.Context, batch []connector.Record) (*testResult, error)

// processor returns how to run the module on a batch and, for an aggregate module, what to do
// at the end of the input.
func (a *aggTestFlags) processor(m *wasmhost.Module, stage *wasmhost.Stage) (processFunc, func(context.Context) (*testResult, error), error) {
	if !m.Meta().IsAggregate() {
		if a.key != "" || a.time != "" || a.window != "" || a.lateness != 0 || a.ttl != 0 {
			return nil, nil, fmt.Errorf("--key, --time, --window, --allowed-lateness and --ttl are for aggregate modules; %s is a plain transform", m.Meta().Name)
		}
		return func(ctx context.Context, batch []connector.Record) (*testResult, error) {
			res, err := stage.Process(ctx, batch)
			return &testResult{Result: res}, err
		}, nil, nil
	}
	var cfg aggregate.Config
	var err error
	switch a.key {
	case "":
	case "$":
		cfg.WholeValue = true
	default:
		if cfg.Key, err = aggregate.ParsePath(a.key); err != nil {
			return nil, nil, fmt.Errorf("--key: %w", err)
		}
	}
	if a.time != "" {
		if cfg.Time, err = aggregate.ParsePath(a.time); err != nil {
			return nil, nil, fmt.Errorf("--time: %w", err)
		}
	}
	if cfg.Window, err = aggregate.ParseWindow(a.window); err != nil {
		return nil, nil, fmt.Errorf("--window: %w", err)
	}
	if a.lateness < 0 || a.ttl < 0 {
		return nil, nil, fmt.Errorf("--allowed-lateness and --ttl must not be negative")
	}
	cfg.Lateness, cfg.TTL = a.lateness, a.ttl
	op, err := aggregate.New(cfg, stage, aggregate.Store{}, "test", m.Meta().Name, aggregate.DiscardMetrics())
	if err != nil {
		return nil, nil, err
	}
	var batch uint64
	run := func(f func(uint64) (aggregate.Result, error)) (*testResult, error) {
		batch++
		res, err := f(batch)
		if err != nil {
			return nil, err
		}
		for i := range res.Letters {
			if res.Letters[i].Input >= 0 {
				res.Letters[i].Record = connector.Record{}
			}
		}
		return &testResult{Result: res.Result, agg: res}, nil
	}
	process := func(ctx context.Context, recs []connector.Record) (*testResult, error) {
		r, err := run(func(id uint64) (aggregate.Result, error) { return op.Process(ctx, id, recs) })
		if err == nil {
			for i := range r.agg.Letters {
				if l := &r.agg.Letters[i]; l.Input >= 0 {
					l.Record = recs[l.Input]
				}
			}
		}
		return r, err
	}
	finish := func(ctx context.Context) (*testResult, error) {
		return run(func(id uint64) (aggregate.Result, error) { return op.Flush(ctx, id) })
	}
	return process, finish, nil
}
