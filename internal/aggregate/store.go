package aggregate

import (
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Store is the embedded store (the checkpoint store's bbolt file) that holds the operators'
// state. Each stage has a bucket "aggregate/PIPELINE/STAGE" with a "meta" record, a "slots"
// bucket: one record per slot, keyed by its window start (8 bytes, big-endian, sign bit flipped
// so that keys sort by time) and its key; and a "log" bucket, the changes made since the slots
// bucket was last brought up to date (the delta log, see Commit.Write).
type Store struct {
	DB *bolt.DB
}

// BucketPrefix is the prefix of a pipeline's state buckets: the checkpoint store's Reset of a
// pipeline removes them with its positions.
func BucketPrefix(pipeline string) string { return "aggregate/" + pipeline + "/" }

func bucketName(pipeline, stage string) []byte { return []byte(BucketPrefix(pipeline) + stage) }

var (
	slotsBucket = []byte("slots")
	logBucket   = []byte("log")
	metaKey     = []byte("meta")
)

// meta is a stage's record of what wrote its state.
type meta struct {
	Format       int    `json:"format"`
	Module       string `json:"module"`
	StateVersion int    `json:"state_version"`
	Watermark    int64  `json:"watermark"`
	MaxTime      int64  `json:"max_time"`
	LogBytes     int64  `json:"log_bytes,omitempty"` // the delta log's size
}

// Store formats: 2 has the delta log beside the slots bucket; 1, without it, is read too.
const (
	storeFormat      = 2
	storeFormatNoLog = 1
)

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
// log): the state that matches the positions saved with it. A delta log left by the last run is
// first compacted into the slots bucket, in a transaction of its own that changes no state.
// Blobs beyond the memory bound stay in the store. It fails with ErrStateMismatch when the state
// was written by another module or state version, and with a clear error when a record is
// damaged.
func (o *Operator) Restore() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.log != nil {
		return nil
	}
	var m meta
	var logged bool
	err := o.store.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(o.pipeline, o.stage))
		if b == nil {
			return nil
		}
		var err error
		if m, err = o.checkMeta(b); err != nil {
			return err
		}
		logged = b.Bucket(logBucket) != nil
		return nil
	})
	if err != nil || m.Format == 0 {
		return err
	}
	if logged {
		err := o.store.DB.Update(func(tx *bolt.Tx) error {
			_, err := compactLog(tx.Bucket(bucketName(o.pipeline, o.stage)), nil, m.LogBytes)
			return err
		})
		if err != nil {
			return fmt.Errorf("aggregate %q: compact the stored state's delta log: %w", o.stage, err)
		}
	}
	return o.store.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(o.pipeline, o.stage))
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
			// Whether the last early update before the restart covered this state is not
			// stored: emit every open slot again at the first early update, or records folded
			// and saved after the last one would not be seen before the window closes.
			s.early = o.cfg.Early > 0
			p.slots.put(id, s)
			if s.end != math.MaxInt64 {
				p.ends = append(p.ends, endEntry{end: s.end, id: id, s: s})
			}
			if o.cfg.Window.Kind == Session {
				p.sessions[id.key] = append(p.sessions[id.key], id.start)
			}
			return nil
		})
	})
}

// checkMeta reads a stage bucket's meta record and checks that this operator can resume from it.
func (o *Operator) checkMeta(b *bolt.Bucket) (meta, error) {
	name, version := o.g.Module()
	var m meta
	if raw := b.Get(metaKey); raw != nil {
		if err := json.Unmarshal(raw, &m); err != nil {
			return meta{}, fmt.Errorf("the stored aggregate state's metadata is damaged: %v; start over with `sluice run --reset`", err)
		}
	}
	if m.Format != storeFormat && m.Format != storeFormatNoLog {
		return meta{}, fmt.Errorf("the stored aggregate state has format %d, this version reads %d; start over with `sluice run --reset`", m.Format, storeFormat)
	}
	if m.Module != name || m.StateVersion != version {
		return meta{}, fmt.Errorf("%w: module %s with state_version %d wrote it, and this stage runs %s with state_version %d; the state layouts differ, so it cannot resume from it. Run the old module, or start over with `sluice run --reset` (it forgets the positions and the state)",
			ErrStateMismatch, m.Module, m.StateVersion, name, version)
	}
	return m, nil
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
	c := &Commit{o: o, deltas: o.deltas[:n:n], through: through, cleanup: o.cleanup, compact: o.compact}
	o.deltas = o.deltas[n:]
	o.cleanup = nil
	o.compact = false
	return c
}

// Commit is a set of batches' changes to write in the checkpoint store's transaction (and, in
// partitioned mode, in the state log).
type Commit struct {
	o         *Operator
	deltas    []*delta
	through   uint64
	compact   bool                   // compact the delta log, whatever its size
	compacted bool                   // Write compacted it
	cleanup   []connector.StateEntry // partitioned: deletions due in the state log
	written   []writtenVersion       // partitioned: the versions AppendLog wrote
}

// The delta log: a commit appends the last change of each slot its batches changed, in the order
// they were made, as one record of the stage's "log" bucket (keyed by a sequence number), instead
// of a Put or Delete of each slot in the "slots" bucket. A slot made and closed between two
// compactions never reaches the slots bucket. The state is the slots bucket with the log's
// records applied in order. When the log holds compactLogBytes, or the operator must spill
// blobs (which it reads back from the slots bucket), the commit applies the log and its own
// changes to the slots bucket, in key order, and empties the log. Both happen in the transaction
// that saves the positions, so the state on disk always matches them.
//
// A log record is a sequence of entries: a flag byte (0 put, 1 delete), the slot's store key
// (uvarint length, bytes) and, for a put, its slot record (uvarint length, bytes).
const compactLogBytes = 8 << 20

const (
	logPut = 0
	logDel = 1
)

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
	old := meta{Watermark: math.MinInt64, MaxTime: math.MinInt64}
	if raw := b.Get(metaKey); raw != nil {
		var m meta
		if json.Unmarshal(raw, &m) == nil {
			old = m
		}
	}
	m := mark{old.Watermark, old.MaxTime}
	for _, d := range c.deltas {
		if dm, ok := d.marks[""]; ok {
			m = dm
		}
	}
	rec := c.logRecord()
	logBytes := old.LogBytes
	switch {
	case len(rec) == 0:
	case c.compact || logBytes+int64(len(rec)) >= o.compactAt:
		if _, err := compactLog(b, rec, logBytes); err != nil {
			return err
		}
		logBytes, c.compacted = 0, true
	default:
		lb, err := b.CreateBucketIfNotExists(logBucket)
		if err != nil {
			return err
		}
		seq, err := lb.NextSequence()
		if err != nil {
			return err
		}
		if err := lb.Put(binary.BigEndian.AppendUint64(nil, seq), rec); err != nil {
			return err
		}
		logBytes += int64(len(rec))
	}
	name, version := o.g.Module()
	raw, _ := json.Marshal(meta{Format: storeFormat, Module: name, StateVersion: version, Watermark: m.wm, MaxTime: m.maxTs, LogBytes: logBytes})
	return b.Put(metaKey, raw)
}

// logRecord is the commit's delta log record: the last change of each slot its batches changed,
// in the order they were made. A slot's change is found last by walking the changes from the
// newest, marking each slot (a removed slot, and a new one of the same id, are different slots:
// both changes are kept, in order).
func (c *Commit) logRecord() []byte {
	n, size := 0, 0
	for _, d := range c.deltas {
		n += len(d.changes)
	}
	keep := make([]*changed, 0, n)
	for i := len(c.deltas) - 1; i >= 0; i-- {
		ch := c.deltas[i].changes
		for k := len(ch) - 1; k >= 0; k-- {
			e := &ch[k]
			if e.s.logged == c.through {
				continue // superseded
			}
			e.s.logged = c.through
			keep = append(keep, e)
			size += 1 + 2*binary.MaxVarintLen32 + 8 + len(e.k.id.key) + 26 + len(e.ch.state)
		}
	}
	rec := make([]byte, 0, size)
	for k := len(keep) - 1; k >= 0; k-- {
		e := keep[k]
		flag := byte(logPut)
		if e.ch.del {
			flag = logDel
		}
		rec = append(rec, flag)
		rec = binary.AppendUvarint(rec, uint64(8+len(e.k.id.key)))
		rec = binary.BigEndian.AppendUint64(rec, uint64(e.k.id.start)^(1<<63))
		rec = append(rec, e.k.id.key...)
		if !e.ch.del {
			rec = binary.AppendUvarint(rec, uint64(26+len(e.ch.state)))
			rec = appendChange(rec, &e.ch)
		}
	}
	return rec
}

// logEntry is an entry of the delta log.
type logEntry struct {
	key, val []byte // val nil: deleted
}

// parseLog appends the entries of log record rec to es.
func parseLog(es []logEntry, rec []byte) ([]logEntry, error) {
	bad := errors.New("a damaged delta log record in the stored aggregate state; start over with `sluice run --reset`")
	for len(rec) > 0 {
		flag := rec[0]
		kl, n := binary.Uvarint(rec[1:])
		if n <= 0 || flag > logDel || uint64(len(rec)-1-n) < kl || kl < 8 {
			return nil, bad
		}
		rec = rec[1+n:]
		e := logEntry{key: rec[:kl:kl]}
		rec = rec[kl:]
		if flag == logPut {
			vl, n := binary.Uvarint(rec)
			if n <= 0 || uint64(len(rec)-n) < vl {
				return nil, bad
			}
			e.val = rec[n : n+int(vl) : n+int(vl)]
			rec = rec[n+int(vl):]
		}
		es = append(es, e)
	}
	return es, nil
}

// compactLog applies the delta log of stage bucket b, about logBytes, then the log record rec
// (which may be nil), to the slots bucket, and removes the log. It returns the number of slots
// written.
func compactLog(b *bolt.Bucket, rec []byte, logBytes int64) (int, error) {
	es := make([]logEntry, 0, (logBytes+int64(len(rec)))/64)
	// The log's records are copied out: their pages are freed with the bucket within the
	// transaction.
	if lb := b.Bucket(logBucket); lb != nil {
		buf := make([]byte, 0, logBytes)
		if err := lb.ForEach(func(_, v []byte) error { buf = append(buf, v...); return nil }); err != nil {
			return 0, err
		}
		var err error
		if es, err = parseLog(es, buf); err != nil {
			return 0, err
		}
		if err := b.DeleteBucket(logBucket); err != nil {
			return 0, err
		}
	}
	var err error
	if es, err = parseLog(es, rec); err != nil {
		return 0, err
	}
	// The last entry of each key, in key order.
	last := make(map[string]int, len(es))
	for i := range es {
		last[unsafe.String(unsafe.SliceData(es[i].key), len(es[i].key))] = i
	}
	// In the store's key order (the window start, then the key: bytes.Compare of the store
	// keys), compared first on their first 16 bytes held in the sort entries themselves, so that
	// most comparisons do not read the keys, which lie all over the log.
	order := make([]sortKey, 0, len(last))
	for _, i := range last {
		order = append(order, sortKeyOf(es[i].key, i))
	}
	slices.SortFunc(order, func(x, y sortKey) int {
		if c := cmp.Or(cmp.Compare(x.hi, y.hi), cmp.Compare(x.lo, y.lo)); c != 0 {
			return c
		}
		return bytes.Compare(es[x.i].key, es[y.i].key)
	})
	sb, err := b.CreateBucketIfNotExists(slotsBucket)
	if err != nil {
		return 0, err
	}
	for _, o := range order {
		e := es[o.i]
		if e.val == nil {
			if err := sb.Delete(e.key); err != nil {
				return 0, err
			}
			continue
		}
		if err := sb.Put(e.key, e.val); err != nil {
			return 0, err
		}
	}
	return len(order), nil
}

// sortKey is a store key's first 16 bytes, big-endian, zero-padded, and the index of its entry:
// two keys whose sortKeys differ compare as their hi and lo do (a shorter key that is a prefix of
// the other pads with zeros, and sorts first either way); equal ones are compared in full.
type sortKey struct {
	hi, lo uint64
	i      int
}

func sortKeyOf(k []byte, i int) sortKey {
	var b [16]byte
	copy(b[:], k)
	return sortKey{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), i: i}
}

// Done records that the commit is durable; once the delta log is compacted, the slots the
// commit wrote may leave memory.
func (c *Commit) Done() {
	c.o.mu.Lock()
	defer c.o.mu.Unlock()
	c.o.committed = max(c.o.committed, c.through)
	if c.compacted {
		c.o.inSlots = max(c.o.inSlots, c.through)
	}
}
