package aggregate

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

// extractor finds a record's key and event time. It reads only the operator's configuration,
// so extractors on several goroutines may run beside Process; each has its own buffers.
type extractor struct {
	cfg    *Config
	paths  [][]string // the key's and the time's paths when both are in the value
	found  []template.Field
	keyBuf []byte
}

func newExtractor(cfg *Config) extractor {
	x := extractor{cfg: cfg}
	if cfg.Key != nil && !cfg.WholeValue && cfg.Time != nil {
		// Both in one pass over the value (template.LookupAll).
		x.paths = [][]string{cfg.Key, cfg.Time}
		x.found = make([]template.Field, 2)
	}
	return x
}

// extract returns rec's key, in bytes valid until the next call, whether it is null, and its
// event time (0 for a stage on processing time), or the error that rejects the record.
func (x *extractor) extract(rec *connector.Record) ([]byte, bool, int64, error) {
	if x.paths != nil {
		template.LookupAll(rec.Value, x.paths, x.found)
	}
	kb, keyNull, err := x.key(rec)
	if err != nil || x.cfg.Time == nil {
		return kb, keyNull, 0, err
	}
	var t int64
	if x.paths != nil {
		f := &x.found[1]
		t, err = timeFrom(f.Raw, f.OK, f.Err)
	} else {
		t, err = timeOf(rec.Value, x.cfg.Time)
	}
	if err != nil {
		if errors.Is(err, errMissing) {
			return nil, false, 0, fmt.Errorf("time %s is missing", x.cfg.Time.String())
		}
		return nil, false, 0, fmt.Errorf("time %s: %v", x.cfg.Time.String(), err)
	}
	return kb, keyNull, t, nil
}

func (x *extractor) key(rec *connector.Record) ([]byte, bool, error) {
	switch {
	case x.cfg.WholeValue:
		return shortKey(rec.Value), false, nil
	case x.cfg.Key == nil:
		return shortKey(rec.Key), rec.Key == nil, nil
	}
	var k []byte
	var err error
	if x.paths != nil {
		f := &x.found[0]
		k, err = keyFrom(x.keyBuf[:0], f.Raw, f.OK, f.Err)
	} else {
		k, err = keyOf(x.keyBuf[:0], rec.Value, x.cfg.Key)
	}
	if k != nil {
		x.keyBuf = k[:0]
	}
	if errors.Is(err, errMissing) {
		return nil, false, fmt.Errorf("key %s is missing", x.cfg.Key.String())
	}
	if err != nil {
		return nil, false, fmt.Errorf("key %s: %v", x.cfg.Key.String(), err)
	}
	return k, false, nil
}

// Extracted holds the keys and event times of a batch's records, found by Extract ahead of
// Process, on another goroutine, so that the goroutine running the stages in order has less to
// do. It is only valid for that operator and that batch.
type Extracted struct {
	o     *Operator
	first *connector.Record // the batch's first record
	n     int
	keys  []byte  // the keys, one after the other
	ends  []int   // record i's key ends at ends[i] in keys (and starts at ends[i-1], or 0)
	nulls []bool  // record i's key is null
	times []int64 // record i's event time
	errs  map[int]error
}

// Extract finds the key and event time of each record of recs, for ProcessExtracted. It only
// reads the operator's configuration: safe to call on any goroutine, also while Process runs.
func (o *Operator) Extract(recs []connector.Record) *Extracted {
	if len(recs) == 0 {
		return nil
	}
	x := newExtractor(&o.cfg)
	e := &Extracted{o: o, first: &recs[0], n: len(recs), keys: make([]byte, 0, 16*len(recs)), ends: make([]int, len(recs)),
		nulls: make([]bool, len(recs)), times: make([]int64, len(recs))}
	for i := range recs {
		kb, null, t, err := x.extract(&recs[i])
		if err != nil {
			if e.errs == nil {
				e.errs = map[int]error{}
			}
			e.errs[i] = err
		}
		e.keys = append(e.keys, kb...)
		e.ends[i], e.nulls[i], e.times[i] = len(e.keys), null, t
	}
	return e
}

// of reports whether e was extracted by o from recs.
func (e *Extracted) of(o *Operator, recs []connector.Record) bool {
	return e != nil && e.o == o && len(recs) == e.n && &recs[0] == e.first
}

// at returns what extract returned for record i.
func (e *Extracted) at(i int) ([]byte, bool, int64, error) {
	if err := e.errs[i]; err != nil {
		return nil, false, 0, err
	}
	lo := 0
	if i > 0 {
		lo = e.ends[i-1]
	}
	return e.keys[lo:e.ends[i]:e.ends[i]], e.nulls[i], e.times[i], nil
}
