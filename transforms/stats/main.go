// Command stats is an aggregate module: per slot (a key in a window) it keeps the count, minimum,
// maximum, mean, population standard deviation and first and last values of one numeric field,
// and emits them as one JSON record when the window closes. See README.md.
package main

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"

	"github.com/sluicehq/sluice/sdk/go/aggregate"
	"github.com/sluicehq/sluice/transforms/internal/numfield"
)

func main() {}

const schema = `{"type":"object","additionalProperties":false,"properties":{
"field":{"type":"string","minLength":1}}}`

// field is set once per instance at init.
var field *numfield.Field

func init() {
	aggregate.Register(aggregate.Meta{
		Name:         "stats",
		Version:      "1.0.0",
		ConfigSchema: schema,
		StateVersion: 1,
	}, aggregate.Funcs{Accumulate: accumulate, Emit: emit, Merge: merge}, aggregate.OnInit(setup))
}

func setup() error {
	var c struct {
		Field *string `json:"field"`
	}
	if err := aggregate.Config(&c); err != nil {
		return err
	}
	name := "price"
	if c.Field != nil {
		name = *c.Field
	}
	f, err := numfield.New(name)
	if err != nil {
		return errors.New("config: " + err.Error())
	}
	field = f
	return nil
}

// stats is a slot's state. Its encoding (state_version 1) is 72 bytes, little-endian:
//
//	 0 u64 count      number of values folded
//	 8 f64 mean       running mean (Welford)
//	16 f64 m2         sum of squared differences from the mean (Welford)
//	24 f64 min
//	32 f64 max
//	40 f64 first      value of the record with the smallest time
//	48 i64 first_ts   its time, Unix ms
//	56 f64 last       value of the record with the largest time
//	64 i64 last_ts    its time, Unix ms
type stats struct {
	count    uint64
	mean, m2 float64
	min, max float64
	first    float64
	firstTs  int64
	last     float64
	lastTs   int64
}

const stateSize = 72

var le = binary.LittleEndian

func (s *stats) decode(b []byte) error {
	if len(b) != stateSize {
		return errors.New("stats: a state of " + strconv.Itoa(len(b)) + " bytes, want " + strconv.Itoa(stateSize))
	}
	s.count = le.Uint64(b[0:])
	s.mean = math.Float64frombits(le.Uint64(b[8:]))
	s.m2 = math.Float64frombits(le.Uint64(b[16:]))
	s.min = math.Float64frombits(le.Uint64(b[24:]))
	s.max = math.Float64frombits(le.Uint64(b[32:]))
	s.first = math.Float64frombits(le.Uint64(b[40:]))
	s.firstTs = int64(le.Uint64(b[48:]))
	s.last = math.Float64frombits(le.Uint64(b[56:]))
	s.lastTs = int64(le.Uint64(b[64:]))
	if s.count == 0 {
		return errors.New("stats: a state with a count of 0")
	}
	return nil
}

func (s *stats) encode(dst []byte) []byte {
	dst = le.AppendUint64(dst, s.count)
	dst = le.AppendUint64(dst, math.Float64bits(s.mean))
	dst = le.AppendUint64(dst, math.Float64bits(s.m2))
	dst = le.AppendUint64(dst, math.Float64bits(s.min))
	dst = le.AppendUint64(dst, math.Float64bits(s.max))
	dst = le.AppendUint64(dst, math.Float64bits(s.first))
	dst = le.AppendUint64(dst, uint64(s.firstTs))
	dst = le.AppendUint64(dst, math.Float64bits(s.last))
	return le.AppendUint64(dst, uint64(s.lastTs))
}

// add folds the value x of a record of time ts (Welford's algorithm). first keeps the earliest
// time and last the latest; on equal times first keeps the value folded first and last takes the
// value folded last.
func (s *stats) add(x float64, ts int64) {
	if s.count == 0 {
		*s = stats{count: 1, mean: x, min: x, max: x, first: x, firstTs: ts, last: x, lastTs: ts}
		return
	}
	s.count++
	d := x - s.mean
	s.mean += d / float64(s.count)
	s.m2 += d * (x - s.mean)
	s.min = math.Min(s.min, x)
	s.max = math.Max(s.max, x)
	if ts < s.firstTs {
		s.first, s.firstTs = x, ts
	}
	if ts >= s.lastTs {
		s.last, s.lastTs = x, ts
	}
}

// merge folds o into s (Chan et al.'s parallel combination of count, mean and m2), with s's values
// folded before o's: on equal times first keeps s's and last takes o's.
func (s *stats) merge(o *stats) {
	n := s.count + o.count
	d := o.mean - s.mean
	na, nb := float64(s.count), float64(o.count)
	s.mean += d * nb / float64(n)
	s.m2 += o.m2 + d*d*na*nb/float64(n)
	s.count = n
	s.min = math.Min(s.min, o.min)
	s.max = math.Max(s.max, o.max)
	if o.firstTs < s.firstTs {
		s.first, s.firstTs = o.first, o.firstTs
	}
	if o.lastTs >= s.lastTs {
		s.last, s.lastTs = o.last, o.lastTs
	}
}

// stddev is the population standard deviation: 0 for one value.
func (s *stats) stddev() float64 { return math.Sqrt(math.Max(s.m2, 0) / float64(s.count)) }

func accumulate(st *aggregate.Step, state []byte) ([]byte, error) {
	x, err := field.Number(st.Record.Value)
	if err != nil {
		return state, err
	}
	var s stats
	if len(state) > 0 {
		if err := s.decode(state); err != nil {
			return state, aggregate.Reject(aggregate.CodeUnspecified, err.Error())
		}
	}
	s.add(x, st.Record.Time)
	return s.encode(state[:0]), nil // DROP: the record is absorbed
}

func merge(_ *aggregate.Slot, state, other []byte) ([]byte, error) {
	var a, b stats
	if err := b.decode(other); err != nil {
		return nil, err
	}
	if len(state) == 0 {
		return b.encode(state[:0]), nil
	}
	if err := a.decode(state); err != nil {
		return nil, err
	}
	a.merge(&b)
	return a.encode(state[:0]), nil
}

func emit(e *aggregate.Emitter, state []byte) error {
	if len(state) == 0 {
		return nil
	}
	var s stats
	if err := s.decode(state); err != nil {
		return err
	}
	e.AppendEmit("main", func(dst []byte) []byte {
		dst = append(dst, `{"key":`...)
		dst = numfield.AppendKey(dst, e.Slot)
		dst = append(dst, `,"window_start":`...)
		if e.Slot.Windowed() {
			dst = strconv.AppendInt(dst, e.Slot.Start, 10)
			dst = append(dst, `,"window_end":`...)
			dst = strconv.AppendInt(dst, e.Slot.End, 10)
		} else {
			dst = append(dst, `null,"window_end":null`...)
		}
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendUint(dst, s.count, 10)
		dst = appendNum(dst, `,"min":`, s.min)
		dst = appendNum(dst, `,"max":`, s.max)
		dst = appendNum(dst, `,"mean":`, s.mean)
		dst = appendNum(dst, `,"stddev":`, s.stddev())
		dst = appendNum(dst, `,"first":`, s.first)
		dst = appendNum(dst, `,"last":`, s.last)
		return append(dst, '}')
	})
	return nil
}

func appendNum(dst []byte, name string, v float64) []byte {
	return numfield.AppendFloat(append(dst, name...), v)
}
