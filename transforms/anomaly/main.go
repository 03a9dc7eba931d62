// Command anomaly is an aggregate module that flags outliers of one numeric field per key: it
// keeps a running baseline per slot (a key, in a stage without windows) and scores each record
// against it. Outliers are forwarded with an alert beside them; the other records pass and join
// the baseline. See README.md.
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
"field":{"type":"string","minLength":1},
"method":{"enum":["zscore","ewma"]},
"threshold":{"type":"number","exclusiveMinimum":0},
"min_samples":{"type":"integer","minimum":1},
"alpha":{"type":"number","exclusiveMinimum":0,"maximum":1}}}`

// config is set once per instance at init.
var cfg struct {
	field      *numfield.Field
	ewma       bool
	threshold  float64
	minSamples uint64
	alpha      float64
}

// alert is the alert under construction, reused for every outlier.
var alert []byte

func init() {
	aggregate.Register(aggregate.Meta{
		Name:         "anomaly",
		Version:      "1.0.0",
		Ports:        []string{"main", "alerts"},
		ConfigSchema: schema,
		StateVersion: 1,
	}, aggregate.Funcs{Accumulate: accumulate, Emit: emit, Merge: merge}, aggregate.OnInit(setup))
}

func setup() error {
	var c struct {
		Field      *string  `json:"field"`
		Method     *string  `json:"method"`
		Threshold  *float64 `json:"threshold"`
		MinSamples *int64   `json:"min_samples"`
		Alpha      *float64 `json:"alpha"`
	}
	if err := aggregate.Config(&c); err != nil {
		return err
	}
	name, method, threshold, minSamples, alpha := "price", "zscore", 3.0, int64(10), 0.1
	if c.Field != nil {
		name = *c.Field
	}
	if c.Method != nil {
		method = *c.Method
	}
	if c.Threshold != nil {
		threshold = *c.Threshold
	}
	if c.MinSamples != nil {
		minSamples = *c.MinSamples
	}
	if c.Alpha != nil {
		alpha = *c.Alpha
	}
	f, err := numfield.New(name)
	if err != nil {
		return errors.New("config: " + err.Error())
	}
	switch {
	case method != "zscore" && method != "ewma":
		return errors.New(`config: method: must be "zscore" or "ewma"`)
	case !(threshold > 0) || math.IsInf(threshold, 0):
		return errors.New("config: threshold: must be a number greater than 0")
	case minSamples < 1:
		return errors.New("config: min_samples: must be at least 1")
	case !(alpha > 0 && alpha <= 1):
		return errors.New("config: alpha: must be greater than 0 and at most 1")
	}
	cfg.field, cfg.ewma, cfg.threshold, cfg.minSamples, cfg.alpha = f, method == "ewma", threshold, uint64(minSamples), alpha
	return nil
}

// baseline is a slot's state. Its encoding (state_version 1) is 40 bytes, little-endian:
//
//	 0 u64 count     values in the baseline
//	 8 f64 mean      their mean (Welford)
//	16 f64 m2        sum of squared differences from the mean (Welford)
//	24 f64 ew_mean   exponentially weighted mean (alpha)
//	32 f64 ew_var    exponentially weighted variance (alpha)
//
// Both methods are kept, so that a stage can switch method without losing its baselines.
type baseline struct {
	count         uint64
	mean, m2      float64
	ewMean, ewVar float64
}

const stateSize = 40

var le = binary.LittleEndian

func (b *baseline) decode(s []byte) error {
	if len(s) != stateSize {
		return errors.New("anomaly: a state of " + strconv.Itoa(len(s)) + " bytes, want " + strconv.Itoa(stateSize))
	}
	b.count = le.Uint64(s[0:])
	b.mean = math.Float64frombits(le.Uint64(s[8:]))
	b.m2 = math.Float64frombits(le.Uint64(s[16:]))
	b.ewMean = math.Float64frombits(le.Uint64(s[24:]))
	b.ewVar = math.Float64frombits(le.Uint64(s[32:]))
	return nil
}

func (b *baseline) encode(dst []byte) []byte {
	dst = le.AppendUint64(dst, b.count)
	dst = le.AppendUint64(dst, math.Float64bits(b.mean))
	dst = le.AppendUint64(dst, math.Float64bits(b.m2))
	dst = le.AppendUint64(dst, math.Float64bits(b.ewMean))
	return le.AppendUint64(dst, math.Float64bits(b.ewVar))
}

// add folds x into both baselines: Welford's update, and the exponentially weighted mean and
// variance (var ← (1 − α)(var + α·d²) with d the difference from the previous mean).
func (b *baseline) add(x, alpha float64) {
	if b.count == 0 {
		*b = baseline{count: 1, mean: x, ewMean: x}
		return
	}
	b.count++
	d := x - b.mean
	b.mean += d / float64(b.count)
	b.m2 += d * (x - b.mean)
	e := x - b.ewMean
	b.ewMean += alpha * e
	b.ewVar = (1 - alpha) * (b.ewVar + alpha*e*e)
}

// expected returns the baseline's mean and standard deviation for the configured method
// (zscore: the population standard deviation of the values).
func (b *baseline) expected() (mean, stddev float64) {
	if cfg.ewma {
		return b.ewMean, math.Sqrt(math.Max(b.ewVar, 0))
	}
	return b.mean, math.Sqrt(math.Max(b.m2, 0) / float64(b.count))
}

// score is (x − mean) / stddev; with a stddev of 0, 0 for x equal to the mean and ±Inf otherwise.
func score(x, mean, stddev float64) float64 {
	d := x - mean
	if stddev > 0 {
		return d / stddev
	}
	if d == 0 {
		return 0
	}
	return math.Copysign(math.Inf(1), d)
}

func accumulate(s *aggregate.Step, state []byte) ([]byte, error) {
	x, err := cfg.field.Number(s.Record.Value)
	if err != nil {
		return state, err
	}
	var b baseline
	if len(state) > 0 {
		if err := b.decode(state); err != nil {
			return state, aggregate.Reject(aggregate.CodeUnspecified, err.Error())
		}
	}
	if b.count >= cfg.minSamples {
		mean, sd := b.expected()
		if z := score(x, mean, sd); math.Abs(z) > cfg.threshold {
			// An outlier: forwarded with an alert beside it, and kept out of the baseline.
			s.EmitInput("main")
			alert = appendAlert(alert[:0], s, x, mean, sd, z)
			o := aggregate.Out{Port: "alerts", Value: alert, KeyNull: s.Slot.KeyNull}
			if !s.Slot.KeyNull {
				o.Key = s.Slot.Key
			}
			s.EmitRecord(o)
			return state, nil
		}
	}
	b.add(x, cfg.alpha)
	s.Pass()
	return b.encode(state[:0]), nil
}

// appendAlert appends {"key":…,"value":…,"expected_min":…,"expected_max":…,"mean":…,"stddev":…,
// "score":…,"ts":…}.
func appendAlert(dst []byte, s *aggregate.Step, x, mean, sd, z float64) []byte {
	dst = append(dst, `{"key":`...)
	dst = numfield.AppendKey(dst, s.Slot)
	dst = appendNum(dst, `,"value":`, x)
	dst = appendNum(dst, `,"expected_min":`, mean-cfg.threshold*sd)
	dst = appendNum(dst, `,"expected_max":`, mean+cfg.threshold*sd)
	dst = appendNum(dst, `,"mean":`, mean)
	dst = appendNum(dst, `,"stddev":`, sd)
	dst = appendNum(dst, `,"score":`, z)
	dst = append(dst, `,"ts":`...)
	if s.Record.Time == aggregate.NoTimestamp {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, s.Record.Time, 10)
	}
	return append(dst, '}')
}

func appendNum(dst []byte, name string, v float64) []byte {
	return numfield.AppendFloat(append(dst, name...), v)
}

// emit emits nothing: the module's records leave at once, in the step.
func emit(*aggregate.Emitter, []byte) error { return nil }

// merge folds two baselines of a key: the Welford parts exactly (Chan et al.), the exponentially
// weighted parts approximately, as count-weighted averages (mean, and variance within plus
// between the two).
func merge(_ *aggregate.Slot, state, other []byte) ([]byte, error) {
	var a, b baseline
	if err := b.decode(other); err != nil {
		return nil, err
	}
	if len(state) == 0 || b.count == 0 {
		if len(state) == 0 {
			return b.encode(state[:0]), nil
		}
		return state, nil
	}
	if err := a.decode(state); err != nil {
		return nil, err
	}
	if a.count == 0 {
		return b.encode(state[:0]), nil
	}
	n := float64(a.count + b.count)
	wa, wb := float64(a.count)/n, float64(b.count)/n
	d := b.mean - a.mean
	a.mean += d * wb
	a.m2 += b.m2 + d*d*float64(a.count)*float64(b.count)/n
	e := b.ewMean - a.ewMean
	a.ewMean += e * wb
	a.ewVar = wa*a.ewVar + wb*b.ewVar + wa*wb*e*e
	a.count += b.count
	return a.encode(state[:0]), nil
}
