package e2e

import (
	"math"
	"math/rand/v2"

	"github.com/sluicehq/sluice/examples/commodity-prices/pricerecord"
)

// The records the driver feeds are shaped like the price API's (priceapi/market.go): the same
// commodities, units and random walks, the same seven malformed forms and spikes of 80 to 120
// standard deviations, written by the same code (package pricerecord). Only the time differs: a
// record's Kafka timestamp is the moment it is produced, so the end-to-end latency is measured
// from it, and so is its ts when the feed is paced (driver.go).

type good struct {
	name, unit  string
	open, sigma float64
}

var goods = []good{
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

// warmup is how many records of a commodity come before its first outlier, so that the anomaly
// stage has a baseline.
const warmup = 50

// produced is what the driver knows of one record it produced.
type produced struct {
	commodity uint8
	kind      pricerecord.Kind
	price     float64 // as written (valid records and outliers)
	tsMS      int64   // production time, Unix milliseconds
}

// market draws the records: each commodity in turn takes one step of its random walk.
type market struct {
	rng                *rand.Rand
	level              []float64
	ticks              []int64
	next               int
	malformed, outlier float64
}

func newMarket(seed uint64, malformed, outlier float64) *market {
	m := &market{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), malformed: malformed, outlier: outlier}
	for _, g := range goods {
		m.level = append(m.level, g.open)
		m.ticks = append(m.ticks, 0)
	}
	return m
}

// draw returns the next record's commodity, kind and price.
func (m *market) draw() produced {
	c := m.next
	m.next = (m.next + 1) % len(goods)
	g := goods[c]
	m.level[c] *= math.Exp(g.sigma * m.rng.NormFloat64())
	p := produced{commodity: uint8(c), kind: pricerecord.Valid, price: round4(m.level[c])}
	u := m.rng.Float64()
	switch {
	case u < m.malformed:
		p.kind = pricerecord.MalformedKinds[m.rng.IntN(len(pricerecord.MalformedKinds))]
	case u < m.malformed+m.outlier && m.ticks[c] >= warmup:
		k := 80 + 40*m.rng.Float64()
		if m.rng.IntN(2) == 0 {
			k = -k
		}
		p.kind = pricerecord.Outlier
		p.price = round4(m.level[c] * math.Exp(k*g.sigma))
	}
	m.ticks[c]++
	return p
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// appendJSON writes the record seq as the price API would serve it.
func appendJSON(b []byte, seq int64, p produced) []byte {
	g := goods[p.commodity]
	return pricerecord.AppendJSON(b, seq, p.kind, g.name, g.unit, p.price, p.tsMS)
}
