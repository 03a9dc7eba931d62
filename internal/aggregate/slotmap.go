package aggregate

import "hash/maphash"

// slotMap holds a partition's slots by id. It is a Go map keyed by a 64-bit hash of the id,
// whose value is the first of the slots of that hash, chained by slot.next (two ids share a hash
// almost never): a lookup compares integers in the map and the id with the slot's own fields,
// which it reads next anyway, instead of a map keyed by slotID comparing the key strings.
type slotMap struct {
	seed maphash.Seed
	m    map[uint64]*slot
	n    int
}

func newSlotMap() slotMap { return slotMap{seed: maphash.MakeSeed(), m: map[uint64]*slot{}} }

func (sm *slotMap) hash(id slotID) uint64 {
	return maphash.String(sm.seed, id.key) ^ uint64(id.start)*0x9e3779b97f4a7c15
}

// get returns the slot of id, or nil.
func (sm *slotMap) get(id slotID) *slot {
	for s := sm.m[sm.hash(id)]; s != nil; s = s.next {
		if s.idStart == id.start && s.key == id.key {
			return s
		}
	}
	return nil
}

// put adds slot s under id, which must not be held.
func (sm *slotMap) put(id slotID, s *slot) {
	h := sm.hash(id)
	s.idStart = id.start
	s.next = sm.m[h]
	sm.m[h] = s
	sm.n++
}

// del removes the slot of id, if held.
func (sm *slotMap) del(id slotID) {
	h := sm.hash(id)
	var prev *slot
	for s := sm.m[h]; s != nil; prev, s = s, s.next {
		if s.idStart != id.start || s.key != id.key {
			continue
		}
		switch {
		case prev != nil:
			prev.next = s.next
		case s.next != nil:
			sm.m[h] = s.next
		default:
			delete(sm.m, h)
		}
		s.next = nil
		sm.n--
		return
	}
}

// len is the number of slots held.
func (sm *slotMap) len() int { return sm.n }

// all yields each slot with its id, in no particular order. The slot yielded may be removed
// during the walk.
func (sm *slotMap) all(yield func(slotID, *slot) bool) {
	for _, s := range sm.m {
		for s != nil {
			next := s.next
			if !yield(slotID{key: s.key, start: s.idStart}, s) {
				return
			}
			s = next
		}
	}
}
