package wasmhost

import (
	"github.com/sluicehq/sluice/sdk/go/abi"

	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero/sys"
)

// classify turns a failed call into a failure (the guest's fault) or an error (ctx ended).
func (in *instance) classify(ctx context.Context, err error) (*failure, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var ge errGuest
	if errors.As(err, &ge) {
		if f := in.memoryFailure(); f != nil {
			return f, nil
		}
		return &failure{code: CodeGuestError, reason: cleanText([]byte(ge.Error()), abi.MaxReasonBytes)}, nil
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return &failure{code: CodeDeadline, reason: "deadline exceeded"}, nil
		case sys.ExitCodeContextCanceled:
			return nil, fmt.Errorf("guest call cancelled: %w", context.Canceled)
		}
	}
	var fe *fuelError
	if errors.As(err, &fe) {
		return &failure{code: CodeDeadline, reason: fe.Error()}, nil
	}
	if f := in.memoryFailure(); f != nil {
		return f, nil
	}
	desc := describeCallError(err)
	if in.meter == nil && strings.Contains(strings.ToLower(desc), "out of memory") {
		return &failure{code: CodeMemory, reason: "memory limit exceeded"}, nil
	}
	if in.stderrFirst != "" {
		desc += " (stderr: " + in.stderrFirst + ")"
	}
	return &failure{code: CodeTrap, reason: cleanText([]byte(desc), abi.MaxReasonBytes)}, nil
}

// memoryFailure says whether a failed call hit the memory limit: in metered mode exactly (the
// host refused a memory.grow during the call), otherwise by nearMemoryLimit's heuristic.
func (in *instance) memoryFailure() *failure {
	if in.meter != nil {
		r := in.meter.refused
		if r == nil {
			return nil
		}
		return &failure{code: CodeMemory, reason: fmt.Sprintf("memory limit exceeded: growing memory from %s to %s was refused, the limit is %s", mib(int64(r.from)), mib(int64(r.to)), mib(int64(r.limit)))}
	}
	if in.nearMemoryLimit() {
		return &failure{code: CodeMemory, reason: "memory limit exceeded"}
	}
	return nil
}

// nearMemoryLimit says whether a failure is best explained by the memory cap. Outside metered
// mode wazero refuses a memory.grow past the cap without telling the host, and the guest then
// fails in its own way (Go prints "out of memory" and exits, C and Rust abort), so this is a
// heuristic: the guest said it ran out of memory, or its memory grew during the failed call to
// at least half the cap.
func (in *instance) nearMemoryLimit() bool {
	if in.oom {
		return true
	}
	limit := in.stage.limit
	if max, ok := in.mem.Definition().Max(); ok && uint64(max)*65536 < limit {
		limit = uint64(max) * 65536
	}
	size := uint64(in.mem.Size())
	return size > uint64(in.memBefore) && size >= limit/2
}

// describeCallError renders a wazero call error as one line: "wasm trap: out of bounds memory
// access", "abort: ... at f.ts:1:2", "guest exited with code 2", "deadline exceeded".
func describeCallError(err error) string {
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return "deadline exceeded"
		case sys.ExitCodeContextCanceled:
			return "cancelled"
		}
		return fmt.Sprintf("guest exited with code %d", ee.ExitCode())
	}
	var ae *abortError
	if errors.As(err, &ae) {
		return ae.msg
	}
	var ge errGuest
	if errors.As(err, &ge) {
		return ge.Error()
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSpace(msg)
	msg = strings.TrimSuffix(msg, " (recovered by wazero)")
	if rest, ok := strings.CutPrefix(msg, "wasm error: "); ok {
		if strings.HasPrefix(rest, "abort: ") {
			return rest
		}
		return "wasm trap: " + rest
	}
	return msg
}
