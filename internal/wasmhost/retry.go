package wasmhost

import (
	"github.com/sluicehq/sluice/sdk/go/abi"

	"context"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// failure is why one guest call failed; it becomes the reject of a poison record.
type failure struct {
	code   uint16
	reason string
}

// A stage is broken, not its records, when (ABI.md section 10.3):
//   - no guest call of the batch has succeeded and its failed calls reach dryLimit, 2·(2+⌈log2 n⌉):
//     bisection descends depth-first into the first failed half, so a module that fails on every
//     call reaches the first record alone after 2 + ⌈log2 n⌉ calls and the limit after as many
//     again, while a batch with poison records has a successful call as soon as a segment
//     without poison runs (a run of poison records at the start of the batch costs about two
//     failed calls per record after the descent, so runs of about ⌈log2 n⌉/2 still isolate);
//   - brokenBatches batches in a row have ended without a successful call, and a call of the next
//     one fails before any succeeds (batches of one or two records cannot reach dryLimit); or
//   - the calls of one batch that overran their deadline exceed deadlineBudget. Traps and other
//     quick failures are not budgeted: bisection is bounded by 2n+1 calls whatever fails. A deadline
//     costs the timeout in wall time, so its count is bounded, generously enough to isolate 16
//     poison records that overrun their deadline in a batch.
//
// After a stage was found broken, the next failed call without a successful one before it in its
// batch reports the stage broken again; a successful call resets it.
const brokenBatches = 3

func levels(n int) int64 { return 2 + int64(bits.Len(uint(max(n, 1)-1))) }

func dryLimit(n int) int64       { return 2 * levels(n) }
func deadlineBudget(n int) int64 { return 16 * levels(n) }

// batchFailures is the failure accounting of one Process call, shared by its frames.
type batchFailures struct {
	succeeded atomic.Int64 // successful guest calls
	failed    atomic.Int64 // failed guest calls
	deadlines atomic.Int64 // calls that overran their deadline
	dry       int64        // dryLimit
	budget    int64        // deadlineBudget
	output    atomic.Int64 // bytes of the emitted records kept so far
	maxOutput int64
}

func newBatchFailures(n int, maxOutput int64) *batchFailures {
	return &batchFailures{dry: dryLimit(n), budget: deadlineBudget(n), maxOutput: maxOutput}
}

// batchOutputBytes bounds the key, value and header bytes of the records one Process call emits,
// over all its frames and calls (ABI.md section 11): the per-call bounds alone would let a guest
// that fails on frames of several records, so that bisection calls it record by record, build a
// batch result of n times the frame cap. It is the result frame cap, or the memory limit when
// larger, so that whatever one call may emit, one batch may too.
func batchOutputBytes(limit uint64) int64 { return int64(max(limit, abi.MaxResultBytes)) }

// takeOutput charges the records out.Emitted[start:] to the batch's output budget. Over the
// budget, it returns the failure that makes the call's result invalid (the caller removes it from
// out).
func (b *batchFailures) takeOutput(out *transform.Result, start int) *failure {
	var n int64
	for i := start; i < len(out.Emitted); i++ {
		r := &out.Emitted[i].Record
		n += int64(len(r.Key) + len(r.Value))
		for _, h := range r.Headers {
			n += int64(len(h.Key) + len(h.Value))
		}
	}
	if n == 0 {
		return nil
	}
	if total := b.output.Add(n); total > b.maxOutput {
		b.output.Add(-n)
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: the batch's emitted records would hold more than %d bytes", b.maxOutput)}
	}
	return nil
}

// endBatch updates the count of batches in a row without a successful call.
func (s *Stage) endBatch(b *batchFailures) {
	switch {
	case b.succeeded.Load() > 0:
		s.dryBatches.Store(0)
	case b.failed.Load() > 0:
		s.dryBatches.Add(1)
	}
}

// chain is the failure accounting of one frame's calls.
type chain struct {
	batch *batchFailures
}

func (s *Stage) processChunk(ctx context.Context, recs []connector.Record, base int, out *transform.Result, bf *batchFailures) error {
	c := &chain{batch: bf}
	f, err := s.runFrame(ctx, recs, base, out, c)
	if err != nil || f == nil {
		return err
	}
	s.log.Warn("wasm call failed; retrying the frame on a fresh instance", "records", len(recs), "reason", f.reason)
	if f, err = s.runFrame(ctx, recs, base, out, c); err != nil || f == nil {
		return err
	}
	s.log.Warn("wasm call failed twice; bisecting the frame to isolate poison records", "records", len(recs), "reason", f.reason)
	return s.bisect(ctx, recs, base, out, f, c)
}

// bisect isolates the records of a failed frame that fail alone. It descends depth-first: the
// first half, and the failed parts of it, before the second half (see brokenBatches), collecting
// each half's result apart so that out stays in input order.
func (s *Stage) bisect(ctx context.Context, recs []connector.Record, base int, out *transform.Result, f *failure, c *chain) error {
	if len(recs) == 1 {
		out.Actions = append(out.Actions, transform.Reject)
		out.Rejected = append(out.Rejected, transform.Rejected{Input: base, Code: f.code, Reason: f.reason})
		s.stats.poison.Add(1)
		return nil
	}
	mid := len(recs) / 2
	for _, h := range [2][2]int{{0, mid}, {mid, len(recs)}} {
		var part transform.Result
		hf, err := s.runFrame(ctx, recs[h[0]:h[1]], base+h[0], &part, c)
		if err != nil {
			return err
		}
		if hf != nil {
			if err := s.bisect(ctx, recs[h[0]:h[1]], base+h[0], &part, hf, c); err != nil {
				return err
			}
		}
		out.Actions = append(out.Actions, part.Actions...)
		out.Emitted = append(out.Emitted, part.Emitted...)
		out.Rejected = append(out.Rejected, part.Rejected...)
	}
	return nil
}

// runFrame runs one guest call on a pooled instance. It returns a failure when the guest failed
// (the instance has then been replaced) and an error when the call could not be made, ctx ended
// or the stage is broken (wrapping transform.ErrBroken).
func (s *Stage) runFrame(ctx context.Context, recs []connector.Record, base int, out *transform.Result, c *chain) (*failure, error) {
	in, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	f, err := in.runFrame(ctx, recs, base, out, c.batch)
	if f == nil && err == nil {
		s.stats.frames.Add(1)
		c.batch.succeeded.Add(1)
		s.release(in)
		return nil, nil
	}
	s.discard(in)
	if err != nil {
		return nil, err
	}
	if s.closed.Load() {
		// The call failed because Close (or Host.Close) closed the instance under it: not the
		// records' fault, so no bisection.
		return nil, fmt.Errorf("stage: %w", ErrClosed)
	}
	s.countFailure(f)
	b := c.batch
	failed := b.failed.Add(1)
	if f.code == CodeDeadline {
		if n := b.deadlines.Add(1); n > b.budget {
			return nil, s.broken(fmt.Errorf("%w: %d guest calls overran their deadline on one batch, over its budget of %d; a module should reject bad records, not fail on them (ABI.md section 14)", transform.ErrBroken, n, b.budget))
		}
	}
	if b.succeeded.Load() > 0 {
		return f, nil
	}
	if failed >= b.dry {
		return nil, s.broken(fmt.Errorf("%w: %d guest calls of one batch failed and none succeeded, the last with %q; the module fails whatever records it gets", transform.ErrBroken, failed, f.reason))
	}
	if n := s.dryBatches.Load(); n >= brokenBatches {
		return nil, s.broken(fmt.Errorf("%w: no guest call succeeded in the last %d batches nor in this one, the last failed with %q; the module fails whatever records it gets", transform.ErrBroken, n, f.reason))
	}
	return f, nil
}

func (s *Stage) broken(err error) error {
	s.stats.broken.Add(1)
	s.dryBatches.Store(brokenBatches) // the next failure before a success is broken again
	s.log.Error("wasm module is broken: stopping the batch instead of bisecting it further", "err", err)
	return err
}

func (s *Stage) countFailure(f *failure) {
	switch f.code {
	case CodeTrap:
		s.stats.traps.Add(1)
	case CodeDeadline:
		s.stats.timeouts.Add(1)
	case CodeMemory:
		s.stats.memory.Add(1)
	case CodeGuestError:
		s.stats.guestErrors.Add(1)
	case CodeInvalidResult:
		s.stats.invalid.Add(1)
	}
}

func (in *instance) runFrame(ctx context.Context, recs []connector.Record, base int, out *transform.Result, b *batchFailures) (*failure, error) {
	s := in.stage
	if err := in.enter(); err != nil {
		return nil, err
	}
	defer in.exit()
	defer s.glog.endCall(false)
	in.busy.Store(true)
	defer in.busy.Store(false)
	n := frameLen(recs)
	in.memBefore = in.mem.Size()
	in.stderrFirst = ""
	var cctx context.Context = in.envCtx
	if s.cfg.Mode == Strict {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(context.WithValue(ctx, callEnvKey{}, in), s.cfg.Timeout)
		defer cancel()
	} else {
		call := in.calls.Add(1)
		start := time.Now()
		in.started.Store(start.UnixNano())
		defer func() {
			in.started.Store(0)
			if d := time.Since(start); d > s.cfg.Timeout {
				s.noteOverrun(in, call, d)
			}
		}()
	}
	if err := in.reserve(cctx, n); err != nil {
		return in.classify(ctx, err)
	}
	view, _ := in.mem.Read(in.inPtr, uint32(n))
	encodeFrame(view, recs)
	in.stack[0] = uint64(uint32(n))
	err := in.process.CallWithStack(cctx, in.stack[:])
	if in.stdout.buf != nil || in.stderr.buf != nil {
		in.stdout.flush()
		in.stderr.flush()
	}
	if err != nil {
		return in.classify(ctx, err)
	}
	v := in.stack[0]
	if uint32(v>>32) == 0xFFFFFFFF {
		return in.classify(ctx, errGuest{code: int32(uint32(v)), msg: in.lastError(cctx)})
	}
	ptr, rlen := uint32(v>>32), uint32(v)
	if rlen > abi.MaxResultBytes {
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: %d bytes, at most %d", rlen, abi.MaxResultBytes)}, nil
	}
	res, ok := in.mem.Read(ptr, rlen)
	if !ok {
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: [%d,%d) outside guest memory", ptr, uint64(ptr)+uint64(rlen))}, nil
	}
	startA, startE, startR := len(out.Actions), len(out.Emitted), len(out.Rejected)
	// What one call may copy out: the per-call bound, and what is left of the batch's, so that a
	// result over either is refused before it is copied.
	maxCopy := min(int64(min(s.limit, abi.MaxResultBytes)), max(b.maxOutput-b.output.Load(), 0))
	if err := decodeResult(res, recs, base, s.m.meta.Ports, int(maxCopy), out); err != nil {
		return &failure{code: CodeInvalidResult, reason: err.Error()}, nil
	}
	if f := b.takeOutput(out, startE); f != nil {
		out.Actions, out.Emitted, out.Rejected = out.Actions[:startA], out.Emitted[:startE], out.Rejected[:startR]
		return f, nil
	}
	return nil, nil
}
