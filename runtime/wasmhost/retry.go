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

// A stage is broken, not its records, when brokenStreak guest calls in a row have failed (counted
// along each frame's retries and bisection and carried from one batch to the next, so that small
// batches count too; a successful call resets the count), or when the failed calls of one batch exceed
// its budget (failureBudget). Bisection runs both halves of a failed frame before it descends, so
// a frame with one poison record has a successful call at every level, while a module that fails
// on every call reaches brokenStreak after: the frame, its retry, both halves, both quarters of
// the first half and both eighths of its first quarter. Isolating one poison record costs at most
// 2 + ⌈log2 n⌉ failed calls; the budget allows eight of them per batch.
const brokenStreak = 8

func failureBudget(n int) int64 {
	return 8 * (2 + int64(bits.Len(uint(max(n, 1)-1))))
}

// batchFailures counts the failed guest calls of one Process call.
type batchFailures struct {
	failed atomic.Int64
	budget int64
}

// chain is the failure accounting of one frame's calls: its retry and bisection run one after the
// other, so streak needs no lock.
type chain struct {
	streak int64 // failed calls since the last successful one
	batch  *batchFailures
}

func (s *Stage) processChunk(ctx context.Context, recs []connector.Record, base int, out *transform.Result, bf *batchFailures) error {
	c := &chain{streak: s.failStreak.Load(), batch: bf}
	defer func() { s.failStreak.Store(c.streak) }()
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

// bisect isolates the records of a failed frame that fail alone. It runs both halves before
// descending into the failed ones (see brokenStreak), collecting each half's result apart so that
// out stays in input order.
func (s *Stage) bisect(ctx context.Context, recs []connector.Record, base int, out *transform.Result, f *failure, c *chain) error {
	if len(recs) == 1 {
		out.Actions = append(out.Actions, transform.Reject)
		out.Rejected = append(out.Rejected, transform.Rejected{Input: base, Code: f.code, Reason: f.reason})
		s.stats.poison.Add(1)
		return nil
	}
	mid := len(recs) / 2
	halves := [2][2]int{{0, mid}, {mid, len(recs)}}
	var parts [2]transform.Result
	var fails [2]*failure
	for i, h := range halves {
		var err error
		if fails[i], err = s.runFrame(ctx, recs[h[0]:h[1]], base+h[0], &parts[i], c); err != nil {
			return err
		}
	}
	for i, h := range halves {
		if fails[i] != nil {
			if err := s.bisect(ctx, recs[h[0]:h[1]], base+h[0], &parts[i], fails[i], c); err != nil {
				return err
			}
		}
		out.Actions = append(out.Actions, parts[i].Actions...)
		out.Emitted = append(out.Emitted, parts[i].Emitted...)
		out.Rejected = append(out.Rejected, parts[i].Rejected...)
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
	f, err := in.runFrame(ctx, recs, base, out)
	if f == nil && err == nil {
		s.stats.frames.Add(1)
		c.streak = 0
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
	if c.streak++; c.streak >= brokenStreak {
		n := c.streak
		return nil, s.broken(fmt.Errorf("%w: %d guest calls in a row failed, the last with %q; the module fails whatever records it gets", transform.ErrBroken, n, f.reason))
	}
	if n := c.batch.failed.Add(1); n > c.batch.budget {
		return nil, s.broken(fmt.Errorf("%w: %d guest calls failed on one batch, over its budget of %d, the last with %q; a module should reject bad records, not fail on them (ABI.md section 14)", transform.ErrBroken, n, c.batch.budget, f.reason))
	}
	return f, nil
}

func (s *Stage) broken(err error) error {
	s.stats.broken.Add(1)
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

func (in *instance) runFrame(ctx context.Context, recs []connector.Record, base int, out *transform.Result) (*failure, error) {
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
	if err := decodeResult(res, recs, base, s.m.meta.Ports, int(min(s.limit, abi.MaxResultBytes)), out); err != nil {
		return &failure{code: CodeInvalidResult, reason: err.Error()}, nil
	}
	return nil, nil
}
