package wasmhost

import (
	"github.com/sluicehq/sluice/sdk/go/abi"

	"context"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// failure is why one guest call failed; it becomes the reject of a poison record.
type failure struct {
	code   uint16
	reason string
}

// A stage is broken, not its records, when (ABI.md section 10.3):
//   - probing says so: when a call of one record fails and no guest call of the batch has
//     succeeded, the stage calls the guest on single records spread evenly over the whole batch,
//     at indexes ⌊n·k/8⌋ for k = 0..7 (probes of them, the record that just failed excepted). When
//     the batch has at least 8 records and all 8 fail alone, the module is broken. When one
//     succeeds, the batch has had a successful call and is bisected to the end (at most 2n+1
//     calls, traps and errors not budgeted). Bisection descends depth-first into the first failed
//     half, so a module that fails every call reaches a single record after 2 + ⌈log2 n⌉ calls
//     and is found broken 7 probes later (19 calls for 1,024 records). The answer depends on the
//     records only, not on the number of instances or on timing: a run of poison records, at the
//     start of a batch or anywhere, is isolated unless it covers all 8 probed places;
//   - dryCallLimit failed calls in a row, across batches, were made while their batch had no
//     successful call, with no successful call between them: this stops a module failing every
//     call on batches too small to probe (fewer than 8 records; a batch of one record costs two
//     failed calls, the frame and its retry, so 32 in a row). Failed calls of a batch that has had
//     a successful call do not count, so a run of poison records in a large batch cannot reach it.
//     A flood of poison records is the dead letter's max_failure_ratio's to stop; or
//   - the calls of one batch that overran their deadline exceed deadlineBudget, 16·(2+⌈log2 n⌉).
//     Traps and other quick failures are not budgeted: bisection is bounded by 2n+1 calls whatever
//     fails. A deadline costs the timeout in wall time, so its count is bounded, generously enough
//     to isolate 16 poison records that overrun their deadline in a batch.
//
// After a stage was found broken, the next failed call without a successful one before it in its
// batch reports the stage broken again; a successful call resets it.
const (
	probes       = 8
	dryCallLimit = 64
)

func levels(n int) int64 { return 2 + int64(bits.Len(uint(max(n, 1)-1))) }

func deadlineBudget(n int) int64 { return 16 * levels(n) }

// batchFailures is the failure accounting of one Process call, shared by its frames.
type batchFailures struct {
	recs      []connector.Record // the whole batch, for probes
	succeeded atomic.Int64       // successful guest calls
	deadlines atomic.Int64       // calls that overran their deadline
	budget    int64              // deadlineBudget
	output    atomic.Int64       // bytes of the emitted records kept so far
	maxOutput int64

	probeMu  sync.Mutex
	probed   bool  // the batch was probed
	probeErr error // the stage is broken, by the probes
}

func newBatchFailures(recs []connector.Record, maxOutput int64) *batchFailures {
	return &batchFailures{recs: recs, budget: deadlineBudget(len(recs)), maxOutput: maxOutput}
}

// takeOutput charges n bytes of emitted records, at their host size (connector.Record.Size:
// headers and records without bytes are not free), to the batch's output budget. Over the budget,
// it returns the failure that makes the call's result invalid (the caller removes it from out).
func (b *batchFailures) takeOutput(n int64) *failure {
	if n == 0 {
		return nil
	}
	if total := b.output.Add(n); total > b.maxOutput {
		b.output.Add(-n)
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: the batch's emitted records would hold more than %d bytes", b.maxOutput)}
	}
	return nil
}

// chain is the failure accounting of one frame's calls.
type chain struct {
	batch *batchFailures
}

func (s *Stage) processChunk(ctx context.Context, recs []connector.Record, base int, out *transform.Result, bf *batchFailures) error {
	c := &chain{batch: bf}
	start := time.Now()
	f, err := s.runFrame(ctx, recs, base, out, c)
	if err != nil || f == nil {
		if err == nil {
			s.notePerRecord(time.Since(start), len(recs))
		}
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
// first half, and the failed parts of it, before the second half (see probes), collecting
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
	b := c.batch
	f, err := s.call(ctx, recs, base, out, b, b)
	if f == nil || err != nil {
		return f, err
	}
	if b.succeeded.Load() > 0 {
		return f, nil
	}
	if len(recs) == 1 && len(b.recs) >= probes {
		if err := s.probe(ctx, b, base, f); err != nil {
			return nil, err
		}
		if b.succeeded.Load() > 0 {
			return f, nil
		}
	}
	if n := s.dryCalls.Load(); n >= dryCallLimit {
		return nil, s.broken(fmt.Errorf("%w: %d guest calls in a row failed with no successful call in their batches, the last with %q; the module fails whatever records it gets", transform.ErrBroken, n, f.reason))
	}
	return f, nil
}

// call runs one guest call on a pooled instance and does its accounting: a successful call resets
// the stage's count of dry failed calls, a failed one adds to it when its batch has had no
// successful call, and a call that overran its deadline is charged to the batch's budget. out
// gets the call's result, charged to ob's output budget.
func (s *Stage) call(ctx context.Context, recs []connector.Record, base int, out *transform.Result, b, ob *batchFailures) (*failure, error) {
	in, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	f, err := in.runFrame(ctx, recs, base, out, ob)
	if f, err = s.settle(in, f, err); f == nil || err != nil {
		if f == nil && err == nil {
			b.succeeded.Add(1)
		}
		return f, err
	}
	if b.succeeded.Load() == 0 {
		s.dryCalls.Add(1)
	}
	if f.code == CodeDeadline {
		if n := b.deadlines.Add(1); n > b.budget {
			return nil, s.broken(fmt.Errorf("%w: %d guest calls overran their deadline on one batch, over its budget of %d; a module should reject bad records, not fail on them (ABI.md section 14)", transform.ErrBroken, n, b.budget))
		}
	}
	return f, nil
}

// settle ends a guest call on an instance: after a success the instance goes back to the pool;
// after a failure it is closed (its replacement is made by the next call that needs it) and the
// failure counted. It returns the call's failure, or an error when the call could not be made or
// the stage was closed under it (not the records' fault, so no bisection).
func (s *Stage) settle(in *instance, f *failure, err error) (*failure, error) {
	if f == nil && err == nil {
		s.stats.frames.Add(1)
		s.dryCalls.Store(0)
		s.release(in)
		return nil, nil
	}
	s.discard(in)
	if err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("stage: %w", ErrClosed)
	}
	s.countFailure(f)
	return f, nil
}

// probe calls the guest on single records at indexes ⌊n·k/8⌋ of the batch, the record at failed
// (which has just failed alone with f) excepted, once per batch; it returns an error wrapping
// transform.ErrBroken when all of them fail and no call of the batch succeeded meanwhile. A probe
// that succeeds stops probing: the batch has had a successful call. The probes' results are
// thrown away (bisection calls those records again), so their output is not charged to the batch.
func (s *Stage) probe(ctx context.Context, b *batchFailures, failed int, f *failure) error {
	b.probeMu.Lock()
	defer b.probeMu.Unlock()
	if b.probed {
		return b.probeErr
	}
	b.probed = true
	n := len(b.recs)
	for k := 0; k < probes; k++ {
		i := n * k / probes
		if i == failed {
			continue
		}
		if b.succeeded.Load() > 0 {
			return nil
		}
		var scratch transform.Result
		pf, err := s.call(ctx, b.recs[i:i+1], i, &scratch, b, &batchFailures{maxOutput: b.maxOutput})
		if err != nil {
			return err
		}
		if pf == nil {
			return nil
		}
		f = pf
	}
	if b.succeeded.Load() > 0 {
		return nil
	}
	b.probeErr = s.broken(fmt.Errorf("%w: all %d records probed across the batch of %d failed alone and no guest call of the batch succeeded, the last with %q; the module fails whatever records it gets", transform.ErrBroken, probes, n, f.reason))
	return b.probeErr
}

func (s *Stage) broken(err error) error {
	s.stats.broken.Add(1)
	s.dryCalls.Store(dryCallLimit) // the next failure before a success is broken again
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
	return in.invoke(ctx, in.process, frameLen(recs), len(recs), func(view []byte) { encodeFrame(view, recs) }, func(res []byte, used int64) *failure {
		return in.takeResult(res, used, recs, base, out, b)
	})
}

// takeResult decodes the result frame of a tf_process call into out.
func (in *instance) takeResult(res []byte, used int64, recs []connector.Record, base int, out *transform.Result, b *batchFailures) *failure {
	s := in.stage
	startA, startE, startR := len(out.Actions), len(out.Emitted), len(out.Rejected)
	// What one call may copy out: the per-call bound, and what is left of the batch's, so that a
	// result over either is refused before it is copied.
	maxCopy := min(int64(min(s.limit, abi.MaxResultBytes)), max(b.maxOutput-b.output.Load(), 0))
	size, err := decodeResult(res, recs, base, s.m.meta.Ports, int(maxCopy), out)
	if err != nil {
		return &failure{code: CodeInvalidResult, reason: err.Error()}
	}
	if f := b.takeOutput(size); f != nil {
		out.Actions, out.Emitted, out.Rejected = out.Actions[:startA], out.Emitted[:startE], out.Rejected[:startR]
		return f
	}
	s.stats.fuel.Add(uint64(used))
	return nil
}

// invoke runs one guest call of export fn on a frame of n bytes, written by write into the
// input buffer, for nrec records (the fuel budget), under the stage's deadline and mode. It
// hands the result frame, a view into guest memory, and the fuel the call used (metered mode) to
// read, which copies out what it keeps and returns the failure of an unusable result; or it
// returns the failure of the call.
func (in *instance) invoke(ctx context.Context, fn api.Function, n, nrec int, write func(view []byte), read func(res []byte, used int64) *failure) (*failure, error) {
	s := in.stage
	if err := in.enter(); err != nil {
		return nil, err
	}
	defer in.exit()
	defer s.glog.endCall(false)
	in.busy.Store(true)
	defer in.busy.Store(false)
	in.memBefore = in.mem.Size()
	in.stderrFirst = ""
	var cctx context.Context = in.envCtx
	ms := in.meter
	switch s.cfg.Mode {
	case Strict:
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(context.WithValue(ctx, callEnvKey{}, in), s.cfg.Timeout)
		defer cancel()
	case Metered:
		ms.refused = nil
		ms.hold(ctx, time.Now().Add(s.cfg.Timeout))
		defer ms.release()
	default:
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
	classify := func(err error) (*failure, error) { return in.classify(ctx, err) }
	if err := in.reserve(cctx, n); err != nil {
		return classify(err)
	}
	view, _ := in.mem.Read(in.inPtr, uint32(n))
	write(view)
	in.stack[0] = uint64(uint32(n))
	if ms != nil {
		ms.arm(ctx, s.cfg.Fuel*int64(nrec))
	}
	err := fn.CallWithStack(cctx, in.stack[:])
	if in.stdout.buf != nil || in.stderr.buf != nil {
		in.stdout.flush()
		in.stderr.flush()
	}
	if err != nil {
		return classify(err)
	}
	var used int64
	if ms != nil {
		// Work after the guest's last check is charged but not checked: the budget is checked
		// again here.
		used = ms.used()
		if budget := s.cfg.Fuel * int64(nrec); budget > 0 && used > budget {
			fe := &fuelError{used: used, budget: budget}
			return &failure{code: CodeDeadline, reason: fe.Error()}, nil
		}
	}
	v := in.stack[0]
	if uint32(v>>32) == 0xFFFFFFFF {
		return classify(errGuest{code: int32(uint32(v)), msg: in.lastError(cctx)})
	}
	ptr, rlen := uint32(v>>32), uint32(v)
	if rlen > abi.MaxResultBytes {
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: %d bytes, at most %d", rlen, abi.MaxResultBytes)}, nil
	}
	res, ok := in.mem.Read(ptr, rlen)
	if !ok {
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: [%d,%d) outside guest memory", ptr, uint64(ptr)+uint64(rlen))}, nil
	}
	return read(res, used), nil
}
