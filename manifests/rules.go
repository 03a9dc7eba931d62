package manifests

import (
	"fmt"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Lower bounds of an aggregate stage's state limits: limits.state and limits.state_memory.
const (
	minAggregateState       = 1 << 10
	minAggregateStateMemory = 1 << 20
)

// bound is one end of the range a numeric setting accepts.
type bound struct {
	set       bool
	value     float64
	exclusive bool // the value itself is refused
}

func atLeast(v float64) bound     { return bound{set: true, value: v} }
func atMost(v float64) bound      { return bound{set: true, value: v} }
func greaterThan(v float64) bound { return bound{set: true, value: v, exclusive: true} }

// rule is one setting of a built-in section of the manifest (batch, buffer, a transform's
// limits, the dead-letter failure limit): its declaration and the range the loader accepts. The
// decoder enforces the range, the JSON Schema states it, the docs print the declaration: one
// table drives all three.
type rule struct {
	connector.Field
	min, max bound
	// hint says how to fix a value out of range; empty means the range says it all.
	hint string
}

// The built-in sections. Defaults come from runtime/pipeline, where the engine reads them.
var (
	batchRules = []rule{
		{Field: connector.Field{Name: "max_records", Type: connector.TypeInt, Default: int64(pipeline.DefaultBatchRecords), Description: "Most records in one batch."}, min: atLeast(1)},
		{Field: connector.Field{Name: "max_bytes", Type: connector.TypeByteSize, Default: int64(pipeline.DefaultBatchBytes), Description: "Most bytes of record payload in one batch."}, min: atLeast(1)},
		{Field: connector.Field{Name: "linger", Type: connector.TypeDuration, Default: pipeline.DefaultBatchLinger, Description: "How long to wait for a batch to fill before sending it on."}},
	}
	// sinkBatchRules are batchRules for a sink's own batch: an unset field takes the pipeline's.
	sinkBatchRules = []rule{
		{Field: connector.Field{Name: "max_records", Type: connector.TypeInt, Description: "Most records in one write to this sink; unset means spec.batch.max_records. At least spec.batch.max_records (whole batches are gathered) and at most spec.buffer.max_records."}, min: atLeast(1)},
		{Field: connector.Field{Name: "max_bytes", Type: connector.TypeByteSize, Description: "Most bytes of record payload in one write to this sink; unset means spec.batch.max_bytes. At least spec.batch.max_bytes and at most spec.buffer.max_bytes."}, min: atLeast(1)},
		{Field: connector.Field{Name: "linger", Type: connector.TypeDuration, Description: "How long the first record waiting for this sink may wait for the batch to fill; unset means spec.batch.linger."}},
	}
	bufferRules = []rule{
		{Field: connector.Field{Name: "max_records", Type: connector.TypeInt, Default: int64(pipeline.DefaultBufferRecords), Description: "Most records in flight between the source and the sinks; the source pauses when it is reached."}, min: atLeast(1)},
		{Field: connector.Field{Name: "max_bytes", Type: connector.TypeByteSize, Default: int64(pipeline.DefaultBufferBytes), Description: "Most bytes of record payload in flight between the source and the sinks."}, min: atLeast(1)},
	}
	limitsRules = []rule{
		{Field: connector.Field{Name: "memory", Type: connector.TypeByteSize, Default: int64(pipeline.DefaultTransformMemory), Description: "Largest linear memory of one instance."},
			min: atLeast(pipeline.MinTransformMemory), max: atMost(pipeline.MaxTransformMemory),
			hint: fmt.Sprintf("a WASM page is %s and a wasm32 module addresses at most %s", FormatByteSize(pipeline.MinTransformMemory), FormatByteSize(pipeline.MaxTransformMemory))},
		{Field: connector.Field{Name: "timeout", Type: connector.TypeDuration, Default: pipeline.DefaultTransformTimeout, Description: "Deadline of one call into the module (one frame of a batch)."}},
		{Field: connector.Field{Name: "mode", Type: connector.TypeString, Default: pipeline.DefaultTransformMode, Enum: []string{pipeline.ModeMetered, pipeline.ModeStrict, pipeline.ModeTrusted},
			Description: "metered runs the module rewritten to count its work, which lets the host stop it at its deadline at close to full speed; strict interrupts it with the WASM runtime's own checks, several times slower; trusted runs at full speed but cannot interrupt a runaway guest."}},
		{Field: connector.Field{Name: "fuel", Type: connector.TypeInt, Description: "Metered mode only: most units of work (about one WASM instruction each) one call may use per record of its frame; a call that needs more fails like one past its deadline, on any machine. Unset means no bound; `sluice transform test` prints what a module uses."},
			min: atLeast(1)},
		{Field: connector.Field{Name: "instances", Type: connector.TypeInt, Description: "Size of the pre-warmed instance pool; unset means the number of CPUs the process may use, at most 4."},
			min: atLeast(1), max: atMost(pipeline.MaxTransformInstances)},
	}
	// aggregateLimitsRules are the limits of an aggregate stage: a transform's, and the bounds of
	// its state.
	aggregateLimitsRules = append(aggregateInstances(append([]rule(nil), limitsRules...)),
		rule{Field: connector.Field{Name: "state", Type: connector.TypeByteSize, Default: int64(abi.DefaultMaxState), Description: "Largest state of one slot (one key in one window) the module may return; a call that returns a larger one fails."},
			min: atLeast(minAggregateState), max: atMost(abi.MaxStateLimit)},
		rule{Field: connector.Field{Name: "state_memory", Type: connector.TypeByteSize, Default: int64(pipeline.DefaultAggregateMemory), Description: "Most bytes of state the stage keeps in memory; beyond it, state already saved in the embedded store leaves memory and is read back when needed."},
			min: atLeast(minAggregateStateMemory)},
	)
	// windowRules are the keys of an aggregate stage's window: (exactly one kind: windowShape).
	windowRules = []rule{
		{Field: connector.Field{Name: "tumbling", Type: connector.TypeDuration, Description: "Windows of this length, one after the other: [k·length, (k+1)·length) in Unix milliseconds. At least 1ms, whole milliseconds."}},
		{Field: connector.Field{Name: "hopping", Type: connector.TypeDuration, Description: "Windows of this length, one starting every `every`; a record falls in each window that holds its time. A multiple of every, whole milliseconds."}},
		{Field: connector.Field{Name: "every", Type: connector.TypeDuration, Description: "Hopping windows only, and required with them: how often a window starts. At least 1ms and at most hopping."}},
		{Field: connector.Field{Name: "session", Type: connector.TypeDuration, Description: "Session windows: a key's records less than this gap apart share one window, which closes once the gap has passed. Needs a module that exports tf_agg_merge. At least 1ms, whole milliseconds."}},
	}
	allowedLatenessRule = rule{Field: connector.Field{Name: "allowed_lateness", Type: connector.TypeDuration, Default: time.Duration(0),
		Description: "How far the watermark stays behind the largest event time seen: a window closes once the watermark passes its end, so records up to this late still count."}}
	ttlRule = rule{Field: connector.Field{Name: "ttl", Type: connector.TypeDuration,
		Description: "Stages without window only: a key's slot is removed once no record of the key has come for this long (in event time when the stage sets time:). Unset: slots are kept."}}
	earlyRule = rule{Field: connector.Field{Name: "early", Type: connector.TypeDuration,
		Description: "Emit updates of the open windows that changed, this often (processing time). Unset: a window's records are emitted once, when it closes. Delivery exactly_once refuses it."}}
	deadLetterRules = []rule{
		{Field: connector.Field{Name: "max_failure_ratio", Type: connector.TypeFloat, Default: float64(pipeline.DefaultFailureRatio),
			Description: "Stop the pipeline when more than this share of the last failure_window records went to the dead letters; 1 never stops."},
			min: greaterThan(0), max: atMost(1), hint: "use a share of records between 0 and 1, for example 0.2; 1 never stops"},
		{Field: connector.Field{Name: "failure_window", Type: connector.TypeInt, Default: int64(pipeline.DefaultFailureWindow),
			Description: "How many recent records max_failure_ratio looks at."}, min: atLeast(1)},
	}
	deliveryRule = rule{Field: connector.Field{Name: "delivery", Type: connector.TypeString, Default: string(pipeline.DefaultDelivery),
		Enum: []string{string(AtLeastOnce), string(ExactlyOnce)}, Description: "Delivery guarantee. exactly_once needs every sink to store source positions with its data (`sluice docs TYPE` says which can) and a source whose positions are ordered; each sink then holds every record once, across crashes. With a Kafka source in a consumer group, several processes may run the pipeline at once into sinks that share their positions (postgres, redis, iceberg); other transactional sinks (file, kafka) need the pipeline run as one process, and a warning says so. The dead-letter sink is written at least once, except that a record a sink refuses can miss it after a crash right after that sink's write (which stored its position)."}}
	onRejectRule = rule{Field: connector.Field{Name: "on_reject", Type: connector.TypeString, Default: string(pipeline.DefaultOnReject),
		Enum: []string{string(RejectToDeadLetter), string(RejectDrop), string(RejectStop)}, Description: "What happens to records the transform rejects: send them to the dead-letter sink, drop them, or stop the pipeline."}}
)

// aggregateInstances rewords, in rules (a copy of limitsRules), the instances setting for an
// aggregate stage, which the runtime calls one batch at a time.
func aggregateInstances(rules []rule) []rule {
	for i := range rules {
		if rules[i].Name == "instances" {
			rules[i].Description = "Size of the pre-warmed instance pool; unset means 1, since the runtime calls an aggregate stage one batch at a time."
		}
	}
	return rules
}

func fieldsOf(rules []rule) []connector.Field {
	out := make([]connector.Field, len(rules))
	for i, r := range rules {
		out[i] = r.Field
	}
	return out
}

func ruleByName(rules []rule, name string) (rule, bool) {
	for _, r := range rules {
		if r.Name == name {
			return r, true
		}
	}
	return rule{}, false
}

// number returns a decoded numeric value as a float64.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case time.Duration:
		return float64(x), true
	}
	return 0, false
}

// format renders a bound for messages in the setting's own notation.
func (r rule) format(v float64) string {
	if r.Type == connector.TypeByteSize {
		return FormatByteSize(int64(v))
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// rangeText says which values the rule accepts ("at least 1", "greater than 0 and at most 1").
func (r rule) rangeText() string {
	var lo, hi string
	if r.min.set {
		lo = "at least " + r.format(r.min.value)
		if r.min.exclusive {
			lo = "greater than " + r.format(r.min.value)
		}
	}
	if r.max.set {
		hi = "at most " + r.format(r.max.value)
		if r.max.exclusive {
			hi = "less than " + r.format(r.max.value)
		}
	}
	switch {
	case lo != "" && hi != "":
		return lo + " and " + hi
	case lo != "":
		return lo
	}
	return hi
}

// inRange reports whether the decoded value v is within the rule's bounds.
func (r rule) inRange(v any) bool {
	f, ok := number(v)
	if !ok {
		return true
	}
	if r.min.set && (f < r.min.value || r.min.exclusive && f == r.min.value) {
		return false
	}
	if r.max.set && (f > r.max.value || r.max.exclusive && f == r.max.value) {
		return false
	}
	return true
}

// checkRange reports a decoded value outside the rule's bounds at n.
func (d *docDecoder) checkRange(n *yaml.Node, r rule, v any, l loc) bool {
	if r.inRange(v) {
		return true
	}
	f, _ := number(v)
	d.errorf(n, r.hint, "%s: must be %s, got %s", l.at(), r.rangeText(), r.format(f))
	return false
}

// ruleValue decodes one setting and checks its range.
func (d *docDecoder) ruleValue(n *yaml.Node, r rule, l loc) (any, bool) {
	v, ok := d.value(n, r.Field, l, false, nil)
	if !ok {
		return nil, false
	}
	return v, d.checkRange(n, r, v, l)
}

// ruleSection decodes a mapping of settings (n may be nil: defaults apply), checking ranges;
// problems with a default-filled setting are reported at parent.
func (d *docDecoder) ruleSection(n, parent *yaml.Node, rules []rule, l loc, col *collector) (map[string]any, bool) {
	v, ok := d.object(n, parent, fieldsOf(rules), l, false, col)
	if !ok {
		return v, false
	}
	for _, r := range rules {
		x, set := v[r.Name]
		if !set {
			continue
		}
		at := mappingValue(n, r.Name)
		if at == nil {
			at = parent
		}
		if !d.checkRange(at, r, x, l.child(r.Name)) {
			ok = false
		}
	}
	return v, ok
}

// mappingValue returns the value of key in mapping n (aliases followed), or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i <= maxDepth; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// ruleSchema describes one setting in the JSON Schema, its range included. Byte sizes written
// with a unit can only be checked for being positive (by pattern); their exact range is the
// loader's.
func ruleSchema(r rule) (schemaObj, error) {
	s, err := fieldSchema(r.Field)
	if err != nil {
		return nil, err
	}
	num := schemaObj{}
	if r.min.set {
		key := "minimum"
		if r.min.exclusive {
			key = "exclusiveMinimum"
		}
		num[key] = jsonNumber(r.min.value)
	}
	if r.max.set {
		key := "maximum"
		if r.max.exclusive {
			key = "exclusiveMaximum"
		}
		num[key] = jsonNumber(r.max.value)
	}
	if len(num) == 0 {
		return s, nil
	}
	ft := typeOf(r.Type)
	if ft == nil || ft.ranged == nil {
		return nil, fmt.Errorf("field %q: a range on a %s", r.Name, r.Type)
	}
	return ft.ranged(s, num, r.min.set && r.min.value >= 1), nil
}

// jsonNumber keeps whole bounds integers in the schema (1, not 1.0).
func jsonNumber(v float64) any {
	if v == float64(int64(v)) {
		return int64(v)
	}
	return v
}

// rulesSchema describes a section of settings.
func rulesSchema(rules []rule, desc string) (schemaObj, error) {
	props := schemaObj{}
	for _, r := range rules {
		s, err := ruleSchema(r)
		if err != nil {
			return nil, err
		}
		props[r.Name] = s
	}
	out := schemaObj{"type": "object", "additionalProperties": false, "properties": props}
	if desc != "" {
		out["description"] = desc
	}
	return out, nil
}
