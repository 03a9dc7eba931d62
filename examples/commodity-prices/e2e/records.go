package e2e

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// The records the driver feeds are shaped like the price API's (priceapi/market.go): the same
// commodities, units and random walks, the same seven malformed forms and spikes of 80 to 120
// standard deviations. Only the time differs: a record's ts is the moment it is produced, which
// is also its Kafka timestamp, so the end-to-end latency is measured from it.

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

type kind uint8

const (
	kindValid kind = iota
	kindOutlier
	kindPriceString
	kindPriceNegative
	kindPriceMissing
	kindCommodityMissing
	kindTSMissing
	kindTSNotATime
	kindPriceNull
)

func (k kind) malformed() bool { return k >= kindPriceString }

// warmup is how many records of a commodity come before its first outlier, so that the anomaly
// stage has a baseline.
const warmup = 50

// produced is what the driver knows of one record it produced.
type produced struct {
	commodity uint8
	kind      kind
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
	p := produced{commodity: uint8(c), kind: kindValid, price: round4(m.level[c])}
	u := m.rng.Float64()
	switch {
	case u < m.malformed:
		p.kind = kind(int(kindPriceString) + m.rng.IntN(7))
	case u < m.malformed+m.outlier && m.ticks[c] >= warmup:
		k := 80 + 40*m.rng.Float64()
		if m.rng.IntN(2) == 0 {
			k = -k
		}
		p.kind = kindOutlier
		p.price = round4(m.level[c] * math.Exp(k*g.sigma))
	}
	m.ticks[c]++
	return p
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// appendJSON writes the record seq as the price API would serve it.
func appendJSON(b []byte, seq int64, p produced) []byte {
	g := goods[p.commodity]
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	if p.kind != kindCommodityMissing {
		b = append(b, `,"commodity":"`...)
		b = append(b, g.name...)
		b = append(b, '"')
	}
	switch p.kind {
	case kindPriceMissing:
	case kindPriceString:
		b = append(b, `,"price":"`...)
		b = strconv.AppendFloat(b, p.price, 'f', -1, 64)
		b = append(b, '"')
	case kindPriceNegative:
		b = append(b, `,"price":`...)
		b = strconv.AppendFloat(b, -p.price, 'f', -1, 64)
	case kindPriceNull:
		b = append(b, `,"price":null`...)
	default:
		b = append(b, `,"price":`...)
		b = strconv.AppendFloat(b, p.price, 'f', -1, 64)
	}
	b = append(b, `,"unit":"`...)
	b = append(b, g.unit...)
	b = append(b, '"')
	switch p.kind {
	case kindTSMissing:
	case kindTSNotATime:
		b = append(b, `,"ts":"yesterday"`...)
	default:
		b = append(b, `,"ts":"`...)
		b = time.UnixMilli(p.tsMS).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, '"')
	}
	return append(b, '}')
}
