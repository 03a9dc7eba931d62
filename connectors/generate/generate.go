// Package generate provides the generate source: synthetic records from a template, at a fixed
// rate or as fast as possible, for demos, load tests and benchmarks.
package generate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// DefaultTemplate is the record value when the manifest gives none.
const DefaultTemplate = `{"seq":{{seq}},"ts":"{{now}}","value":{{rand_float 0 100}}}`

var spec = connector.Spec{
	Name:    "generate",
	Summary: "Generates records from a template: a sequence number, timestamps and random values.",
	Description: "Each record value is rendered from `template`, where these placeholders are replaced:\n\n" +
		"| placeholder | value |\n|---|---|\n" +
		"| `{{seq}}` | the record's sequence number, from 1 |\n" +
		"| `{{now}}` | the current time, RFC 3339 with milliseconds, UTC |\n" +
		"| `{{now_ms}}` | the current time in epoch milliseconds |\n" +
		"| `{{rand_int MIN MAX}}` | a random integer in [MIN, MAX] |\n" +
		"| `{{rand_float MIN MAX}}` | a random number in [MIN, MAX), two decimals |\n" +
		"| `{{rand_string N}}` | N random lowercase letters |\n" +
		"| `{{pick A B C}}` | one of the words, at random |\n\n" +
		"The time is taken once per batch. With `count` the source is bounded and ends after that many records; " +
		"its position is the sequence number, so a restarted pipeline continues after the last delivered record " +
		"(random values are drawn afresh). The key, when `key` is set, is rendered from the same placeholders.\n\n" +
		"Positions are ordered (the sequence number), so the source can feed a pipeline with `delivery: exactly_once`.",
	Fields: []connector.Field{
		{Name: "template", Type: connector.TypeString, Default: DefaultTemplate, Description: "The record value, with placeholders."},
		{Name: "key", Type: connector.TypeString, Default: "", Description: "The record key, with placeholders; empty for no key.", Example: "{{pick gold silver copper}}"},
		{Name: "count", Type: connector.TypeInt, Default: int64(0), Description: "Records to generate; 0 generates forever."},
		{Name: "rate", Type: connector.TypeFloat, Default: float64(0), Description: "Records per second; 0 generates as fast as the pipeline takes them."},
		{Name: "batch_size", Type: connector.TypeInt, Default: int64(1024), Description: "Records per batch."},
		{Name: "seed", Type: connector.TypeInt, Default: int64(0), Description: "Seed of the random values; 0 seeds from the clock."},
	},
}

// Component returns the generate source, for a catalog.
func Component() connector.Component {
	return connector.SourceComponent(spec, func(cfg connector.Config, env connector.Env) (connector.Source, error) {
		return New(cfg, env)
	})
}

// Source generates records. Read is called from one goroutine.
type Source struct {
	value, key []segment
	count      int64
	rate       float64
	batch      int
	rng        *rand.Rand
	seq        int64 // last generated sequence number
	start      time.Time
	startSeq   int64
}

var (
	_ connector.Source              = (*Source)(nil)
	_ connector.BacklogSource       = (*Source)(nil)
	_ connector.ComparablePositions = (*Source)(nil)
)

// PositionsComparable is true: a record's position is its sequence number.
func (s *Source) PositionsComparable() bool { return true }

// New builds a generate source. It does no I/O.
func New(cfg connector.Config, _ connector.Env) (*Source, error) {
	var c struct {
		Template  string  `config:"template"`
		Key       string  `config:"key"`
		Count     int64   `config:"count"`
		Rate      float64 `config:"rate"`
		BatchSize int     `config:"batch_size"`
		Seed      int64   `config:"seed"`
	}
	if err := spec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	value, err := parse(c.Template)
	if err != nil {
		return nil, &connector.ConfigError{Field: "template", Msg: err.Error()}
	}
	key, err := parse(c.Key)
	if err != nil {
		return nil, &connector.ConfigError{Field: "key", Msg: err.Error()}
	}
	s := &Source{value: value, key: key, count: c.Count, rate: c.Rate, batch: c.BatchSize}
	if s.count < 0 {
		return nil, &connector.ConfigError{Field: "count", Msg: "must not be negative"}
	}
	if s.rate < 0 {
		return nil, &connector.ConfigError{Field: "rate", Msg: "must not be negative"}
	}
	if s.batch <= 0 {
		return nil, &connector.ConfigError{Field: "batch_size", Msg: "must be greater than 0"}
	}
	seed := uint64(c.Seed)
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return s, nil
}

// Open continues after the resumed sequence number.
func (s *Source) Open(_ context.Context, resume []connector.Position) error {
	for _, p := range resume {
		if p.Partition == "generate" {
			s.seq = p.Offset
		}
	}
	s.start, s.startSeq = time.Now(), s.seq
	return nil
}

// Backlog reports, for a bounded source (count set), the records left after the given position.
// An unbounded source has no end and reports nothing.
func (s *Source) Backlog(_ context.Context, after []connector.Position) ([]connector.Backlog, error) {
	if s.count == 0 {
		return nil, nil
	}
	var done int64
	for _, p := range after {
		if p.Partition == "generate" {
			done = p.Offset
		}
	}
	return []connector.Backlog{{Partition: "generate", Records: max(0, s.count-done), Bytes: -1}}, nil
}

// Read renders the next batch, waiting as the rate requires.
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	n := int64(s.batch)
	if s.count > 0 {
		if s.seq >= s.count {
			return nil, io.EOF
		}
		n = min(n, s.count-s.seq)
	}
	if s.rate > 0 {
		// Records due by now; wait for at least one.
		for {
			due := int64(time.Since(s.start).Seconds()*s.rate) - (s.seq - s.startSeq)
			if due > 0 {
				n = min(n, due)
				break
			}
			wait := time.Duration(float64(time.Second) / s.rate)
			t := time.NewTimer(min(wait, 100*time.Millisecond))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	} else if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	nowText := now.Format("2006-01-02T15:04:05.000Z07:00")
	recs := make([]connector.Record, n)
	ends := make([]int, 2*n) // key end and value end of each record in the arena
	arena := make([]byte, 0, int(n)*estimate(s.value, s.key))
	for i := range recs {
		s.seq++
		arena = s.render(arena, s.key, now, nowText)
		ends[2*i] = len(arena)
		arena = s.render(arena, s.value, now, nowText)
		ends[2*i+1] = len(arena)
		recs[i].Time = now
		recs[i].Position = connector.Position{Partition: "generate", Offset: s.seq}
	}
	start := 0
	for i := range recs {
		k, v := ends[2*i], ends[2*i+1]
		if k > start {
			recs[i].Key = arena[start:k:k]
		}
		recs[i].Value = arena[k:v:v]
		start = v
	}
	return recs, nil
}

// Ack has nothing to commit.
func (s *Source) Ack(context.Context, []connector.Position) error { return nil }

// Close does nothing.
func (s *Source) Close(context.Context) error { return nil }

type kind uint8

const (
	lit kind = iota
	seqK
	nowK
	nowMsK
	randInt
	randFloat
	randString
	pick
)

type segment struct {
	kind   kind
	text   []byte
	lo, hi float64 // rand_float bounds
	n, m   int64   // rand_int bounds; rand_string length
	words  []string
}

// parseInt reads a placeholder's integer argument: decimal digits, or a number written as a float
// ("1e3") whose value is an integer a float64 holds exactly (up to 2^53 in magnitude).
func parseInt(s string) (int64, bool) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x != math.Trunc(x) || math.Abs(x) > 1<<53 {
		return 0, false
	}
	return int64(x), true
}

func parse(t string) ([]segment, error) {
	var out []segment
	for len(t) > 0 {
		i := strings.Index(t, "{{")
		if i < 0 {
			out = append(out, segment{kind: lit, text: []byte(t)})
			break
		}
		if i > 0 {
			out = append(out, segment{kind: lit, text: []byte(t[:i])})
		}
		j := strings.Index(t[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unclosed placeholder at %q", t[i:])
		}
		f := strings.Fields(t[i+2 : i+j])
		t = t[i+j+2:]
		if len(f) == 0 {
			return nil, fmt.Errorf("empty placeholder {{}}")
		}
		seg, err := placeholder(f)
		if err != nil {
			return nil, err
		}
		out = append(out, seg)
	}
	return out, nil
}

func placeholder(f []string) (segment, error) {
	args := func(want int) error {
		if len(f)-1 != want {
			return fmt.Errorf("{{%s}} takes %d argument(s), got %d", f[0], want, len(f)-1)
		}
		return nil
	}
	ints := func(want int) ([]int64, error) {
		if err := args(want); err != nil {
			return nil, err
		}
		out := make([]int64, want)
		for k := range out {
			v, ok := parseInt(f[k+1])
			if !ok {
				return nil, fmt.Errorf("{{%s}}: %q is not an integer in [%d, %d]", f[0], f[k+1], int64(math.MinInt64), int64(math.MaxInt64))
			}
			out[k] = v
		}
		return out, nil
	}
	switch f[0] {
	case "seq", "now", "now_ms":
		if len(f) != 1 {
			return segment{}, fmt.Errorf("{{%s}} takes no arguments", f[0])
		}
		return segment{kind: map[string]kind{"seq": seqK, "now": nowK, "now_ms": nowMsK}[f[0]]}, nil
	case "rand_int":
		v, err := ints(2)
		if err != nil {
			return segment{}, err
		}
		if v[1] < v[0] {
			return segment{}, fmt.Errorf("{{%s %d %d}}: MAX is below MIN", f[0], v[0], v[1])
		}
		return segment{kind: randInt, n: v[0], m: v[1]}, nil
	case "rand_float":
		if err := args(2); err != nil {
			return segment{}, err
		}
		var v [2]float64
		for k := range v {
			x, err := strconv.ParseFloat(f[k+1], 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return segment{}, fmt.Errorf("{{%s}}: %q is not a number", f[0], f[k+1])
			}
			if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
				return segment{}, fmt.Errorf("{{%s}}: %q is not a finite number (the largest is %g)", f[0], f[k+1], math.MaxFloat64)
			}
			v[k] = x
		}
		if v[1] < v[0] {
			return segment{}, fmt.Errorf("{{%s %v %v}}: MAX is below MIN", f[0], v[0], v[1])
		}
		return segment{kind: randFloat, lo: v[0], hi: v[1]}, nil
	case "rand_string":
		v, err := ints(1)
		if err != nil {
			return segment{}, err
		}
		if v[0] < 0 || v[0] > 4096 {
			return segment{}, fmt.Errorf("{{rand_string N}}: N must be in [0, 4096]")
		}
		return segment{kind: randString, n: v[0]}, nil
	case "pick":
		if len(f) < 2 {
			return segment{}, fmt.Errorf("{{pick}} needs at least one word")
		}
		return segment{kind: pick, words: f[1:]}, nil
	}
	return segment{}, fmt.Errorf("unknown placeholder {{%s}}; known: seq, now, now_ms, rand_int, rand_float, rand_string, pick", f[0])
}

func estimate(segs ...[]segment) int {
	n := 0
	for _, ss := range segs {
		for _, s := range ss {
			switch s.kind {
			case lit:
				n += len(s.text)
			case nowK:
				n += 24
			case randString:
				n += int(s.n)
			default:
				n += 20
			}
		}
	}
	return n
}

func (s *Source) render(b []byte, segs []segment, now time.Time, nowText string) []byte {
	for i := range segs {
		g := &segs[i]
		switch g.kind {
		case lit:
			b = append(b, g.text...)
		case seqK:
			b = strconv.AppendInt(b, s.seq, 10)
		case nowK:
			b = append(b, nowText...)
		case nowMsK:
			b = strconv.AppendInt(b, now.UnixMilli(), 10)
		case randInt:
			// The span is computed in uint64, where it cannot overflow; the full int64 range
			// spans every uint64.
			r := s.rng.Uint64()
			if span := uint64(g.m) - uint64(g.n); span != math.MaxUint64 {
				r = s.rng.Uint64N(span + 1)
			}
			b = strconv.AppendInt(b, int64(uint64(g.n)+r), 10)
		case randFloat:
			u := s.rng.Float64()
			v := g.lo + u*(g.hi-g.lo)
			if math.IsInf(g.hi-g.lo, 0) { // the span overflows: weigh the bounds instead
				v = g.lo*(1-u) + g.hi*u
			}
			b = strconv.AppendFloat(b, min(max(v, g.lo), g.hi), 'f', 2, 64)
		case randString:
			for k := 0; k < int(g.n); k++ {
				b = append(b, byte('a'+s.rng.IntN(26)))
			}
		case pick:
			b = append(b, g.words[s.rng.IntN(len(g.words))]...)
		}
	}
	return b
}
