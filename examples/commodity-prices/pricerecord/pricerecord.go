// Package pricerecord is the JSON record of the commodity price API and the forms it takes:
// valid, an outlier, or one of seven malformed forms. The price API (priceapi) serves these
// records and the load driver (e2e) feeds them to Kafka, so both write exactly the same shapes.
package pricerecord

import (
	"strconv"
	"time"
)

// Kind says what a record is: a valid quote, an outlier (valid, but a spike of many standard
// deviations), or one of the malformed forms.
type Kind uint8

const (
	Valid Kind = iota
	Outlier
	PriceString   // "price": "4.52"
	PriceNegative // "price": -4.52
	PriceMissing
	CommodityMissing
	TSMissing
	TSNotATime // "ts": "yesterday"
	PriceNull
)

// MalformedKinds are the malformed forms, in Kind order.
var MalformedKinds = []Kind{PriceString, PriceNegative, PriceMissing, CommodityMissing, TSMissing, TSNotATime, PriceNull}

func (k Kind) String() string {
	return [...]string{"valid", "outlier", "price_string", "price_negative", "price_missing", "commodity_missing", "ts_missing", "ts_not_a_time", "price_null"}[k]
}

// Malformed says whether a record of this kind is one validate_price must reject.
func (k Kind) Malformed() bool { return k >= PriceString }

// AppendJSON appends the JSON object of record seq: a commodity with its unit, a price and an
// event time in Unix milliseconds, written in the form k says.
func AppendJSON(b []byte, seq int64, k Kind, commodity, unit string, price float64, tsMS int64) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	if k != CommodityMissing {
		b = append(b, `,"commodity":"`...)
		b = append(b, commodity...)
		b = append(b, '"')
	}
	switch k {
	case PriceMissing:
	case PriceString:
		b = append(b, `,"price":"`...)
		b = strconv.AppendFloat(b, price, 'f', -1, 64)
		b = append(b, '"')
	case PriceNegative:
		b = append(b, `,"price":`...)
		b = strconv.AppendFloat(b, -price, 'f', -1, 64)
	case PriceNull:
		b = append(b, `,"price":null`...)
	default:
		b = append(b, `,"price":`...)
		b = strconv.AppendFloat(b, price, 'f', -1, 64)
	}
	b = append(b, `,"unit":"`...)
	b = append(b, unit...)
	b = append(b, '"')
	switch k {
	case TSMissing:
	case TSNotATime:
		b = append(b, `,"ts":"yesterday"`...)
	default:
		b = append(b, `,"ts":"`...)
		b = time.UnixMilli(tsMS).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, '"')
	}
	return append(b, '}')
}
