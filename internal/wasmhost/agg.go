package wasmhost

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// The calls of aggregate modules (ABI.md section 13). A stage of an aggregate module implements
// transform.Aggregator; its Process is not used.

var _ transform.Aggregator = (*Stage)(nil)

// aggProbes is how many single records of one Step call may fail alone, with no successful call
// in the Step, before the module is taken as broken (the analogue of section 10.3's probes).
const aggProbes = 8

// Module returns the module's name and state version.
func (s *Stage) Module() (string, int) { return s.m.meta.Name, s.m.meta.StateVersion }

// CanMerge reports whether the module exports tf_agg_merge.
func (s *Stage) CanMerge() bool { return s.m.canMerge }

func (s *Stage) maxState() int {
	if s.cfg.StateBytes > 0 {
		return s.cfg.StateBytes
	}
	return abi.DefaultMaxState
}

// aggCall runs one aggregation call on a pooled instance: export on the frame of kind, recs and
// slots; read takes the result. A failed instance is replaced.
func (s *Stage) aggCall(ctx context.Context, export string, kind uint32, recs []abi.AggRecord, slots []abi.Slot, read func(res []byte) *failure) (*failure, error) {
	in, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	n := abi.AggFrameSize(recs, slots)
	f, err := in.invoke(ctx, in.fns[export], n, max(len(recs), len(slots)), func(view []byte) { abi.PutAggFrame(view, kind, recs, slots) },
		func(res []byte, used int64) *failure {
			s.stats.fuel.Add(uint64(used))
			return read(res)
		})
	if f, err = s.settle(in, f, err); f == nil || err != nil {
		return f, err
	}
	if n := s.dryCalls.Add(1); n >= dryCallLimit {
		return nil, s.broken(fmt.Errorf("%w: %d guest calls in a row failed, the last with %q; the module fails whatever it gets", transform.ErrBroken, n, f.reason))
	}
	return f, nil
}

// stepCopy is the outcome of one AggRecord.
type stepCopy struct {
	action  abi.Action
	code    uint16
	reason  string
	emitted []transform.Emitted
}

// stepRun is the state of one Step call.
type stepRun struct {
	s         *Stage
	inputs    []connector.Record
	recs      []abi.AggRecord
	slots     []abi.Slot
	cur       [][]byte // each slot's state as the calls so far left it
	deleted   []bool
	changed   []bool
	copies    []stepCopy
	local     []int32 // call's scratch: each slot's number in the call's frame, or -1
	local2    []int32 // the same, for the second shard of callShards
	shardBuf  []int32 // shards' scratch: the records of each shard
	succeeded int
	alone     int // records that failed alone
}

// Step folds recs into slots (transform.Aggregator). Frames hold at most abi.MaxFrameRecords
// records and the stage's frame size; they run one after the other on the states the previous
// ones left. A frame that fails is retried on a fresh instance, then split in halves (at input
// boundaries, the copies of one input stay together) down to single inputs, which are rejected
// with the failure's host code and reason; a failed call's states are never used. With two
// instances or more, a frame of at least 512 records runs split by slot on two instances at once
// (shards), with exactly the frame's outcome; a shard that fails makes the frame run whole.
func (s *Stage) Step(ctx context.Context, inputs []connector.Record, recs []abi.AggRecord, slots []abi.Slot) (transform.StepResult, error) {
	r := &stepRun{s: s, inputs: inputs, recs: recs, slots: slots, cur: make([][]byte, len(slots)),
		deleted: make([]bool, len(slots)), changed: make([]bool, len(slots)), copies: make([]stepCopy, len(recs))}
	for i := range slots {
		r.cur[i] = slots[i].State
	}
	start := time.Now()
	for lo := 0; lo < len(recs); {
		hi := r.frameEnd(lo)
		var f *failure
		var err error
		if sh := r.shards(lo, hi); sh != nil {
			f, err = r.callShards(ctx, sh)
		} else {
			f, err = r.call(ctx, lo, hi)
		}
		if err == nil && f != nil {
			s.log.Warn("wasm aggregate call failed; retrying the frame on a fresh instance", "records", hi-lo, "reason", f.reason)
			if f, err = r.call(ctx, lo, hi); err == nil && f != nil {
				err = r.bisect(ctx, lo, hi, f)
			}
		}
		if err != nil {
			return transform.StepResult{}, err
		}
		lo = hi
	}
	s.notePerRecord(time.Since(start), len(recs))
	return r.result(), nil
}

// frameEnd is where the frame starting at lo ends: within the record and byte caps, at an input
// boundary, with at least one input.
func (r *stepRun) frameEnd(lo int) int {
	size := abi.InHeaderSize
	hi := lo
	for hi < len(r.recs) {
		rec := &r.recs[hi]
		sz := abi.DescSize + abi.SlotDescSize + len(rec.Key) + len(rec.Value) + len(r.slots[rec.Slot].Key) + len(r.cur[rec.Slot])
		if hi > lo && (hi-lo >= abi.MaxFrameRecords || size+sz > r.s.fcap.maxBytes) && rec.Seq != r.recs[hi-1].Seq {
			break
		}
		size += sz
		hi++
	}
	return hi
}

// bisect isolates the inputs of recs[lo:hi] that fail alone, depth-first like Process.
func (r *stepRun) bisect(ctx context.Context, lo, hi int, f *failure) error {
	if r.recs[lo].Seq == r.recs[hi-1].Seq {
		for i := lo; i < hi; i++ {
			r.copies[i] = stepCopy{action: abi.Reject, code: f.code, reason: f.reason}
		}
		r.s.stats.poison.Add(1)
		if r.alone++; r.succeeded == 0 && r.alone >= aggProbes {
			return r.s.broken(fmt.Errorf("%w: %d records failed alone and no call of the batch succeeded, the last with %q; the module fails whatever records it gets", transform.ErrBroken, r.alone, f.reason))
		}
		return nil
	}
	mid := (lo + hi) / 2
	for mid > lo && r.recs[mid].Seq == r.recs[mid-1].Seq {
		mid--
	}
	if mid == lo {
		for mid = (lo+hi)/2 + 1; mid < hi && r.recs[mid].Seq == r.recs[mid-1].Seq; mid++ {
		}
	}
	for _, h := range [2][2]int{{lo, mid}, {mid, hi}} {
		hf, err := r.call(ctx, h[0], h[1])
		if err != nil {
			return err
		}
		if hf != nil {
			if err := r.bisect(ctx, h[0], h[1], hf); err != nil {
				return err
			}
		}
	}
	return nil
}

// call runs recs[lo:hi] in one frame carrying the slots they touch, renumbered, and on success
// keeps their outcomes and the slots' new states.
func (r *stepRun) call(ctx context.Context, lo, hi int) (*failure, error) {
	if r.local == nil {
		r.local = newLocal(len(r.slots))
	}
	out := r.run(ctx, nil, lo, hi, r.local)
	if out.f != nil || out.err != nil {
		return out.f, out.err
	}
	r.apply(nil, lo, &out)
	return nil, nil
}

// newLocal makes a call's scratch of slot numbers: n entries of -1.
func newLocal(n int) []int32 {
	l := make([]int32, n)
	for i := range l {
		l[i] = -1
	}
	return l
}

// callOut is what one step call made: its failure, or the outcome of each of its records and
// the new states of its slots (numbered as in Step's slots).
type callOut struct {
	f      *failure
	err    error
	copies []stepCopy
	states []transform.StateChange
}

// stepScratch is what run builds a frame from, kept between calls.
type stepScratch struct {
	slots  []abi.Slot
	global []int
	recs   []abi.AggRecord
}

// run calls the guest on one frame: the records idx names (indexes of r.recs, ascending), or
// recs[lo:hi] when idx is nil, with the slots they touch, renumbered. local is the call's
// scratch, all -1 on entry and on return. run only reads r, so calls on disjoint sets of slots
// may run at once.
func (r *stepRun) run(ctx context.Context, idx []int32, lo, hi int, local []int32) callOut {
	s := r.s
	n := hi - lo
	if idx != nil {
		n = len(idx)
	}
	sc, _ := s.stepScratch.Get().(*stepScratch)
	if sc == nil {
		sc = &stepScratch{}
	}
	slots := slices.Grow(sc.slots[:0], min(n, len(r.slots)))
	global := slices.Grow(sc.global[:0], cap(slots))
	recs := slices.Grow(sc.recs[:0], n)[:n]
	defer func() {
		// Only this call read them (the frame is built and its result decoded within it). Cleared,
		// so that the pool keeps no state or record value alive.
		clear(slots)
		clear(recs)
		sc.slots, sc.global, sc.recs = slots[:0], global[:0], recs[:0]
		s.stepScratch.Put(sc)
	}()
	for k := range recs {
		i := lo + k
		if idx != nil {
			i = int(idx[k])
		}
		rec := r.recs[i]
		ls := local[rec.Slot]
		if ls < 0 {
			ls = int32(len(slots))
			local[rec.Slot] = ls
			sl := r.slots[rec.Slot]
			sl.State, sl.Other, sl.Final = r.cur[rec.Slot], nil, false
			slots = append(slots, sl)
			global = append(global, int(rec.Slot))
		}
		rec.Slot = uint32(ls)
		recs[k] = rec
	}
	for _, g := range global {
		local[g] = -1
	}
	ports := s.m.meta.Ports
	maxCopy := int(min(s.limit, abi.MaxResultBytes))
	out := callOut{copies: make([]stepCopy, n), states: make([]transform.StateChange, 0, cap(slots))}
	out.f, out.err = s.aggCall(ctx, "tf_agg_step", abi.KindStep, recs, slots, func(res []byte) *failure {
		acts, err := abi.DecodeResultWithin(res, len(recs), len(ports), maxCopy, nil, func(i int, d *abi.Disposition) {
			c := &out.copies[i]
			c.action, c.code = d.Action, d.Code
			if d.Action == abi.Reject {
				c.reason = cleanText(d.Reason, abi.MaxReasonBytes)
				if c.reason == "" {
					c.reason = fmt.Sprintf("rejected with code %d", d.Code)
				}
				return
			}
			seq := int(recs[i].Seq)
			for k := range d.Outputs {
				c.emitted = append(c.emitted, emitted(&d.Outputs[k], &r.inputs[seq], seq, ports))
			}
		})
		if err != nil {
			return &failure{code: CodeInvalidResult, reason: err.Error()}
		}
		for i, a := range acts {
			out.copies[i].action = a
		}
		err = abi.DecodeStates(res, len(slots), s.maxState(), func(so abi.StateOut) {
			sc := transform.StateChange{Slot: global[so.Slot], Delete: so.Delete}
			if !so.Delete {
				sc.State = append([]byte(nil), so.State...)
			}
			out.states = append(out.states, sc)
		})
		if err != nil {
			return &failure{code: CodeInvalidResult, reason: err.Error()}
		}
		return nil
	})
	return out
}

// apply keeps the outcomes of a successful call on the records idx names (or recs[lo:...]) and
// its slots' new states.
func (r *stepRun) apply(idx []int32, lo int, out *callOut) {
	r.succeeded++
	if idx == nil {
		copy(r.copies[lo:], out.copies)
	} else {
		for k, i := range idx {
			r.copies[i] = out.copies[k]
		}
	}
	for _, sc := range out.states {
		r.cur[sc.Slot], r.deleted[sc.Slot], r.changed[sc.Slot] = sc.State, sc.Delete, true
	}
}

// aggShardMin is the fewest records of a step frame that Step splits over two instances.
const aggShardMin = 2 * parallelMinRecords

// shards splits the frame recs[lo:hi] by slot over two instances, when the stage has them and
// the frame is worth it (at least aggShardMin records, and the stage's parallel minimum of
// guest work for each half): the records of even-numbered slots, and of odd-numbered ones. It
// returns nil for a frame to run whole.
func (r *stepRun) shards(lo, hi int) *[2][]int32 {
	s := r.s
	least := s.aggShardMin
	if least == 0 {
		least = max(aggShardMin, 2*s.minParallelFrame())
	}
	if s.cfg.Instances < 2 || hi-lo < least {
		return nil
	}
	if cap(r.shardBuf) < 2*(hi-lo) {
		r.shardBuf = make([]int32, 2*(hi-lo))
	}
	var sh [2][]int32
	sh[0] = r.shardBuf[: 0 : hi-lo]
	sh[1] = r.shardBuf[hi-lo : hi-lo : 2*(hi-lo)]
	for i := lo; i < hi; i++ {
		k := r.recs[i].Slot & 1
		sh[k] = append(sh[k], int32(i))
	}
	if len(sh[0]) == 0 || len(sh[1]) == 0 {
		return nil
	}
	return &sh
}

// callShards runs the two shards of a frame at once, each on its own instance, and applies both
// when both succeed. Shards hold disjoint slots, and a guest's outcome for a record depends only
// on its slot's state and the record (ABI.md section 13: frames are cut where the host likes), so
// this is the frame's outcome. A failure of either is returned and neither is applied: the
// frame is then retried whole.
func (r *stepRun) callShards(ctx context.Context, sh *[2][]int32) (*failure, error) {
	if r.local == nil {
		r.local = newLocal(len(r.slots))
	}
	if r.local2 == nil {
		r.local2 = newLocal(len(r.slots))
	}
	var other callOut
	done := make(chan struct{})
	go func() {
		defer close(done)
		other = r.run(ctx, sh[1], 0, 0, r.local2)
	}()
	mine := r.run(ctx, sh[0], 0, 0, r.local)
	<-done
	for _, o := range [2]*callOut{&mine, &other} {
		if o.err != nil {
			return nil, o.err
		}
	}
	for _, o := range [2]*callOut{&mine, &other} {
		if o.f != nil {
			return o.f, nil
		}
	}
	r.apply(sh[0], 0, &mine)
	r.apply(sh[1], 0, &other)
	return nil, nil
}

// result combines the copies of each input (ABI.md section 13.3) and lists the changed slots.
func (r *stepRun) result() transform.StepResult {
	var out transform.StepResult
	out.Actions = make([]transform.Action, len(r.inputs))
	for i := 0; i < len(r.recs); {
		seq := int(r.recs[i].Seq)
		j := i
		for j < len(r.recs) && int(r.recs[j].Seq) == seq {
			j++
		}
		out.Actions[seq] = r.combine(seq, r.copies[i:j], &out.Result)
		i = j
	}
	for i, ch := range r.changed {
		if ch {
			out.States = append(out.States, transform.StateChange{Slot: i, Delete: r.deleted[i], State: r.cur[i]})
		}
	}
	return out
}

func (r *stepRun) combine(seq int, copies []stepCopy, out *transform.Result) transform.Action {
	pass := false
	var emits []transform.Emitted
	for _, c := range copies {
		switch c.action {
		case abi.Reject:
			out.Rejected = append(out.Rejected, transform.Rejected{Input: seq, Code: c.code, Reason: c.reason})
			return transform.Reject
		case abi.Pass:
			pass = true
		case abi.Emit:
			emits = append(emits, c.emitted...)
		}
	}
	switch {
	case len(emits) == 0 && pass:
		return transform.Pass
	case len(emits) == 0:
		return transform.Drop
	}
	if pass {
		out.Emitted = append(out.Emitted, transform.Emitted{Input: seq, Port: abi.DefaultPort, Record: r.inputs[seq]})
	}
	out.Emitted = append(out.Emitted, emits...)
	return transform.Emit
}

// Emit turns slots into records (transform.Aggregator), in frames of the stage's size. A frame
// that fails is retried on a fresh instance, then split down to single slots, whose failures are
// reported in EmitResult.Failed. With two instances or more, a frame of at least 64 slots runs
// in two halves at once (emitFrame).
func (s *Stage) Emit(ctx context.Context, slots []abi.Slot) (transform.EmitResult, error) {
	var out transform.EmitResult
	for lo := 0; lo < len(slots); {
		hi := slotFrameEnd(slots, lo, s.fcap.maxBytes)
		if err := s.emitFrame(ctx, slots, lo, hi, &out); err != nil {
			return transform.EmitResult{}, err
		}
		lo = hi
	}
	return out, nil
}

// aggEmitShardMin is the fewest slots of an emit frame that Emit splits over two instances.
const aggEmitShardMin = 64

// emitFrame emits slots[lo:hi]: in two halves at once on two instances when the stage has them
// and the frame is large enough, the second half's outcome appended after the first's, which is
// what the frame run whole gives (each slot's records depend on that slot alone, and a half that
// fails is retried and split within itself as the whole frame would be).
func (s *Stage) emitFrame(ctx context.Context, slots []abi.Slot, lo, hi int, out *transform.EmitResult) error {
	least := aggEmitShardMin
	if s.aggShardMin > 0 {
		least = s.aggShardMin
	}
	if s.cfg.Instances < 2 || hi-lo < least {
		return s.emitRange(ctx, slots, lo, hi, out, 0)
	}
	mid := (lo + hi) / 2
	var second transform.EmitResult
	var secondErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		secondErr = s.emitRange(ctx, slots, mid, hi, &second, 0)
	}()
	err := s.emitRange(ctx, slots, lo, mid, out, 0)
	<-done
	if err != nil {
		return err
	}
	if secondErr != nil {
		return secondErr
	}
	out.Records = append(out.Records, second.Records...)
	out.States = append(out.States, second.States...)
	out.Failed = append(out.Failed, second.Failed...)
	return nil
}

func slotFrameEnd(slots []abi.Slot, lo, maxBytes int) int {
	size := abi.InHeaderSize
	hi := lo
	for hi < len(slots) {
		sz := abi.SlotDescSize + len(slots[hi].Key) + len(slots[hi].State) + len(slots[hi].Other)
		if hi > lo && (hi-lo >= abi.MaxFrameRecords || size+sz > maxBytes) {
			break
		}
		size += sz
		hi++
	}
	return hi
}

// emitRange emits slots[lo:hi]; tries counts the failed calls of this range so far.
func (s *Stage) emitRange(ctx context.Context, slots []abi.Slot, lo, hi int, out *transform.EmitResult, tries int) error {
	part := slots[lo:hi]
	ports := s.m.meta.Ports
	maxCopy := int(min(s.limit, abi.MaxResultBytes))
	var recs []transform.SlotRecord
	var states []transform.StateChange
	f, err := s.aggCall(ctx, "tf_agg_emit", abi.KindEmit, nil, part, func(res []byte) *failure {
		err := abi.DecodeEmitResult(res, len(part), len(ports), maxCopy, func(slot int, o *abi.Output) {
			recs = append(recs, slotRecord(&part[slot], lo+slot, o, ports))
		})
		if err == nil {
			err = abi.DecodeStates(res, len(part), s.maxState(), func(so abi.StateOut) {
				if part[so.Slot].Final {
					return
				}
				sc := transform.StateChange{Slot: lo + int(so.Slot), Delete: so.Delete}
				if !so.Delete {
					sc.State = append([]byte(nil), so.State...)
				}
				states = append(states, sc)
			})
		}
		if err != nil {
			return &failure{code: CodeInvalidResult, reason: err.Error()}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if f == nil {
		out.Records = append(out.Records, recs...)
		out.States = append(out.States, states...)
		return nil
	}
	switch {
	case tries == 0:
		s.log.Warn("wasm aggregate emit failed; retrying on a fresh instance", "slots", hi-lo, "reason", f.reason)
		return s.emitRange(ctx, slots, lo, hi, out, 1)
	case hi-lo == 1:
		out.Failed = append(out.Failed, transform.SlotFailure{Slot: lo, Code: f.code, Reason: f.reason})
		return nil
	}
	mid := (lo + hi) / 2
	if err := s.emitRange(ctx, slots, lo, mid, out, 1); err != nil {
		return err
	}
	return s.emitRange(ctx, slots, mid, hi, out, 1)
}

// slotRecord builds a record emitted from a slot, copying its bytes out of guest memory.
func slotRecord(sl *abi.Slot, slot int, o *abi.Output, ports []string) transform.SlotRecord {
	out := transform.SlotRecord{Slot: slot, Port: ports[o.Port]}
	r := &out.Record
	switch {
	case o.TimeMs != abi.NoTimestamp:
		r.Time = time.UnixMilli(o.TimeMs).UTC()
	case sl.End != abi.NoWindowEnd:
		r.Time = time.UnixMilli(sl.End - 1).UTC()
	default:
		r.Time = time.Now().UTC()
	}
	switch {
	case o.KeyInherit:
		if !sl.KeyNull {
			r.Key = append([]byte{}, sl.Key...)
		}
	case !o.KeyNull:
		r.Key = append([]byte{}, o.Key...)
	}
	r.Value = append([]byte{}, o.Value...)
	if !o.HeadersInherit && o.Headers != nil {
		_ = abi.EachHeader(o.Headers, func(k, v []byte) { // checked by DecodeEmitResult
			r.Headers = append(r.Headers, connector.Header{Key: string(k), Value: append([]byte(nil), v...)})
		})
	}
	return out
}

// Merge folds each slot's Other state into its State (transform.Aggregator). A failed call is
// retried once on a fresh instance; a second failure is an error: sessions cannot be merged.
func (s *Stage) Merge(ctx context.Context, slots []abi.Slot) ([]transform.StateChange, error) {
	if !s.m.canMerge {
		return nil, fmt.Errorf("module %s does not export tf_agg_merge, which session windows need", s.m.meta.Name)
	}
	var out []transform.StateChange
	for lo := 0; lo < len(slots); {
		hi := slotFrameEnd(slots, lo, s.fcap.maxBytes)
		part := slots[lo:hi]
		var got []transform.StateChange
		read := func(res []byte) *failure {
			got = got[:0]
			err := abi.DecodeStates(res, len(part), s.maxState(), func(so abi.StateOut) {
				sc := transform.StateChange{Slot: lo + int(so.Slot), Delete: so.Delete}
				if !so.Delete {
					sc.State = append([]byte(nil), so.State...)
				}
				got = append(got, sc)
			})
			if err != nil {
				return &failure{code: CodeInvalidResult, reason: err.Error()}
			}
			return nil
		}
		f, err := s.aggCall(ctx, "tf_agg_merge", abi.KindMerge, nil, part, read)
		if err == nil && f != nil {
			f, err = s.aggCall(ctx, "tf_agg_merge", abi.KindMerge, nil, part, read)
		}
		if err != nil {
			return nil, err
		}
		if f != nil {
			return nil, fmt.Errorf("%w: merging %d session(s) failed twice: %s", transform.ErrBroken, len(part), f.reason)
		}
		out = append(out, got...)
		lo = hi
	}
	return out, nil
}
