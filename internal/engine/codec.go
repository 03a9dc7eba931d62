package engine

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// maxCodecAttempts is how many times a record is tried against an unreachable schema registry
// (backoff doubling from 100ms: about 50s in all) before the pipeline stops.
var maxCodecAttempts = 10

// Dead-letter kinds of the codecs.
const (
	kindDecodeFailed = "decode_failed"
	kindEncodeFailed = "encode_failed"
)

// codecFunc is one record's Decode or Encode: it appends the converted value to dst.
type codecFunc func(value, dst []byte) ([]byte, schema.Info, error)

// converted is the outcome of running a codec over a slice of records.
type converted struct {
	recs    []connector.Record // the converted records, in order
	failed  []int              // indexes (into the input) of the records the codec refused
	reasons []string           // why, per failed record
}

// convert runs fn over recs with the registry retry rule: a record-level failure
// (*schema.RecordError) refuses that record; an unreachable registry (schema.ErrUnavailable) is
// retried with backoff, marking component failing in the pipeline's health, and after
// maxCodecAttempts stops the run; any other error stops the run at once. The converted values of
// all records share one buffer, and their headers another, with the schema id and subject set.
func (r *run) convert(component string, recs []connector.Record, fn codecFunc) (converted, bool) {
	var out converted
	h := r.p.health
	started := h.begin(component)
	defer h.end(component, started)
	buf := make([]byte, 0, approxBytes(recs))
	ends := make([]int, 0, len(recs))
	infos := make([]schema.Info, 0, len(recs))
	kept := make([]int, 0, len(recs))
	for i := range recs {
		var (
			next []byte
			info schema.Info
			err  error
		)
		for attempt := 1; ; attempt++ {
			next, info, err = fn(recs[i].Value, buf)
			if err == nil || !errors.Is(err, schema.ErrUnavailable) || r.workCtx.Err() != nil {
				break
			}
			if attempt == maxCodecAttempts {
				err = fmt.Errorf("%w (gave up after %d attempts; check that the registry runs and its url)", err, attempt)
				break
			}
			h.failing(component, err)
			d := backoff(attempt)
			r.p.log.Warn("schema registry unavailable; retrying", "component", component, "err", err, "attempt", attempt, "backoff", d)
			if !sleep(r.workCtx, d) {
				break
			}
		}
		var re *schema.RecordError
		switch {
		case err == nil:
			buf = next
			ends = append(ends, len(buf))
			infos = append(infos, info)
			kept = append(kept, i)
		case errors.As(err, &re):
			out.failed = append(out.failed, i)
			out.reasons = append(out.reasons, err.Error())
		default:
			if r.workCtx.Err() == nil {
				r.fatal(fmt.Errorf("%s: %w", component, err))
			}
			return out, false
		}
	}
	out.recs = make([]connector.Record, len(kept))
	nh := 0
	for _, i := range kept {
		nh += len(recs[i].Headers) + 2
	}
	headers := make([]connector.Header, 0, nh)
	ids := map[int][]byte{}
	subjects := map[string][]byte{}
	start := 0
	for k, i := range kept {
		rec := recs[i]
		rec.Value = buf[start:ends[k]:ends[k]]
		start = ends[k]
		info := infos[k]
		id, ok := ids[info.ID]
		if !ok {
			id = strconv.AppendInt(nil, int64(info.ID), 10)
			ids[info.ID] = id
		}
		subject, ok := subjects[info.Subject]
		if !ok && info.Subject != "" {
			subject = []byte(info.Subject)
			subjects[info.Subject] = subject
		}
		from := len(headers)
		for _, hd := range rec.Headers {
			if hd.Key != schema.HeaderSchemaID && hd.Key != schema.HeaderSchemaSubject {
				headers = append(headers, hd)
			}
		}
		if info.ID > 0 {
			headers = append(headers, connector.Header{Key: schema.HeaderSchemaID, Value: id})
		}
		if info.Subject != "" {
			headers = append(headers, connector.Header{Key: schema.HeaderSchemaSubject, Value: subject})
		}
		rec.Headers = headers[from:len(headers):len(headers)]
		if len(rec.Headers) == 0 {
			rec.Headers = nil
		}
		out.recs[k] = rec
	}
	return out, true
}

// approxBytes is the capacity to start a batch's converted values with: the input's size plus a
// third (JSON is usually larger than Avro or Protobuf).
func approxBytes(recs []connector.Record) int {
	n := 0
	for i := range recs {
		n += len(recs[i].Value)
	}
	return n + n/3 + 64
}

// decode turns the values of out.main from the source's wire format into JSON (the source's
// decode:), before the transforms see them; records that cannot be decoded go to the dead
// letters with the reason. It reports false when the run must stop.
func (r *run) decode(out *stageOutput) bool {
	dec := r.p.dec
	if dec == nil || len(out.main) == 0 {
		return true
	}
	in := out.main
	res, ok := r.convert("decode", in, func(v, dst []byte) ([]byte, schema.Info, error) {
		return dec.Decode(r.workCtx, v, dst)
	})
	if !ok {
		return false
	}
	for k, i := range res.failed {
		out.letters = append(out.letters, deadLetter{rec: in[i], stage: "source", kind: kindDecodeFailed, reason: res.reasons[k]})
	}
	if len(res.failed) > 0 {
		r.p.m.RecordsRejected.WithLabelValues(r.p.spec.Name, "source").Add(float64(len(res.failed)))
	}
	out.main = res.recs
	return true
}

// encode turns recs, on their way to sink s, into the sink's wire format (its encode:). The
// records it cannot encode are returned as dead letters. It reports false when the run must stop.
func (r *run) encode(s *sinkRunner, recs []connector.Record) ([]connector.Record, []deadLetter, bool) {
	res, ok := r.convert(s.name+" encode", recs, func(v, dst []byte) ([]byte, schema.Info, error) {
		return s.enc.Encode(r.workCtx, v, dst)
	})
	if !ok {
		return nil, nil, false
	}
	var letters []deadLetter
	for k, i := range res.failed {
		letters = append(letters, deadLetter{rec: recs[i], stage: s.name, kind: kindEncodeFailed, reason: res.reasons[k]})
	}
	if len(letters) > 0 {
		r.p.m.RecordsFailed.WithLabelValues(r.p.spec.Name, s.name).Add(float64(len(letters)))
	}
	return res.recs, letters, true
}

// openCodecs looks up or registers the schemas of the source's decoder and the sinks' encoders,
// with the retries of a component's Open.
func (r *run) openCodecs() error {
	p := r.p
	if p.dec != nil {
		if err := openWithRetry(r.workCtx, p.log, p.dec.Open); err != nil {
			return fmt.Errorf("source: %w", err)
		}
	}
	for _, s := range p.sinks {
		if s.enc == nil {
			continue
		}
		if err := openWithRetry(r.workCtx, p.log, s.enc.Open); err != nil {
			return fmt.Errorf("sink %q: %w", s.name, err)
		}
	}
	return nil
}
