package main

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sluicehq/sluice/examples/commodity-prices/pricerecord"
)

// commodity is one traded good: its name, quote unit, opening price and volatility per tick (the
// standard deviation of the log of one step of its random walk).
type commodity struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Open  float64 `json:"open"`
	Sigma float64 `json:"sigma"`
}

// commodities are the goods the API quotes, in the order each tick produces them.
var commodities = []commodity{
	{"corn", "USD/bushel", 4.52, 0.001},
	{"wheat", "USD/bushel", 5.87, 0.001},
	{"soybeans", "USD/bushel", 11.94, 0.001},
	{"gold", "USD/troy_oz", 2034.10, 0.001},
	{"crude_oil", "USD/barrel", 78.36, 0.0015},
	{"silver", "USD/troy_oz", 23.12, 0.0012},
	{"copper", "USD/lb", 3.86, 0.001},
	{"coffee", "USD/lb", 1.83, 0.0012},
	{"natural_gas", "USD/MMBtu", 2.61, 0.002},
	{"cotton", "USD/lb", 0.81, 0.001},
}

// quote is one produced record, kept compact (the API renders its JSON when it is asked for).
type quote struct {
	ts        int64 // event time, Unix milliseconds
	price     float64
	commodity uint8
	kind      pricerecord.Kind
}

// warmup is how many ticks of a commodity come before its first outlier, so that a detector has a
// baseline to measure a spike against.
const warmup = 50

// marketConfig says what a market produces.
type marketConfig struct {
	seed      uint64
	rate      float64 // ticks per second of event time; each tick quotes every commodity once
	malformed float64 // share of records that are malformed
	outlier   float64 // share of records that are outliers
	total     int64   // stop after this many records; 0: never
	start     time.Time
	goods     []commodity
}

// market holds every record produced so far; seq n (from 1) is quotes[n-1]. Safe for concurrent use.
type market struct {
	cfg marketConfig

	mu     sync.RWMutex
	quotes []quote
	rng    *rand.Rand
	level  []float64 // current price of each commodity
	tick   int64     // next tick to produce
	next   int       // next commodity of the tick
	done   bool      // total reached
}

func newMarket(cfg marketConfig) *market {
	m := &market{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15))}
	for _, c := range cfg.goods {
		m.level = append(m.level, c.Open)
	}
	return m
}

// advance produces every record whose event time is at or before upTo, stopping at the total.
func (m *market) advance(upTo time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	startMS := m.cfg.start.UnixMilli()
	for !m.done {
		ts := startMS + int64(math.Round(float64(m.tick)*1000/m.cfg.rate))
		if ts > upTo.UnixMilli() {
			break
		}
		m.quotes = append(m.quotes, m.produce(m.next, ts))
		if m.cfg.total > 0 && int64(len(m.quotes)) >= m.cfg.total {
			m.done = true
		}
		if m.next++; m.next == len(m.cfg.goods) {
			m.next = 0
			m.tick++
		}
	}
}

// produce draws the next step of commodity c's random walk and what becomes of its record.
func (m *market) produce(c int, ts int64) quote {
	g := m.cfg.goods[c]
	m.level[c] *= math.Exp(g.Sigma * m.rng.NormFloat64())
	q := quote{ts: ts, price: round4(m.level[c]), commodity: uint8(c), kind: pricerecord.Valid}
	u := m.rng.Float64()
	switch {
	case u < m.cfg.malformed:
		q.kind = pricerecord.MalformedKinds[m.rng.IntN(len(pricerecord.MalformedKinds))]
	case u < m.cfg.malformed+m.cfg.outlier && m.tick >= warmup:
		// A spike of 80 to 120 standard deviations of one step, up or down; the walk goes on from
		// its level, as after a bad print.
		k := 80 + 40*m.rng.Float64()
		if m.rng.IntN(2) == 0 {
			k = -k
		}
		q.kind = pricerecord.Outlier
		q.price = round4(m.level[c] * math.Exp(k*g.Sigma))
	}
	return q
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// page returns up to n records after seq since, the seq of the last one, and whether later
// records exist or may still come.
func (m *market) page(since int64, n int) (qs []quote, first int64, done bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	since = max(since, 0)
	if since < int64(len(m.quotes)) {
		end := min(int64(len(m.quotes)), since+int64(n))
		qs = m.quotes[since:end]
	}
	return qs, since + 1, m.done
}

// appendJSON writes record seq's JSON object.
func (m *market) appendJSON(b []byte, seq int64, q quote) []byte {
	g := m.cfg.goods[q.commodity]
	return pricerecord.AppendJSON(b, seq, q.kind, g.Name, g.Unit, q.price, q.ts)
}

// counts are the records produced so far, by what they are.
type counts struct {
	Produced  int64 `json:"produced"`
	Valid     int64 `json:"valid"` // outliers included: they are valid records
	Malformed int64 `json:"malformed"`
	Outliers  int64 `json:"outliers"`
}

func (c *counts) add(k pricerecord.Kind) {
	c.Produced++
	switch {
	case k.Malformed():
		c.Malformed++
	case k == pricerecord.Outlier:
		c.Valid++
		c.Outliers++
	default:
		c.Valid++
	}
}

// stats is the body of GET /v1/stats.
type stats struct {
	counts
	Done          bool              `json:"done"`
	LastSeq       int64             `json:"last_seq"`
	ByCommodity   map[string]counts `json:"by_commodity"`
	MalformedKind map[string]int64  `json:"malformed_by_kind"`
	// With ?seqs=1: the seq of every outlier and malformed record.
	OutlierSeqs   []int64 `json:"outlier_seqs,omitempty"`
	MalformedSeqs []int64 `json:"malformed_seqs,omitempty"`
}

func (m *market) stats(seqs bool) stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := stats{Done: m.done, LastSeq: int64(len(m.quotes)), ByCommodity: map[string]counts{}, MalformedKind: map[string]int64{}}
	for i, q := range m.quotes {
		s.add(q.kind)
		name := m.cfg.goods[q.commodity].Name
		c := s.ByCommodity[name]
		c.add(q.kind)
		s.ByCommodity[name] = c
		if q.kind.Malformed() {
			s.MalformedKind[q.kind.String()]++
		}
		if seqs && q.kind == pricerecord.Outlier {
			s.OutlierSeqs = append(s.OutlierSeqs, int64(i+1))
		}
		if seqs && q.kind.Malformed() {
			s.MalformedSeqs = append(s.MalformedSeqs, int64(i+1))
		}
	}
	return s
}
