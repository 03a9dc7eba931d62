package engine

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A panic in a connector or a transform stage is a bug in it. The engine turns it into a
// permanent error of the pipeline that called it (the stack goes to the log), so one pipeline's
// bug never takes down the process and the other pipelines with it. Every call the engine makes
// into a component goes through read, write or guard.

// read calls the source's Read, recovering a panic.
func (p *Pipeline) read(ctx context.Context) (recs []connector.Record, err error) {
	defer p.recovered(&err, "source", "read")
	return p.source.Read(ctx)
}

// write calls a sink's Write, recovering a panic.
func (p *Pipeline) write(ctx context.Context, s connector.Sink, name string, recs []connector.Record) (err error) {
	defer p.recovered(&err, name, "write")
	return s.Write(ctx, recs)
}

// writeTx calls a transactional sink's WriteTx, recovering a panic.
func (p *Pipeline) writeTx(ctx context.Context, s connector.TransactionalSink, name string, recs []connector.Record, pos []connector.Position) (err error) {
	defer p.recovered(&err, name, "write")
	return s.WriteTx(ctx, recs, pos)
}

// guard calls f, recovering a panic; component and op name the call in the error and the log.
func (p *Pipeline) guard(component, op string, f func() error) (err error) {
	defer p.recovered(&err, component, op)
	return f()
}

// recovered, deferred, replaces *err with a permanent error when the call panicked.
func (p *Pipeline) recovered(err *error, component, op string) {
	if x := recover(); x != nil {
		p.log.Error("connector panicked", "component", component, "op", op, "panic", fmt.Sprint(x), "stack", string(debug.Stack()))
		*err = fmt.Errorf("panic: %v: %w", x, connector.ErrPermanent)
	}
}
