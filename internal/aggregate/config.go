// Package aggregate is the host side of aggregate stages (ABI.md section 13): it extracts each
// record's key and event time, assigns records to windows, keeps the state of every (key, window)
// slot, closes windows by a watermark, and makes the state durable in the checkpoint store in the
// same transaction as the source positions it reflects. The guest (a transform.Aggregator) only
// folds records into state blobs and turns blobs into records.
package aggregate

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/template"
)

// WindowKind is the kind of window of a stage.
type WindowKind int

// Window kinds.
const (
	NoWindow WindowKind = iota // one slot per key, expired by the TTL
	Tumbling
	Hopping
	Session
)

func (k WindowKind) String() string {
	return [...]string{"none", "tumbling", "hopping", "session"}[k]
}

// Window describes a stage's windows.
type Window struct {
	Kind  WindowKind
	Size  time.Duration // tumbling and hopping
	Every time.Duration // hopping: the distance between window starts
	Gap   time.Duration // session
}

// LateKind says where late records go.
type LateKind int

// Late record policies.
const (
	LateDeadLetter LateKind = iota
	LatePort
	LateDrop
)

// Config configures an operator.
type Config struct {
	// Key is the path of the key in the record value; nil means the record key. WholeValue makes
	// the whole value the key ("$").
	Key        Path
	WholeValue bool
	// Time is the path of the event time in the value (epoch ms, or RFC 3339 text); nil means
	// processing time.
	Time Path
	// Window is the stage's window.
	Window Window
	// Lateness is how far behind the largest event time seen the watermark stays.
	Lateness time.Duration
	// TTL expires a slot idle that long in event time (stages without a window); 0 keeps slots.
	TTL time.Duration
	// Early, when set, emits updates of open windows that changed, that often (processing time).
	Early time.Duration
	// Late is where late records go; LatePort names the port.
	Late     LateKind
	LatePort string
	// MemoryBytes bounds the state blobs held in memory; beyond it, blobs already durable are
	// dropped from memory and read back from the store when needed. 0 means DefaultMemory.
	MemoryBytes int64
	// Clock is processing time. Nil means time.Now.
	Clock func() time.Time
}

// DefaultMemory is the default bound of the state blobs an operator keeps in memory.
const DefaultMemory = pipeline.DefaultAggregateMemory

// maxKeyBytes is the longest key kept as it is; a longer one is replaced by its SHA-256.
const maxKeyBytes = 128

// Path is a JSONPath into a record value: `$.a.b`, `$.items[0].sku`, `$['odd key']`.
type Path []string

// ParsePath parses a JSONPath of member names and array indexes (template.ParseJSONPath). "$"
// alone parses to an empty, non-nil Path (the whole value).
func ParsePath(s string) (Path, error) {
	p, err := template.ParseJSONPath(s)
	return Path(p), err
}

var errMissing = errors.New("missing")

// keyOf extracts a record's key from its value by path: a string's text, any other value's
// JSON text; keys over maxKeyBytes become their SHA-256.
func keyOf(dst, value []byte, p Path) ([]byte, error) {
	raw, ok, err := template.Lookup(value, p)
	return keyFrom(dst, raw, ok, err)
}

// keyFrom is keyOf on the outcome of the key's lookup.
func keyFrom(dst, raw []byte, ok bool, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errMissing
	}
	k, err := template.AppendText(dst, raw)
	if err != nil {
		return nil, err
	}
	return shortKey(k), nil
}

func shortKey(k []byte) []byte {
	if len(k) > maxKeyBytes {
		sum := sha256.Sum256(k)
		return sum[:]
	}
	return k
}

// timeOf extracts the event time, in Unix ms, from a record value by path.
func timeOf(value []byte, p Path) (int64, error) {
	return timeFrom(template.Lookup(value, p))
}

// timeFrom is timeOf on the outcome of the time's lookup.
func timeFrom(raw []byte, ok bool, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errMissing
	}
	if n, ok := smallInt(raw); ok {
		return n, nil
	}
	if raw[0] == '"' {
		txt, err := template.AppendText(nil, raw)
		if err != nil {
			return 0, err
		}
		if t, err := time.Parse(time.RFC3339Nano, string(txt)); err == nil {
			return t.UnixMilli(), nil
		}
		if n, err := strconv.ParseFloat(string(txt), 64); err == nil {
			return int64(n), nil
		}
		return 0, fmt.Errorf("%s is neither RFC 3339 time nor epoch milliseconds", raw)
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, fmt.Errorf("%s is neither RFC 3339 time nor epoch milliseconds", raw)
	}
	return int64(f), nil
}

// smallInt parses -?[0-9]{1,18}, the common form of epoch milliseconds, without the string
// strconv.ParseInt needs; anything else is left to timeFrom's general parsing, which gives the
// same value for these.
func smallInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// windowsOf returns the windows [start, end) holding t, oldest first (tumbling and hopping).
func (w Window) windowsOf(t int64, dst [][2]int64) [][2]int64 {
	switch w.Kind {
	case Tumbling:
		size := w.Size.Milliseconds()
		s := floorDiv(t, size) * size
		return append(dst, [2]int64{s, s + size})
	case Hopping:
		size, every := w.Size.Milliseconds(), w.Every.Milliseconds()
		last := floorDiv(t, every) * every
		first := last
		for first-every > t-size {
			first -= every
		}
		for s := first; s <= last; s += every {
			if s <= t && t < s+size {
				dst = append(dst, [2]int64{s, s + size})
			}
		}
		return dst
	}
	return dst
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// DiscardMetrics returns instruments registered nowhere, for operators outside a pipeline
// (`sluice transform test`, benchmarks).
func DiscardMetrics() Metrics {
	c := func(n string) prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: n}) }
	g := func(n string) prometheus.Gauge { return prometheus.NewGauge(prometheus.GaugeOpts{Name: n}) }
	return Metrics{Late: c("late"), WindowsClosed: c("closed"), Slots: g("slots"), StateBytes: g("bytes"), Spilled: g("spilled"), Watermark: g("wm")}
}

// ParseWindow parses a window written as tumbling:1m, hopping:5m/1m or session:30s (the
// command line's form of a manifest's window:); "" is no window.
func ParseWindow(s string) (Window, error) {
	if s == "" {
		return Window{}, nil
	}
	kind, spec, ok := strings.Cut(s, ":")
	bad := fmt.Errorf("window %q: write tumbling:SIZE, hopping:SIZE/EVERY or session:GAP (for example tumbling:1m)", s)
	if !ok {
		return Window{}, bad
	}
	dur := func(v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond {
			return 0, bad
		}
		return d, nil
	}
	switch kind {
	case "tumbling":
		d, err := dur(spec)
		return Window{Kind: Tumbling, Size: d}, err
	case "session":
		d, err := dur(spec)
		return Window{Kind: Session, Gap: d}, err
	case "hopping":
		size, every, ok := strings.Cut(spec, "/")
		if !ok {
			return Window{}, bad
		}
		s, err := dur(size)
		if err != nil {
			return Window{}, err
		}
		e, err := dur(every)
		if err != nil || e > s || s%e != 0 {
			return Window{}, fmt.Errorf("window %q: every must divide the window and be at most it", spec)
		}
		return Window{Kind: Hopping, Size: s, Every: e}, nil
	}
	return Window{}, bad
}
