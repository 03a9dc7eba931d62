package abi

// Input frames (TFB1, ABI.md section 6). A host sizes a frame with RecordSize and HeadersSize,
// writes its header with PutFrameHeader, then each record with PutRecord, whose bytes go after the
// RecordDescs, from DataOffset(n) on.

// RecordSize is what one record adds to an input frame: its RecordDesc and its bytes, with
// headersLen from HeadersSize.
func RecordSize(keyLen, valueLen, headersLen int) int {
	return DescSize + keyLen + valueLen + headersLen
}

// HeadersSize is the encoded size of n headers whose keys and values total kvLen bytes; 0 when
// there are none.
func HeadersSize(n, kvLen int) int {
	if n == 0 {
		return 0
	}
	return 4 + 8*n + kvLen
}

// DataOffset is where the records' bytes start in a frame of n records (after the header and
// the RecordDescs).
func DataOffset(n int) int { return InHeaderSize + n*DescSize }

// PutFrameHeader writes the FrameHeader of a frame of n records, frameLen bytes in all.
func PutFrameHeader(dst []byte, n, frameLen int) {
	le.PutUint32(dst[0:], InMagic)
	le.PutUint16(dst[4:], Major)
	le.PutUint16(dst[6:], HostMinor)
	le.PutUint16(dst[8:], InHeaderSize)
	le.PutUint16(dst[10:], DescSize)
	le.PutUint32(dst[12:], KindRecords)
	le.PutUint32(dst[16:], uint32(n))
	le.PutUint32(dst[20:], 0)
	le.PutUint32(dst[24:], InHeaderSize)
	le.PutUint32(dst[28:], 0)
	le.PutUint32(dst[32:], uint32(DataOffset(n)))
	le.PutUint32(dst[36:], uint32(frameLen))
}

// Desc is a RecordDesc (input frame, section 6.2) or an OutDesc (result frame, section 7.3): the
// two share one layout.
type Desc struct {
	TimeMs         int64  // Unix ms; NoTimestamp: none (input) or the input's (output)
	Seq            uint64 // index of the (originating) input record in its frame
	KeyOff, KeyLen uint32 // KeyLen Inherit (output): the input's key
	ValOff, ValLen uint32
	HdrOff, HdrLen uint32 // HdrLen 0: no headers; Inherit (output): the input's
	Port           uint32 // output port index (OutDesc); 0 in a RecordDesc
	Flags          uint32 // FlagKeyNull
}

// PutDesc writes d at p[:DescSize].
func PutDesc(p []byte, d *Desc) {
	p = p[:DescSize]
	le.PutUint64(p[0:], uint64(d.TimeMs))
	le.PutUint64(p[8:], d.Seq)
	le.PutUint32(p[16:], d.KeyOff)
	le.PutUint32(p[20:], d.KeyLen)
	le.PutUint32(p[24:], d.ValOff)
	le.PutUint32(p[28:], d.ValLen)
	le.PutUint32(p[32:], d.HdrOff)
	le.PutUint32(p[36:], d.HdrLen)
	le.PutUint32(p[40:], d.Port)
	le.PutUint32(p[44:], d.Flags)
}

// PutRecord writes record i of an input frame: its key (nil for a null key), value and n headers
// (header(k) gives the k-th) at frame[pos:], and its RecordDesc. timeMs is the record's time in
// Unix ms, NoTimestamp for none. It returns the position after the record's bytes.
func PutRecord(frame []byte, i, pos int, key, value []byte, timeMs int64, n int, header func(k int) (string, []byte)) int {
	off := InHeaderSize + i*DescSize
	p := frame[off : off+DescSize : off+DescSize]
	le.PutUint64(p[0:], uint64(timeMs))
	le.PutUint64(p[8:], uint64(i))
	var flags uint32
	if key == nil {
		flags = FlagKeyNull
	}
	le.PutUint32(p[16:], uint32(pos))
	le.PutUint32(p[20:], uint32(len(key)))
	pos += copy(frame[pos:], key)
	le.PutUint32(p[24:], uint32(pos))
	le.PutUint32(p[28:], uint32(len(value)))
	pos += copy(frame[pos:], value)
	hdrOff := pos
	if n > 0 {
		pos += PutHeaders(frame[pos:], n)
		for k := 0; k < n; k++ {
			hk, hv := header(k)
			pos += PutHeader(frame[pos:], hk, hv)
		}
	}
	le.PutUint32(p[32:], uint32(hdrOff))
	le.PutUint32(p[36:], uint32(pos-hdrOff))
	le.PutUint32(p[40:], 0)
	le.PutUint32(p[44:], flags)
	return pos
}

// PutHeaders writes the count of an encoded header list and returns the bytes written (4).
func PutHeaders(dst []byte, n int) int {
	le.PutUint32(dst, uint32(n))
	return 4
}

// PutHeader writes one header of an encoded header list and returns the bytes written.
func PutHeader(dst []byte, key string, value []byte) int {
	le.PutUint32(dst, uint32(len(key)))
	n := 4 + copy(dst[4:], key)
	le.PutUint32(dst[n:], uint32(len(value)))
	n += 4
	return n + copy(dst[n:], value)
}

// EachHeader calls f with each header of the encoded header list b (section 6.2), in order, and
// reports a list that does not fit b. f gets views into b.
func EachHeader(b []byte, f func(key, value []byte)) error {
	if len(b) < 4 {
		return errorf("headers: %d bytes, shorter than their count", len(b))
	}
	n := le.Uint32(b)
	if uint64(n)*8 > uint64(len(b)) {
		return errorf("headers: count %d does not fit %d bytes", n, len(b))
	}
	p := uint32(4)
	next := func() ([]byte, error) {
		l, err := span(b, p, 4, "header length")
		if err != nil {
			return nil, err
		}
		p += 4
		s, err := span(b, p, le.Uint32(l), "header bytes")
		if err != nil {
			return nil, err
		}
		p += uint32(len(s))
		return s, nil
	}
	for i := uint32(0); i < n; i++ {
		k, err := next()
		if err != nil {
			return err
		}
		v, err := next()
		if err != nil {
			return err
		}
		f(k, v)
	}
	return nil
}
