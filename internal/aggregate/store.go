package aggregate

import (
	"cmp"
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Store is the embedded store (the checkpoint store's bbolt file) that holds the operators'
// state. Each stage has a bucket "aggregate/PIPELINE/STAGE" with a "meta" record and a "slots"
// bucket: one record per slot, keyed by its window start (8 bytes, big-endian, sign bit flipped
// so that keys sort by time) and its key.
type Store struct {
	DB *bolt.DB
}

// BucketPrefix is the prefix of a pipeline's state buckets: the checkpoint store's Reset of a
// pipeline removes them with its positions.
func BucketPrefix(pipeline string) string { return "aggregate/" + pipeline + "/" }

func bucketName(pipeline, stage string) []byte { return []byte(BucketPrefix(pipeline) + stage) }

var (
	slotsBucket = []byte("slots")
	metaKey     = []byte("meta")
)

// meta is a stage's record of what wrote its state.
type meta struct {
	Format       int    `json:"format"`
	Module       string `json:"module"`
	StateVersion int    `json:"state_version"`
	Watermark    int64  `json:"watermark"`
	MaxTime      int64  `json:"max_time"`
	Committed    uint64 `json:"-"`
}

const storeFormat = 1

func slotKey(id slotID) []byte {
	k := make([]byte, 8+len(id.key))
	binary.BigEndian.PutUint64(k, uint64(id.start)^(1<<63))
	copy(k[8:], id.key)
	return k
}

func idOf(k []byte) slotID {
	return slotID{start: int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), key: string(k[8:])}
}

// Slot record: version 1, flags (bit 0: key null), start, end, last event time (int64 LE), state.
func encodeChange(c *change) []byte { return appendChange(nil, c) }

// appendChange appends c's slot record to dst.
func appendChange(dst []byte, c *change) []byte {
	n := len(dst)
	dst = slices.Grow(dst, 2+24+len(c.state))[:n+2+24+len(c.state)]
	v := dst[n:]
	v[0] = 1
	v[1] = 0
	if c.keyNull {
		v[1] = 1
	}
	binary.LittleEndian.PutUint64(v[2:], uint64(c.start))
	binary.LittleEndian.PutUint64(v[10:], uint64(c.end))
	binary.LittleEndian.PutUint64(v[18:], uint64(c.lastTs))
	copy(v[26:], c.state)
	return dst
}

func decodeSlot(v []byte) (*slot, error) {
	if len(v) < 26 || v[0] != 1 {
		return nil, errors.New("unknown slot record")
	}
	s := &slot{keyNull: v[1]&1 != 0,
		start:  int64(binary.LittleEndian.Uint64(v[2:])),
		end:    int64(binary.LittleEndian.Uint64(v[10:])),
		lastTs: int64(binary.LittleEndian.Uint64(v[18:]))}
	if len(v) > 26 {
		s.state = append([]byte(nil), v[26:]...)
	}
	return s, nil
}

// ErrStateMismatch is wrapped by Restore's error when the stored state was written by another
// module or another state version.
var ErrStateMismatch = errors.New("the stored aggregate state was written by an incompatible module")

// loadState reads the blob of a spilled slot.
func (s Store) loadState(pipeline, stage string, id slotID) ([]byte, error) {
	var st []byte
	err := s.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(pipeline, stage))
		if b == nil || b.Bucket(slotsBucket) == nil {
			return errors.New("its bucket is missing")
		}
		v := b.Bucket(slotsBucket).Get(slotKey(id))
		if v == nil {
			return errors.New("it is missing")
		}
		sl, err := decodeSlot(v)
		if err != nil {
			return err
		}
		st = sl.state
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("aggregate %q: read the state of key %q back from the store: %w", stage, id.key, err)
	}
	return st, nil
}

// Restore loads the stage's durable state (not in partitioned mode, whose state is in the state
// log): the state that matches the positions saved with it.
// Blobs beyond the memory bound stay in the store. It fails with ErrStateMismatch when the state
// was written by another module or state version, and with a clear error when a record is
// damaged.
func (o *Operator) Restore() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.log != nil {
		return nil
	}
	name, version := o.g.Module()
	return o.store.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(o.pipeline, o.stage))
		if b == nil {
			return nil
		}
		var m meta
		if raw := b.Get(metaKey); raw != nil {
			if err := json.Unmarshal(raw, &m); err != nil {
				return fmt.Errorf("the stored aggregate state's metadata is damaged: %v; start over with `sluice run --reset`", err)
			}
		}
		if m.Format != storeFormat {
			return fmt.Errorf("the stored aggregate state has format %d, this version reads %d; start over with `sluice run --reset`", m.Format, storeFormat)
		}
		if m.Module != name || m.StateVersion != version {
			return fmt.Errorf("%w: module %s with state_version %d wrote it, and this stage runs %s with state_version %d; the state layouts differ, so it cannot resume from it. Run the old module, or start over with `sluice run --reset` (it forgets the positions and the state)",
				ErrStateMismatch, m.Module, m.StateVersion, name, version)
		}
		p := o.single
		p.wm, p.maxTs = m.Watermark, m.MaxTime
		sb := b.Bucket(slotsBucket)
		if sb == nil {
			return nil
		}
		defer heap.Init(&p.ends)
		return sb.ForEach(func(k, v []byte) error {
			if len(k) < 8 {
				return errors.New("a damaged slot key in the stored aggregate state; start over with `sluice run --reset`")
			}
			id := idOf(k)
			s, err := decodeSlot(v)
			if err != nil {
				return fmt.Errorf("the stored aggregate state of key %q is damaged: %v; start over with `sluice run --reset`", id.key, err)
			}
			if o.mem+int64(len(s.state)) > o.cfg.MemoryBytes {
				s.state, s.onDisk = nil, true
				o.spilled++
			}
			o.mem += int64(len(s.state))
			s.key = id.key
			p.slots[id] = s
			if s.end != math.MaxInt64 {
				p.ends = append(p.ends, endEntry{end: s.end, id: id})
			}
			if o.cfg.Window.Kind == Session {
				p.sessions[id.key] = append(p.sessions[id.key], id.start)
			}
			return nil
		})
	})
}

// Committable takes the changes of the batches up to through (every batch up to it is delivered),
// for Commit. It returns nil when there are none.
func (o *Operator) Committable(through uint64) *Commit {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for n < len(o.deltas) && o.deltas[n].batch <= through {
		n++
	}
	if n == 0 {
		return nil
	}
	c := &Commit{o: o, deltas: o.deltas[:n:n], through: through, cleanup: o.cleanup}
	o.deltas = o.deltas[n:]
	o.cleanup = nil
	return c
}

// Commit is a set of batches' changes to write in the checkpoint store's transaction (and, in
// partitioned mode, in the state log).
type Commit struct {
	o       *Operator
	deltas  []*delta
	through uint64
	cleanup []connector.StateEntry // partitioned: deletions due in the state log
	written []writtenVersion       // partitioned: the versions AppendLog wrote
}

// Write puts the changes in tx, the transaction that saves the positions they reflect.
func (c *Commit) Write(tx *bolt.Tx) error {
	o := c.o
	if o.log != nil {
		return nil // partitioned: the state goes to the state log (AppendLog)
	}
	b, err := tx.CreateBucketIfNotExists(bucketName(o.pipeline, o.stage))
	if err != nil {
		return err
	}
	sb, err := b.CreateBucketIfNotExists(slotsBucket)
	if err != nil {
		return err
	}
	m := mark{math.MinInt64, math.MinInt64}
	if raw := b.Get(metaKey); raw != nil {
		var old meta
		if json.Unmarshal(raw, &old) == nil {
			m = mark{old.Watermark, old.MaxTime}
		}
	}
	// The values stay in one buffer until the transaction ends (bbolt keeps them, not copies).
	ws := c.writes()
	size := 0
	for _, w := range ws {
		if !w.ch.del {
			size += 26 + len(w.ch.state)
		}
	}
	vals := make([]byte, 0, size)
	var key []byte
	for _, w := range ws {
		key = binary.BigEndian.AppendUint64(key[:0], uint64(w.id.start)^(1<<63))
		key = append(key, w.id.key...)
		if w.ch.del {
			if err := sb.Delete(key); err != nil {
				return err
			}
			continue
		}
		n := len(vals)
		vals = appendChange(vals, w.ch)
		if err := sb.Put(key, vals[n:len(vals):len(vals)]); err != nil {
			return err
		}
	}
	for _, d := range c.deltas {
		if dm, ok := d.marks[""]; ok {
			m = dm
		}
	}
	name, version := o.g.Module()
	raw, _ := json.Marshal(meta{Format: storeFormat, Module: name, StateVersion: version, Watermark: m.wm, MaxTime: m.maxTs})
	return b.Put(metaKey, raw)
}

// slotWrite is the last change of one slot in a commit.
type slotWrite struct {
	id  slotID
	seq int // its place among the commit's changes
	ch  *change
}

// writes is the last change of each slot the commit's batches changed, in key order. A bbolt
// transaction keeps the nodes it changes unsplit until it commits, so that Puts of new slots in
// random order, or Deletes of slots created by the same commit, move a node's whole entry list
// each time: with tens of thousands of slots that made a commit quadratic. In key order new slots
// are appended, and a slot created and deleted within the commit is written once, as a Delete.
//
// The batches' changes are sorted by store key (window start, then key: slotKey's order) and
// their order, and the last of each slot is kept.
func (c *Commit) writes() []slotWrite {
	n := 0
	for _, d := range c.deltas {
		n += len(d.changes)
	}
	ws := make([]slotWrite, 0, n)
	for _, d := range c.deltas {
		for k := range d.changes {
			e := &d.changes[k]
			ws = append(ws, slotWrite{id: e.k.id, seq: len(ws), ch: &e.ch})
		}
	}
	slices.SortFunc(ws, func(a, b slotWrite) int {
		return cmp.Or(cmp.Compare(a.id.start, b.id.start), strings.Compare(a.id.key, b.id.key), cmp.Compare(a.seq, b.seq))
	})
	out := ws[:0]
	for k := range ws {
		if k+1 < len(ws) && ws[k+1].id == ws[k].id {
			continue // superseded
		}
		out = append(out, ws[k])
	}
	return out
}

// Done records that the commit is durable: its slots may leave memory.
func (c *Commit) Done() {
	c.o.mu.Lock()
	defer c.o.mu.Unlock()
	c.o.committed = max(c.o.committed, c.through)
}
