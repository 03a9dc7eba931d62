package transform

// NoTimestamp is the Timestamp of a record that carries no time.
const NoTimestamp int64 = noTimestamp

// Record is a read-only, zero-copy view of one input record.
//
// Its byte slices point into the input frame, which the guest reuses for the next batch: a
// transform that keeps bytes beyond the Process call that handed them over must copy them.
// Writing into them is not allowed (the host does not see the change: PASS forwards the host's own
// copy of the record).
type Record struct {
	// Key is the record key; nil when the key is null (absent), empty when it is an empty key.
	Key []byte
	// Value is the record value.
	Value []byte
	// Timestamp is the record time in Unix milliseconds, or NoTimestamp.
	Timestamp int64
	// Index is the position of the record in its batch.
	Index int

	headers []byte
}

// Header returns the value of the first header named name, and whether there was one.
// A malformed header block (which a conforming host never sends) reads as no headers.
func (r Record) Header(name string) ([]byte, bool) {
	var out []byte
	found := false
	r.EachHeader(func(k, v []byte) bool {
		if string(k) == name {
			out, found = v, true
			return false
		}
		return true
	})
	return out, found
}

// EachHeader calls fn for each header in order until fn returns false. The slices are views into
// the input frame, valid during the Process call only.
func (r Record) EachHeader(fn func(key, value []byte) bool) {
	h := r.headers
	if len(h) < 4 {
		return
	}
	n := le.Uint32(h)
	p := uint64(4)
	for i := uint32(0); i < n; i++ {
		k, next, ok := lenPrefixed(h, p)
		if !ok {
			return
		}
		v, next2, ok := lenPrefixed(h, next)
		if !ok {
			return
		}
		p = next2
		if !fn(k, v) {
			return
		}
	}
}

func lenPrefixed(b []byte, p uint64) ([]byte, uint64, bool) {
	if p+4 > uint64(len(b)) {
		return nil, 0, false
	}
	n := uint64(le.Uint32(b[p:]))
	start := p + 4
	if start+n > uint64(len(b)) {
		return nil, 0, false
	}
	return b[start : start+n : start+n], start + n, true
}
