package wasmhost

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// failure is why one guest call failed; it becomes the reject of a poison record.
type failure struct {
	code   uint16
	reason string
}

func (s *Stage) processChunk(ctx context.Context, recs []connector.Record, base int, out *transform.Result) error {
	f, err := s.runFrame(ctx, recs, base, out)
	if err != nil || f == nil {
		return err
	}
	s.log.Warn("wasm call failed; retrying the frame on a fresh instance", "records", len(recs), "reason", f.reason)
	if f, err = s.runFrame(ctx, recs, base, out); err != nil || f == nil {
		return err
	}
	s.log.Warn("wasm call failed twice; bisecting the frame to isolate poison records", "records", len(recs), "reason", f.reason)
	return s.bisect(ctx, recs, base, out, f)
}

func (s *Stage) bisect(ctx context.Context, recs []connector.Record, base int, out *transform.Result, f *failure) error {
	if len(recs) == 1 {
		out.Actions = append(out.Actions, transform.Reject)
		out.Rejected = append(out.Rejected, transform.Rejected{Input: base, Code: f.code, Reason: f.reason})
		s.stats.poison.Add(1)
		return nil
	}
	mid := len(recs) / 2
	for _, h := range [2][2]int{{0, mid}, {mid, len(recs)}} {
		part := recs[h[0]:h[1]]
		hf, err := s.runFrame(ctx, part, base+h[0], out)
		if err != nil {
			return err
		}
		if hf != nil {
			if err := s.bisect(ctx, part, base+h[0], out, hf); err != nil {
				return err
			}
		}
	}
	return nil
}

// runFrame runs one guest call on a pooled instance. It returns a failure when the guest failed
// (the instance has then been replaced) and an error when the call could not be made or ctx ended.
func (s *Stage) runFrame(ctx context.Context, recs []connector.Record, base int, out *transform.Result) (*failure, error) {
	in, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	f, err := in.runFrame(ctx, recs, base, out)
	if f == nil && err == nil {
		s.stats.frames.Add(1)
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
	return f, nil
}

func (in *instance) runFrame(ctx context.Context, recs []connector.Record, base int, out *transform.Result) (*failure, error) {
	s := in.stage
	if err := in.enter(); err != nil {
		return nil, err
	}
	defer in.exit()
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
	if rlen > maxResultBytes {
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: %d bytes, at most %d", rlen, maxResultBytes)}, nil
	}
	res, ok := in.mem.Read(ptr, rlen)
	if !ok {
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: [%d,%d) outside guest memory", ptr, uint64(ptr)+uint64(rlen))}, nil
	}
	if err := decodeResult(res, recs, base, s.m.meta.Ports, out); err != nil {
		return &failure{code: CodeInvalidResult, reason: err.Error()}, nil
	}
	return nil, nil
}
