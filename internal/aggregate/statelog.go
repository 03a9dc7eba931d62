package aggregate

import (
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Partitioned mode: when the source's partitions move between processes (a Kafka consumer
// group), each partition's state lives in the source's state log (connector.StateLog), so that
// it follows the partition to its new owner; the local store then holds no state.
//
// The log and the source's committed offsets are not written atomically, so every entry carries
// its version: the partition's position (offset) that the state reflects. When the committer
// has made a batch's positions durable, it appends the changed slots at the new position's
// version, then acks the source (which commits the offsets). A partition's new owner reads the
// log and takes, for each slot, the newest version before the first offset it reads: exactly
// the state of the offset the group committed, whatever was appended after it by a process that
// died, lost the partition or failed to commit. Older versions are deleted (the log is
// compacted) once a newer one is known committed, and versions past the committed offset are
// deleted by the owner that finds them.
//
// Watermarks are per partition in this mode, so that what a partition's windows hold does not
// depend on which other partitions its process owns.

// Entry keys: 's' + slot key (slotKey) + version, or 'm' + version for the partition's
// watermark. Versions are 8 bytes big-endian (offsets are not negative).
const (
	entrySlot = 's'
	entryMeta = 'm'
)

func slotEntryKey(id slotID, ver int64) []byte {
	k := append([]byte{entrySlot}, slotKey(id)...)
	return binary.BigEndian.AppendUint64(k, uint64(ver))
}

func metaEntryKey(ver int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{entryMeta}, uint64(ver))
}

// deleted is the value of a slot's entry when the slot was removed at that version.
var deletedValue = []byte{0}

type version struct {
	ver int64
	del bool
}

// UseStateLog puts the operator in partitioned mode with log. It must be called before the first
// batch; the stage must run on event time.
func (o *Operator) UseStateLog(log connector.StateLog) error {
	if !o.eventTime() || o.cfg.Early > 0 {
		return fmt.Errorf("its state follows the source's partitions between processes, which needs event time (time:) and no early updates: set time:, remove early:")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.log = log
	o.written = map[pkey][]version{}
	o.gone = map[string]bool{}
	o.resume = nil
	o.parts = map[string]*part{}
	return nil
}

// Assigned marks partitions given to this process: their state is read from the log before
// their next record is folded.
func (o *Operator) Assigned(partitions []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.log == nil {
		return
	}
	for _, name := range partitions {
		p := o.parts[name]
		if p == nil {
			p = newPart(name)
			o.parts[name] = p
		}
		p.restore = true
		delete(o.gone, name)
	}
}

// Released tells the operator that partitions are no longer this process's (revoked after their
// records were delivered, or lost when the group expelled the process). Their state is dropped;
// their records still in flight are dropped unfolded, so they close no window here (the next
// owner reads them again); and nothing of them is written to the state log any more, not even
// changes of batches folded before: a process that no longer owns a partition must not write
// versions its next owner may not see when it restores, nor delete any. They are read from the
// log again if the partitions come back (Assigned).
func (o *Operator) Released(partitions []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.log == nil {
		return
	}
	for _, name := range partitions {
		o.gone[name] = true
		if p := o.parts[name]; p != nil {
			for _, s := range p.slots.all {
				o.mem -= int64(len(s.state))
			}
			delete(o.parts, name)
		}
		for k := range o.written {
			if k.part == name {
				delete(o.written, k)
			}
		}
	}
	o.cleanup = slices.DeleteFunc(o.cleanup, func(e connector.StateEntry) bool { return o.gone[e.Partition] })
}

// released reports whether records of the partition are to be dropped unfolded. o.mu is held.
func (o *Operator) released(partition string) bool { return o.gone != nil && o.gone[partition] }

// restorePart replaces p's state with the newest versions in the log before first, the offset of
// the first record of the partition this process reads.
func (o *Operator) restorePart(ctx context.Context, p *part, first int64, d *delta) error {
	entries, err := o.log.Read(ctx, p.name)
	if err != nil {
		return fmt.Errorf("aggregate %q: read the state of partition %s from the state log: %w", o.stage, p.name, err)
	}
	latest := map[string][]byte{}
	var order []string
	for _, e := range entries {
		k := string(e.Key)
		if _, seen := latest[k]; !seen {
			order = append(order, k)
		}
		latest[k] = e.Value
	}
	type best struct {
		ver int64
		val []byte
	}
	slotsBest := map[slotID]best{}
	var metaBest *best
	var vers = map[slotID][]version{}
	var drop []connector.StateEntry
	tomb := func(k string) { drop = append(drop, connector.StateEntry{Partition: p.name, Key: []byte(k)}) }
	for _, k := range order {
		v := latest[k]
		if v == nil || len(k) < 9 {
			continue
		}
		ver := int64(binary.BigEndian.Uint64([]byte(k[len(k)-8:])))
		if ver >= first {
			tomb(k) // appended after the offset the group committed: never committed
			continue
		}
		switch k[0] {
		case entryMeta:
			if metaBest == nil || ver > metaBest.ver {
				metaBest = &best{ver, v}
			}
		case entrySlot:
			if len(k) < 17 {
				continue
			}
			id := idOf([]byte(k[1 : len(k)-8]))
			vers[id] = append(vers[id], version{ver: ver, del: len(v) == 1 && v[0] == 0})
			if b, ok := slotsBest[id]; !ok || ver > b.ver {
				slotsBest[id] = best{ver, v}
			}
		}
	}
	for _, s := range p.slots.all {
		o.mem -= int64(len(s.state))
	}
	*p = *newPart(p.name)
	for k := range o.written {
		if k.part == p.name {
			delete(o.written, k)
		}
	}
	if metaBest != nil && len(metaBest.val) == 16 {
		p.wm = int64(binary.LittleEndian.Uint64(metaBest.val))
		p.maxTs = int64(binary.LittleEndian.Uint64(metaBest.val[8:]))
	}
	for id, b := range slotsBest {
		vs := vers[id]
		slices.SortFunc(vs, func(a, b version) int { return int(min(max(a.ver-b.ver, -1), 1)) })
		for _, v := range vs[:len(vs)-1] {
			tomb(string(slotEntryKey(id, v.ver)))
		}
		if len(b.val) == 1 && b.val[0] == 0 {
			tomb(string(slotEntryKey(id, b.ver)))
			continue
		}
		s, err := decodeSlot(b.val)
		if err != nil {
			return fmt.Errorf("aggregate %q: the state log holds a damaged entry for key %q of partition %s: %v", o.stage, id.key, p.name, err)
		}
		if s.end != math.MaxInt64 && s.end <= p.wm {
			// A window the watermark had closed: it was emitted and deleted, and this is an
			// older version whose deletion was compacted away (a version written by a process
			// that had lost the partition, after its next owner restored). Restoring it would
			// emit it again with part of its records.
			tomb(string(slotEntryKey(id, b.ver)))
			continue
		}
		s.key = id.key
		p.slots.put(id, s)
		o.mem += int64(len(s.state))
		o.written[pkey{p.name, id}] = []version{{ver: b.ver}}
		if s.end != math.MaxInt64 {
			p.ends = append(p.ends, endEntry{end: s.end, id: id, s: s})
		}
		if o.cfg.Window.Kind == Session {
			p.sessions[id.key] = append(p.sessions[id.key], id.start)
		}
	}
	heap.Init(&p.ends)
	o.cleanup = append(o.cleanup, drop...)
	return nil
}

// logEntries are the state log entries of a commit: each changed slot and watermark at the
// version of its partition's position, and the deletions due.
func (c *Commit) logEntries(positions []connector.Position, gone map[string]bool) []connector.StateEntry {
	vers := map[string]int64{}
	for _, p := range positions {
		if !gone[p.Partition] {
			vers[p.Partition] = p.Offset
		}
	}
	changes := map[pkey]*change{}
	var keys []pkey
	marks := map[string]mark{}
	for _, d := range c.deltas {
		for n := range d.changes {
			k, ch := d.changes[n].k, &d.changes[n].ch
			if _, ok := changes[k]; !ok {
				keys = append(keys, k)
			}
			changes[k] = ch
		}
		for name, m := range d.marks {
			marks[name] = m
		}
	}
	out := slices.DeleteFunc(c.cleanup, func(e connector.StateEntry) bool { return gone[e.Partition] })
	for _, k := range keys {
		ver, ok := vers[k.part]
		if !ok {
			continue // no position of the partition in this commit: nothing of it changed
		}
		ch := changes[k]
		v := deletedValue
		if !ch.del {
			v = encodeChange(ch)
		}
		out = append(out, connector.StateEntry{Partition: k.part, Key: slotEntryKey(k.id, ver), Value: v})
		c.written = append(c.written, writtenVersion{k, version{ver: ver, del: ch.del}})
	}
	for name, m := range marks {
		if ver, ok := vers[name]; ok {
			v := binary.LittleEndian.AppendUint64(nil, uint64(m.wm))
			out = append(out, connector.StateEntry{Partition: name, Key: metaEntryKey(ver), Value: binary.LittleEndian.AppendUint64(v, uint64(m.maxTs))})
			c.written = append(c.written, writtenVersion{pkey{name, metaID}, version{ver: ver}})
		}
	}
	return out
}

// metaID stands for a partition's watermark entries in Operator.written.
var metaID = slotID{key: "\x00meta", start: math.MinInt64}

type writtenVersion struct {
	k pkey
	v version
}

// AppendLog appends the commit's changes to the state log (partitioned mode) and returns once
// they are durable. positions are the positions the commit saved.
func (c *Commit) AppendLog(ctx context.Context, positions []connector.Position) error {
	o := c.o
	if o.log == nil {
		return nil
	}
	// Partitions released since these batches were folded are left out (Released).
	o.mu.Lock()
	gone := maps.Clone(o.gone)
	o.mu.Unlock()
	entries := c.logEntries(positions, gone)
	if len(entries) == 0 {
		return nil
	}
	if err := o.log.Append(ctx, entries); err != nil {
		return fmt.Errorf("aggregate %q: append to the state log: %w", o.stage, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, w := range c.written {
		if !o.gone[w.k.part] {
			o.written[w.k] = append(o.written[w.k], w.v)
		}
	}
	return nil
}

// Acked tells the operator the source committed positions: in partitioned mode, the versions
// they make obsolete are deleted from the log with the next commit.
func (o *Operator) Acked(positions []connector.Position) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.log == nil {
		return
	}
	acked := map[string]int64{}
	for _, p := range positions {
		if !o.gone[p.Partition] {
			acked[p.Partition] = p.Offset
		}
	}
	for k, vs := range o.written {
		off, ok := acked[k.part]
		if !ok {
			continue
		}
		// The newest version at or before the committed offset is the committed state; older
		// ones are obsolete, and so is a committed deletion.
		n := 0
		for n < len(vs) && vs[n].ver <= off {
			n++
		}
		if n == 0 {
			continue
		}
		keep := n - 1
		if vs[keep].del {
			keep = n
		}
		for _, v := range vs[:keep] {
			o.cleanup = append(o.cleanup, o.tombstone(k, v.ver))
		}
		if rest := vs[keep:]; len(rest) == 0 {
			delete(o.written, k)
		} else {
			o.written[k] = slices.Clone(rest)
		}
	}
}

func (o *Operator) tombstone(k pkey, ver int64) connector.StateEntry {
	key := slotEntryKey(k.id, ver)
	if k.id == metaID {
		key = metaEntryKey(ver)
	}
	return connector.StateEntry{Partition: k.part, Key: key}
}
