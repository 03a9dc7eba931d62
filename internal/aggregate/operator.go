package aggregate

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Metrics are an operator's instruments, labelled by the caller.
type Metrics struct {
	Late          prometheus.Counter // late records, whatever the policy
	WindowsClosed prometheus.Counter // slots emitted final
	Slots         prometheus.Gauge   // slots held
	StateBytes    prometheus.Gauge   // bytes of state blobs held in memory
	Spilled       prometheus.Gauge   // slots whose blob is only in the store
	Watermark     prometheus.Gauge   // the watermark, Unix seconds
}

// Out is a record produced by the operator from a slot.
type Out struct {
	Port   string
	Record connector.Record
	// At is the input whose event time closed the window (its position is the record's), or -1
	// when no input of the call did (processing time, a tick, the end of the input).
	At int
}

// Letter is a record the operator sends to the dead letters: a late input, or the description of a
// slot whose emit failed.
type Letter struct {
	Input  int              // the late input, or -1
	Record connector.Record // the slot's description when Input is -1
	At     int              // as Out.At, for slot failures
	Code   uint16
	Reason string
}

// Result is what a Process, Tick or Flush call made.
type Result struct {
	// Result holds one action per input record, in input order, with the records the guest
	// emitted for them and the rejected ones (transform.Result's rules). Late inputs are Drop
	// here and listed in Letters (dead_letter), or Emit on the late port.
	transform.Result
	Out     []Out
	Letters []Letter
}

type slotID struct {
	key   string
	start int64 // the window's start; a session's first start; 0 without windows
}

type slot struct {
	start, end int64
	state      []byte // nil: no state (a new slot), unless onDisk
	lastTs     int64  // the largest event time folded
	dirty      uint64 // the batch that last changed it; <= committed when durable
	key        string // its slotID's key, the one string of it the operator keeps
	logged     uint64 // the commit's scratch: the last commit that wrote its change (store.go)
	frame      uint64 // the frame's generation while the frame holds it
	frameIdx   int    // its index in that frame
	idStart    int64  // its slotID's start (a session's first start, which start may precede)
	next       *slot  // the next slot of the same hash in its partition's slotMap
	keyNull    bool
	onDisk     bool // the blob is only in the store
	early      bool // changed since the last early update
	removed    bool // no longer in its partition: its entries in the ends heap are stale
	closing    bool // taken by closeWindows
	// inline holds a short key's bytes (key points into it): the map compares a slot's key with
	// the one looked up, and the slot's own memory is read right after anyway.
	inline [inlineKey]byte
}

// inlineKey is the longest key a slot holds in itself; the slot is 144 bytes.
const inlineKey = 26

// newSlot makes a slot whose key is a copy of key (which may alias bytes that change later).
func newSlot(key string, start, end int64, keyNull bool, t int64) *slot {
	s := &slot{start: start, end: end, keyNull: keyNull, lastTs: t}
	if len(key) <= inlineKey {
		s.key = unsafe.String(&s.inline[0], copy(s.inline[:], key))
	} else {
		s.key = strings.Clone(key)
	}
	return s
}

// change is a slot's value after a batch (the store's record of it), or its deletion.
type change struct {
	start, end, lastTs int64
	keyNull            bool
	state              []byte
	del                bool
}

// pkey names a slot of a partition (partitioned mode; "" otherwise).
type pkey struct {
	part string
	id   slotID
}

type delta struct {
	batch uint64
	marks map[string]mark // each changed partition's watermark after the batch
	// changes in the order the batch made them: a slot's later entry supersedes its earlier ones.
	changes []changed
}

type changed struct {
	k  pkey
	ch change
	s  *slot // the slot changed (removed, for a deletion)
}

// put records a change of slot s.
func (d *delta) put(k pkey, s *slot, ch change) { d.changes = append(d.changes, changed{k, ch, s}) }

// mark is a partition's event-time progress.
type mark struct{ wm, maxTs int64 }

// part is the state of one source partition (partitioned mode), or of the whole stage.
type part struct {
	name      string
	slots     slotMap
	sessions  map[string][]int64 // session windows: a key's open sessions, by slotID.start
	ends      endHeap
	maxTs     int64
	wm        int64
	lastSweep int64
	restore   bool // partitioned: restore from the state log before the next record
	marked    *delta
}

// markIn notes in d that the partition's watermark moved (finish records its value).
func (p *part) markIn(d *delta) {
	if p.marked != d {
		p.marked = d
		d.marks[p.name] = mark{p.wm, p.maxTs}
	}
}

func newPart(name string) *part {
	return &part{name: name, slots: newSlotMap(), sessions: map[string][]int64{},
		maxTs: math.MinInt64, wm: math.MinInt64, lastSweep: math.MinInt64}
}

// Operator is an aggregate stage's host side. Process, Tick and Flush are called from one
// goroutine, in batch order; Commit may be called from another.
type Operator struct {
	cfg      Config
	g        transform.Aggregator
	pipeline string
	stage    string
	m        Metrics
	store    Store

	mu        sync.Mutex
	parts     map[string]*part
	single    *part // parts[""], the stage's state when it is not partitioned
	mem       int64
	spilled   int
	deltas    []*delta
	committed uint64
	inSlots   uint64 // the last batch whose changes are all in the store's slots bucket (store.go)
	compactAt int64  // the delta log's size that makes a commit compact it: compactLogBytes
	compact   bool   // spill waits for the delta log to be compacted into the slots bucket
	lastEarly time.Time
	resume    map[string]int64 // restored positions: inputs at or before them are not folded again

	// Partitioned mode (a source whose partitions move between processes): state per source
	// partition, kept in the source's state log (statelog.go) instead of the local store.
	log     connector.StateLog
	written map[pkey][]version // versions of each slot in the log not yet deleted, oldest first
	gone    map[string]bool    // partitions released (Released) and not assigned again
	cleanup []connector.StateEntry

	frame       *frame    // reused by Process
	ext         extractor // Process's, for records not extracted ahead
	lastChanges int       // slots the last batch changed: a size hint for the next
}

// New makes an operator over guest g for stage of pipeline, with its state in store.
func New(cfg Config, g transform.Aggregator, store Store, pipelineName, stage string, m Metrics) (*Operator, error) {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = DefaultMemory
	}
	if cfg.Window.Kind == Session && !g.CanMerge() {
		name, _ := g.Module()
		return nil, fmt.Errorf("session windows need a module that merges states, and %s does not export tf_agg_merge", name)
	}
	single := newPart("")
	o := &Operator{cfg: cfg, g: g, pipeline: pipelineName, stage: stage, m: m, store: store,
		parts: map[string]*part{"": single}, single: single, lastEarly: cfg.Clock(), compactAt: compactLogBytes}
	o.ext = newExtractor(&o.cfg)
	return o, nil
}

// eventTime reports whether the stage runs on event time.
func (o *Operator) eventTime() bool { return o.cfg.Time != nil }

// Resume tells the operator the positions its restored state reflects (the checkpoint saved with
// it), so that inputs at or before them, read again when a source resumes from an earlier
// position, are not folded twice. Only for sources whose positions compare, and not in
// partitioned mode, whose state comes from the state log at the positions the source resumes
// from.
func (o *Operator) Resume(ps []connector.Position) {
	if o.log != nil {
		return
	}
	o.resume = map[string]int64{}
	for _, p := range ps {
		o.resume[p.Partition] = p.Offset
	}
}

func (o *Operator) folded(p connector.Position) bool {
	if o.resume == nil {
		return false
	}
	off, ok := o.resume[p.Partition]
	return ok && p.Offset <= off
}

// partOf returns the state of a record's partition: its own in partitioned mode, the stage's
// otherwise.
func (o *Operator) partOf(name string) *part {
	if o.log == nil {
		return o.single
	}
	p := o.parts[name]
	if p == nil {
		p = newPart(name)
		p.restore = true
		o.parts[name] = p
	}
	return p
}

// frame gathers the records of one guest step call.
type frame struct {
	recs  []abi.AggRecord
	slots []abi.Slot
	ids   []pkey
	ptrs  []*slot // the slots of ids: none leaves its partition while the frame holds it
	given []bool  // step's scratch
	seqs  []int   // the inputs in the frame, in order
	gen   uint64  // the frame's generation: a slot whose frame field equals it is in the frame
}

func (f *frame) reset() {
	clear(f.ptrs)
	f.recs, f.slots, f.ids, f.ptrs, f.seqs = f.recs[:0], f.slots[:0], f.ids[:0], f.ptrs[:0], f.seqs[:0]
	f.gen++
}

// outcome of one input, gathered before the result is put in input order.
type gathered struct {
	emitted  []transform.Emitted
	rejected []transform.Rejected
}

// newDelta starts the changes of a batch expected to change about n slots.
func newDelta(batch uint64, n int) *delta {
	return &delta{batch: batch, marks: map[string]mark{}, changes: make([]changed, 0, n)}
}

// Process folds a batch into the state and emits the windows the batch's event times closed.
// batch is the engine's batch id, by which Commit later makes the changes durable.
func (o *Operator) Process(ctx context.Context, batch uint64, recs []connector.Record) (Result, error) {
	return o.ProcessExtracted(ctx, batch, recs, nil)
}

// ProcessExtracted is Process with the records' keys and event times found ahead by Extract
// (ignored when ex is nil or was not extracted by o from recs).
func (o *Operator) ProcessExtracted(ctx context.Context, batch uint64, recs []connector.Record, ex *Extracted) (Result, error) {
	if !ex.of(o, recs) {
		ex = nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	d := newDelta(batch, min(2*len(recs), o.lastChanges+16))
	var res Result
	res.Actions = make([]transform.Action, len(recs))
	var g gathered
	var closeAt []closeStep
	now := o.cfg.Clock()
	procTime := now.UnixMilli()
	if !o.eventTime() {
		o.advance(o.single, procTime, -1, &closeAt, d)
	}
	if o.frame == nil {
		o.frame = &frame{gen: 1}
	}
	f := o.frame
	f.reset()
	flush := func() error { return o.step(ctx, f, d, recs, &res, &g) }
	var wins [][2]int64
	for i := range recs {
		rec := &recs[i]
		if o.folded(rec.Position) || o.released(rec.Position.Partition) {
			res.Actions[i] = transform.Drop
			continue
		}
		p := o.partOf(rec.Position.Partition)
		if p.restore {
			if err := o.step(ctx, f, d, recs, &res, &g); err != nil {
				return Result{}, err
			}
			if err := o.restorePart(ctx, p, rec.Position.Offset, d); err != nil {
				return Result{}, err
			}
		}
		var kb []byte
		var keyNull bool
		var t int64
		var err error
		if ex != nil {
			kb, keyNull, t, err = ex.at(i)
		} else {
			kb, keyNull, t, err = o.ext.extract(rec)
		}
		if err != nil {
			o.reject(&res, &g, i, err)
			continue
		}
		// key aliases the key's bytes until the next record: slots are looked up with it, and a
		// slot made keeps a copy (addRecord).
		key := unsafe.String(unsafe.SliceData(kb), len(kb))
		if !o.eventTime() {
			t = procTime
		}
		res.Actions[i] = transform.Drop
		folded := false
		switch o.cfg.Window.Kind {
		case NoWindow:
			if err := o.addRecord(f, d, p, slotID{key: key}, math.MinInt64, math.MaxInt64, keyNull, i, t, rec, flush); err != nil {
				return Result{}, err
			}
			folded = true
		case Session:
			ok, err := o.addSession(ctx, f, d, p, &res, &g, recs, strings.Clone(key), keyNull, i, t)
			if err != nil {
				return Result{}, err
			}
			folded = ok
		default:
			wins = o.cfg.Window.windowsOf(t, wins[:0])
			for _, w := range wins {
				if w[1] <= p.wm {
					continue // closed
				}
				if err := o.addRecord(f, d, p, slotID{key: key, start: w[0]}, w[0], w[1], keyNull, i, t, rec, flush); err != nil {
					return Result{}, err
				}
				folded = true
			}
		}
		if !folded {
			o.late(&res, &g, i, rec, t, p)
			continue
		}
		if o.eventTime() {
			o.advance(p, t, i, &closeAt, d)
		}
	}
	if err := o.step(ctx, f, d, recs, &res, &g); err != nil {
		return Result{}, err
	}
	if err := o.closeWindows(ctx, closeAt, d, &res); err != nil {
		return Result{}, err
	}
	if err := o.earlyUpdates(ctx, now, d, &res); err != nil {
		return Result{}, err
	}
	o.sweep(d)
	o.finish(d, &res, &g)
	return res, nil
}

// Tick closes the windows processing time closed and makes early updates, without input (a
// pipeline whose source is idle). batch is a batch id of its own.
func (o *Operator) Tick(ctx context.Context, batch uint64) (Result, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := newDelta(batch, 0)
	var res Result
	var closeAt []closeStep
	now := o.cfg.Clock()
	if !o.eventTime() {
		o.advance(o.single, now.UnixMilli(), -1, &closeAt, d)
	}
	if err := o.closeWindows(ctx, closeAt, d, &res); err != nil {
		return Result{}, err
	}
	if err := o.earlyUpdates(ctx, now, d, &res); err != nil {
		return Result{}, err
	}
	o.sweep(d)
	o.finish(d, &res, &gathered{})
	return res, nil
}

// Flush closes every open window: the input has ended. Slots without a window stay.
func (o *Operator) Flush(ctx context.Context, batch uint64) (Result, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := newDelta(batch, 0)
	var res Result
	if o.cfg.Window.Kind != NoWindow {
		var closeAt []closeStep
		for _, p := range o.sortedParts() {
			closeAt = append(closeAt, closeStep{p: p, at: -1, wm: math.MaxInt64})
		}
		if err := o.closeWindows(ctx, closeAt, d, &res); err != nil {
			return Result{}, err
		}
	}
	o.finish(d, &res, &gathered{})
	return res, nil
}

func (o *Operator) sortedParts() []*part {
	ps := make([]*part, 0, len(o.parts))
	for _, p := range o.parts {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *part) int { return cmp.Compare(a.name, b.name) })
	return ps
}

// HasTimers reports whether the operator needs Tick calls while its source is idle, and how
// often: processing-time windows close by the clock, and early updates are due by it.
func (o *Operator) HasTimers() (time.Duration, bool) {
	var every time.Duration
	if !o.eventTime() && o.cfg.Window.Kind != NoWindow {
		w := o.cfg.Window
		span := map[WindowKind]time.Duration{Tumbling: w.Size, Hopping: w.Every, Session: w.Gap}[w.Kind]
		every = min(max(span/10, 10*time.Millisecond), time.Second)
	}
	if o.cfg.Early > 0 && (every == 0 || o.cfg.Early < every) {
		every = o.cfg.Early
	}
	return every, every > 0
}

// keyBytes is a slot key's bytes for a frame, which only reads them.
func keyBytes(k string) []byte { return unsafe.Slice(unsafe.StringData(k), len(k)) }

func (o *Operator) reject(res *Result, g *gathered, i int, err error) {
	res.Actions[i] = transform.Reject
	g.rejected = append(g.rejected, transform.Rejected{Input: i, Code: abi.CodeAggregateInput, Reason: "aggregate: " + err.Error()})
}

func (o *Operator) late(res *Result, g *gathered, i int, rec *connector.Record, t int64, p *part) {
	o.m.Late.Inc()
	switch o.cfg.Late {
	case LateDrop:
		res.Actions[i] = transform.Drop
	case LatePort:
		res.Actions[i] = transform.Emit
		g.emitted = append(g.emitted, transform.Emitted{Input: i, Port: o.cfg.LatePort, Record: *rec})
	default:
		res.Actions[i] = transform.Drop
		res.Letters = append(res.Letters, Letter{Input: i, At: i, Code: abi.CodeLate, Reason: fmt.Sprintf(
			"late: event time %s is behind the watermark %s (allowed_lateness %s); every window it belongs to has closed",
			msTime(t), msTime(p.wm), o.cfg.Lateness)})
	}
}

func msTime(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

type closeStep struct {
	p  *part
	at int
	wm int64
}

// advance moves a partition's watermark for event time t seen at input at.
func (o *Operator) advance(p *part, t int64, at int, closeAt *[]closeStep, d *delta) {
	if t > p.maxTs {
		p.maxTs = t
		p.markIn(d)
	}
	wm := satSub(p.maxTs, o.cfg.Lateness.Milliseconds())
	if wm > p.wm {
		p.wm = wm
		p.markIn(d)
		*closeAt = append(*closeAt, closeStep{p: p, at: at, wm: wm})
	}
}

func satSub(a, b int64) int64 {
	if a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

// get returns a slot, reading its blob back from the store when it was spilled.
func (o *Operator) get(p *part, id slotID) (*slot, error) {
	s := p.slots.get(id)
	if s == nil || !s.onDisk {
		return s, nil
	}
	return s, o.load(s, id)
}

// load reads a spilled slot's blob back from the store.
func (o *Operator) load(s *slot, id slotID) error {
	st, err := o.store.loadState(o.pipeline, o.stage, id)
	if err != nil {
		return err
	}
	s.state, s.onDisk = st, false
	o.spilled--
	o.mem += int64(len(st))
	return nil
}

// addRecord adds input i to the frame, in slot id of p (created when new). id.key may alias
// bytes that change after the call: the slot keeps its own copy.
func (o *Operator) addRecord(f *frame, d *delta, p *part, id slotID, start, end int64, keyNull bool, i int, t int64, rec *connector.Record, flush func() error) error {
	s, err := o.get(p, id)
	if err != nil {
		return err
	}
	if s != nil {
		id.key = s.key
	}
	if s == nil {
		s = newSlot(id.key, start, end, keyNull, t)
		id.key = s.key
		p.slots.put(id, s)
		if end != math.MaxInt64 {
			p.ends.push(endEntry{end: end, id: id, s: s})
		}
	} else if o.cfg.TTL > 0 && o.cfg.Window.Kind == NoWindow && o.expired(p, s, t) {
		// Idle longer than the TTL: the slot starts anew, whatever the sweep has done yet. The
		// records the frame holds for it are folded first, into the state they belong to.
		if s.frame == f.gen {
			if err := flush(); err != nil {
				return err
			}
		}
		if s = p.slots.get(id); s == nil { // the step removed it: it never had state
			s = newSlot(id.key, start, end, keyNull, t)
			id.key = s.key
			p.slots.put(id, s)
		}
		o.mem -= int64(len(s.state))
		s.state, s.lastTs = nil, t
	}
	s.lastTs = max(s.lastTs, t)
	s.dirty = d.batch
	idx := s.frameIdx
	if s.frame != f.gen {
		idx = len(f.slots)
		s.frame, s.frameIdx = f.gen, idx
		k := pkey{p.name, id}
		f.slots = append(f.slots, abi.Slot{Start: s.start, End: s.end, Key: keyBytes(id.key), KeyNull: s.keyNull, State: s.state})
		f.ids = append(f.ids, k)
		f.ptrs = append(f.ptrs, s)
	}
	if len(f.seqs) == 0 || f.seqs[len(f.seqs)-1] != i {
		f.seqs = append(f.seqs, i)
	}
	f.recs = append(f.recs, abi.AggRecord{Slot: uint32(idx), Seq: uint64(i), TimeMs: t, Key: rec.Key, KeyNull: rec.Key == nil, Value: rec.Value})
	return nil
}

// expired reports whether a slot of a stage without windows outlived the TTL when a record at t
// comes: it is more than the TTL after the slot's last record, or the watermark (the largest
// time before this record) passed the slot's last record by more than the TTL, which the sweep
// frees. Both depend on the records before this one only, not on how they were batched.
func (o *Operator) expired(p *part, s *slot, t int64) bool {
	ttl := o.cfg.TTL.Milliseconds()
	return t-s.lastTs > ttl || (p.wm != math.MinInt64 && s.lastTs < satSub(p.wm, ttl))
}

func changeOf(s *slot) change {
	return change{start: s.start, end: s.end, lastTs: s.lastTs, keyNull: s.keyNull, state: s.state}
}

// addSession folds input i into the session of key around t, merging the sessions it joins. It
// reports false when the record is late.
func (o *Operator) addSession(ctx context.Context, f *frame, d *delta, p *part, res *Result, g *gathered, recs []connector.Record, key string, keyNull bool, i int, t int64) (bool, error) {
	gap := o.cfg.Window.Gap.Milliseconds()
	lo, hi := t, t+gap
	if hi <= p.wm {
		return false, nil
	}
	var join []slotID
	for _, st := range p.sessions[key] {
		id := slotID{key: key, start: st}
		s := p.slots.get(id)
		if s != nil && s.end > p.wm && s.start < hi && lo < s.end {
			join = append(join, id)
		}
	}
	switch len(join) {
	case 0:
		id := slotID{key: key, start: t}
		for p.slots.get(id) != nil { // a closed-but-kept id cannot collide: closed slots are deleted
			id.start++
		}
		p.sessions[key] = append(p.sessions[key], id.start)
		return true, o.addRecord(f, d, p, id, lo, hi, keyNull, i, t, &recs[i], nil)
	case 1:
	default:
		// The record bridges sessions: fold what the frame holds, then merge the others into the
		// first.
		if err := o.step(ctx, f, d, recs, res, g); err != nil {
			return false, err
		}
		if err := o.mergeSessions(ctx, d, p, join); err != nil {
			return false, err
		}
	}
	id := join[0]
	s, err := o.get(p, id)
	if err != nil {
		return false, err
	}
	s.start, s.end = min(s.start, lo), max(s.end, hi)
	p.ends.push(endEntry{end: s.end, id: id, s: s})
	return true, o.addRecord(f, d, p, id, s.start, s.end, keyNull, i, t, &recs[i], nil)
}

func (o *Operator) mergeSessions(ctx context.Context, d *delta, p *part, join []slotID) error {
	into, err := o.get(p, join[0])
	if err != nil {
		return err
	}
	for _, id := range join[1:] {
		other, err := o.get(p, id)
		if err != nil {
			return err
		}
		if other.state != nil && into.state != nil {
			ch, err := o.g.Merge(ctx, []abi.Slot{{Start: into.start, End: into.end, Key: []byte(id.key), KeyNull: into.keyNull, State: into.state, Other: other.state}})
			if err != nil {
				return err
			}
			for _, c := range ch {
				o.setState(into, c)
			}
		} else if into.state == nil {
			o.setState(into, transform.StateChange{State: other.state})
		}
		into.start, into.end = min(into.start, other.start), max(into.end, other.end)
		into.lastTs = max(into.lastTs, other.lastTs)
		o.remove(p, id, d)
	}
	into.dirty = d.batch
	d.put(pkey{p.name, join[0]}, into, changeOf(into))
	return nil
}

func (o *Operator) setState(s *slot, c transform.StateChange) {
	o.mem -= int64(len(s.state))
	if c.Delete {
		s.state = nil
	} else {
		s.state = c.State
	}
	o.mem += int64(len(s.state))
	s.early = true
}

// remove forgets a slot, durably with batch d.
func (o *Operator) remove(p *part, id slotID, d *delta) {
	s := p.slots.get(id)
	if s == nil {
		return
	}
	o.mem -= int64(len(s.state))
	if s.onDisk {
		o.spilled--
	}
	s.removed = true
	p.slots.del(id)
	if o.cfg.Window.Kind == Session {
		ss := p.sessions[id.key]
		if k := slices.Index(ss, id.start); k >= 0 {
			ss = slices.Delete(ss, k, k+1)
		}
		if len(ss) == 0 {
			delete(p.sessions, id.key)
		} else {
			p.sessions[id.key] = ss
		}
	}
	d.put(pkey{p.name, id}, s, change{del: true})
}

// step calls the guest on the frame and applies its outcome.
func (o *Operator) step(ctx context.Context, f *frame, d *delta, recs []connector.Record, res *Result, g *gathered) error {
	if len(f.recs) == 0 {
		return nil
	}
	sr, err := o.g.Step(ctx, recs, f.recs, f.slots)
	if err != nil {
		return err
	}
	for _, i := range f.seqs {
		res.Actions[i] = sr.Actions[i]
	}
	g.emitted = append(g.emitted, sr.Emitted...)
	g.rejected = append(g.rejected, sr.Rejected...)
	given := f.given[:0]
	given = append(given, make([]bool, len(f.ids))...)
	f.given = given
	for _, c := range sr.States {
		given[c.Slot] = true
		o.setState(f.ptrs[c.Slot], c)
	}
	// Each slot of the frame changed (its state, or its last event time); a new slot the guest
	// gave no state is not created (ABI.md 13.3).
	for n, k := range f.ids {
		s := f.ptrs[n]
		if s.state == nil && f.slots[n].State == nil && !s.onDisk && !given[n] {
			o.remove(o.parts[k.part], k.id, d)
			continue
		}
		d.put(k, s, changeOf(s))
	}
	f.reset()
	return nil
}

// closeWindows emits, final, the slots whose window ended at or before each step's watermark.
func (o *Operator) closeWindows(ctx context.Context, steps []closeStep, d *delta, res *Result) error {
	var ids []slotID
	var slots []abi.Slot
	for _, st := range steps {
		p := st.p
		// In chunks, so that closing many windows at once (a watermark's jump, the end of the
		// input) holds few of their blobs read back and of the guest's results at a time.
		for {
			ids, slots = ids[:0], slots[:0]
			for len(ids) < closeChunk && p.ends.Len() > 0 && p.ends[0].end <= st.wm {
				e := p.ends.pop()
				s := e.s
				// Stale: the slot closed already, or a session grew (a session's end can be in
				// the heap more than once).
				if s.removed || s.closing || s.end != e.end {
					continue
				}
				if s.onDisk {
					if err := o.load(s, e.id); err != nil {
						return err
					}
				}
				s.closing = true
				ids = append(ids, e.id)
				slots = append(slots, abi.Slot{Start: s.start, End: s.end, Key: keyBytes(e.id.key), KeyNull: s.keyNull, State: s.state, Final: true})
			}
			if len(ids) == 0 {
				break
			}
			if err := o.emit(ctx, p, slots, ids, st.at, d, res); err != nil {
				return err
			}
			for _, id := range ids {
				o.remove(p, id, d)
			}
			o.m.WindowsClosed.Add(float64(len(ids)))
		}
	}
	return nil
}

// closeChunk is how many slots closeWindows emits per call of emit.
const closeChunk = 4096

// emit calls the guest's emit on slots of p and adds what it made to res.
func (o *Operator) emit(ctx context.Context, p *part, slots []abi.Slot, ids []slotID, at int, d *delta, res *Result) error {
	// A slot without state (a new slot the guest never stored) has nothing to emit.
	keep := make([]abi.Slot, 0, len(slots))
	keepIDs := make([]slotID, 0, len(slots))
	for k := range slots {
		if slots[k].State != nil {
			keep = append(keep, slots[k])
			keepIDs = append(keepIDs, ids[k])
		}
	}
	if len(keep) == 0 {
		return nil
	}
	er, err := o.g.Emit(ctx, keep)
	if err != nil {
		return err
	}
	res.Out = slices.Grow(res.Out, len(er.Records))
	for _, r := range er.Records {
		res.Out = append(res.Out, Out{Port: r.Port, Record: r.Record, At: at})
	}
	for _, c := range er.States {
		id := keepIDs[c.Slot]
		if s := p.slots.get(id); s != nil {
			o.setState(s, c)
			s.dirty = d.batch
			d.put(pkey{p.name, id}, s, changeOf(s))
		}
	}
	for _, fl := range er.Failed {
		sl := keep[fl.Slot]
		desc, _ := json.Marshal(map[string]any{"key": string(sl.Key), "window_start": sl.Start, "window_end": sl.End, "state_bytes": len(sl.State)})
		res.Letters = append(res.Letters, Letter{Input: -1, At: at, Record: connector.Record{Key: bytes.Clone(sl.Key), Value: desc, Time: time.UnixMilli(min(sl.End, math.MaxInt64/2)).UTC()},
			Code: fl.Code, Reason: "aggregate: emitting the slot failed: " + fl.Reason})
	}
	return nil
}

// earlyUpdates emits, not final, the open slots that changed since the last early update.
func (o *Operator) earlyUpdates(ctx context.Context, now time.Time, d *delta, res *Result) error {
	if o.cfg.Early <= 0 || now.Sub(o.lastEarly) < o.cfg.Early {
		return nil
	}
	o.lastEarly = now
	for _, p := range o.sortedParts() {
		var ids []slotID
		for id, s := range p.slots.all {
			if s.early && (s.onDisk || s.state != nil) {
				ids = append(ids, id)
			}
		}
		slices.SortFunc(ids, func(a, b slotID) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.key, b.key)) })
		slots := make([]abi.Slot, len(ids))
		for k, id := range ids {
			s := p.slots.get(id)
			if s.onDisk { // changed, then spilled before its update: read back for it
				if err := o.load(s, id); err != nil {
					return err
				}
			}
			s.early = false
			slots[k] = abi.Slot{Start: s.start, End: s.end, Key: keyBytes(id.key), KeyNull: s.keyNull, State: s.state}
		}
		if err := o.emit(ctx, p, slots, ids, -1, d, res); err != nil {
			return err
		}
	}
	return nil
}

// sweep forgets the slots of a stage without windows that have been idle longer than the TTL,
// in event time: checked when the partition's time has moved a quarter of the TTL since its last
// sweep.
func (o *Operator) sweep(d *delta) {
	if o.cfg.TTL <= 0 || o.cfg.Window.Kind != NoWindow {
		return
	}
	ttl := o.cfg.TTL.Milliseconds()
	for _, p := range o.parts {
		if p.wm == math.MinInt64 || (p.lastSweep != math.MinInt64 && p.wm-p.lastSweep < max(ttl/4, 1)) {
			continue
		}
		p.lastSweep = p.wm
		for id, s := range p.slots.all {
			if s.lastTs < satSub(p.wm, ttl) { // expired: the next record of the key starts anew
				o.remove(p, id, d)
			}
		}
	}
}

// finish puts the gathered outcomes in input order, records the batch's changes and keeps memory
// within its bound.
func (o *Operator) finish(d *delta, res *Result, g *gathered) {
	slices.SortStableFunc(g.emitted, func(a, b transform.Emitted) int { return cmp.Compare(a.Input, b.Input) })
	slices.SortStableFunc(g.rejected, func(a, b transform.Rejected) int { return cmp.Compare(a.Input, b.Input) })
	res.Emitted, res.Rejected = g.emitted, g.rejected
	for name, p := range o.parts {
		if _, ok := d.marks[name]; ok {
			d.marks[name] = mark{p.wm, p.maxTs}
		}
	}
	o.deltas = append(o.deltas, d)
	o.lastChanges = len(d.changes)
	o.spill()
	slots := 0
	wm := int64(math.MaxInt64)
	for _, p := range o.parts {
		slots += p.slots.len()
		wm = min(wm, p.wm)
	}
	o.m.Slots.Set(float64(slots))
	o.m.StateBytes.Set(float64(o.mem))
	o.m.Spilled.Set(float64(o.spilled))
	if wm != math.MinInt64 && wm != math.MaxInt64 && o.eventTime() {
		o.m.Watermark.Set(float64(wm) / 1000)
	}
}

// spill drops durable blobs from memory while the blobs held exceed the bound, down to 90% of it.
// A slot changed since the delta log was last compacted stays: the slots bucket, from which a
// spilled blob is read back, does not hold its state yet; the next commit is asked to compact. In
// partitioned mode nothing spills: the state log is read only when a partition is assigned.
func (o *Operator) spill() {
	if o.mem <= o.cfg.MemoryBytes || o.log != nil {
		return
	}
	target := o.cfg.MemoryBytes / 10 * 9
	for _, s := range o.single.slots.all {
		if o.mem <= target {
			return
		}
		if s.onDisk || s.state == nil {
			continue
		}
		if s.dirty > o.inSlots {
			o.compact = true
			continue
		}
		o.mem -= int64(len(s.state))
		s.state, s.onDisk = nil, true
		o.spilled++
	}
}

// String forms of paths, for messages.
func (p Path) String() string {
	s := "$"
	for _, seg := range p {
		s += "." + seg
	}
	return s
}

// endHeap orders slots by window end.
type endEntry struct {
	end int64
	id  slotID
	s   *slot
}

type endHeap []endEntry

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i].end < h[j].end }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(endEntry)) }
func (h *endHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// push and pop are container/heap's Push and Pop, step for step (the same order of equal ends),
// without boxing each entry in an interface (an allocation per slot).
func (h *endHeap) push(e endEntry) {
	*h = append(*h, e)
	q := *h
	for j := len(q) - 1; ; {
		i := (j - 1) / 2 // parent
		if i == j || !(q[j].end < q[i].end) {
			break
		}
		q[i], q[j] = q[j], q[i]
		j = i
	}
}

func (h *endHeap) pop() endEntry {
	q := *h
	n := len(q) - 1
	q[0], q[n] = q[n], q[0]
	for i := 0; ; {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 {
			break
		}
		j := j1
		if j2 := j1 + 1; j2 < n && q[j2].end < q[j1].end {
			j = j2
		}
		if !(q[j].end < q[i].end) {
			break
		}
		q[i], q[j] = q[j], q[i]
		i = j
	}
	e := q[n]
	q[n] = endEntry{}
	*h = q[:n]
	return e
}

// LatePolicy maps the manifest's late key.
func LatePolicy(s string) (LateKind, string) {
	switch s {
	case "", pipeline.LateDeadLetter:
		return LateDeadLetter, ""
	case pipeline.LateDrop:
		return LateDrop, ""
	}
	return LatePort, s
}
