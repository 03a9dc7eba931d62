package main

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/sluicehq/sluice/sdk/go/transform"
)

// The exact reasons of ../SPEC.md section 2.
const (
	reasonNotJSON          = "not valid JSON"
	reasonNotObject        = "not a JSON object"
	reasonCommodityMissing = "commodity: missing"
	reasonCommodityDup     = "commodity: duplicate key"
	reasonCommodityType    = "commodity: must be a non-empty string"
	reasonPriceMissing     = "price: missing"
	reasonPriceDup         = "price: duplicate key"
	reasonPriceType        = "price: must be a number"
	reasonPricePositive    = "price: must be greater than 0"
	reasonPriceMaxPrefix   = "price: must be at most "
	reasonTSMissing        = "ts: missing"
	reasonTSDup            = "ts: duplicate key"
	reasonTSInvalid        = "ts: must be an RFC 3339 string or epoch milliseconds"

	defaultMaxText = "1000000000"
	maxDepth       = 64
	maxEpochMillis = 253402300799999
)

// limits is the parsed config.
type limits struct {
	max       float64
	maxReason string // reasonPriceMaxPrefix + MAXTEXT
}

func defaultLimits() limits {
	return limits{max: 1e9, maxReason: reasonPriceMaxPrefix + defaultMaxText}
}

// parseConfig reads the config object (SPEC section 1). MAXTEXT is the literal number token.
func parseConfig(cfg []byte) (limits, error) {
	l := defaultLimits()
	t := bytes.TrimLeft(cfg, " \t\r\n")
	if len(t) == 0 || string(bytes.TrimRight(t, " \t\r\n")) == "null" {
		return l, nil
	}
	if !utf8.Valid(cfg) {
		return l, errors.New("config: not valid UTF-8")
	}
	var err error
	p := parser{s: cfg}
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return l, errors.New("config: must be a JSON object")
	}
	p.i++
	p.depth = 1
	p.ws()
	if p.peek() == '}' {
		p.i++
	} else {
		for {
			ks, ke, ok := p.str()
			if !ok {
				return l, errors.New("config: not valid JSON")
			}
			p.ws()
			if p.peek() != ':' {
				return l, errors.New("config: not valid JSON")
			}
			p.i++
			p.ws()
			vs := p.i
			kind, ok := p.value()
			if !ok {
				return l, errors.New("config: not valid JSON")
			}
			if !nameIs(cfg[ks:ke], "max_price") {
				return l, errors.New("config: unknown key " + strconv.Quote(string(cfg[ks:ke])) + " (the only key is max_price)")
			}
			if kind != kindNumber {
				return l, errors.New("config: max_price must be a number")
			}
			tok := cfg[vs:p.i]
			l.max = toFloat(tok)
			if !(l.max > 0) {
				return l, errors.New("config: max_price must be greater than 0")
			}
			if math.IsInf(l.max, 0) {
				return l, errors.New("config: max_price must be a finite number")
			}
			l.maxReason = reasonPriceMaxPrefix + string(tok)
			p.ws()
			if p.peek() == ',' {
				p.i++
				p.ws()
				continue
			}
			if p.peek() != '}' {
				return l, errors.New("config: not valid JSON")
			}
			p.i++
			break
		}
	}
	p.ws()
	if p.i != len(p.s) {
		return l, errors.New("config: not valid JSON")
	}
	return l, err
}

// field is what the scan found about one of the three checked members.
type field struct {
	count      int
	kind       byte
	start, end int // the value token; for strings, the bytes between the quotes
}

// check applies SPEC section 2 to one record value. It returns ok, or the code and reason of the
// first failing check.
func check(v []byte, l *limits) (ok bool, code transform.Code, reason string) {
	var commodity, price, ts field
	p := parser{s: v}
	p.ws()
	if p.peek() != '{' {
		if _, ok := p.value(); !ok {
			return false, transform.CodeInvalidInput, reasonNotJSON
		}
		p.ws()
		if p.i != len(p.s) {
			return false, transform.CodeInvalidInput, reasonNotJSON
		}
		return false, transform.CodeInvalidInput, reasonNotObject
	}
	p.i++
	p.depth = 1
	p.ws()
	if p.peek() == '}' {
		p.i++
	} else {
		for {
			ks, ke, ok := p.str()
			if !ok {
				return false, transform.CodeInvalidInput, reasonNotJSON
			}
			p.ws()
			if p.peek() != ':' {
				return false, transform.CodeInvalidInput, reasonNotJSON
			}
			p.i++
			p.ws()
			var f *field
			if name := v[ks:ke]; !p.esc {
				// No escapes: the raw bytes are the name.
				switch string(name) {
				case "commodity":
					f = &commodity
				case "price":
					f = &price
				case "ts":
					f = &ts
				}
			} else {
				switch {
				case nameIs(name, "commodity"):
					f = &commodity
				case nameIs(name, "price"):
					f = &price
				case nameIs(name, "ts"):
					f = &ts
				}
			}
			// Dispatch on the first byte here: every call costs in Go's WebAssembly code.
			vs := p.i
			var kind byte
			switch c := p.peek(); {
			case c == '"':
				kind = kindString
				_, _, ok = p.str()
			case c == '-' || c >= '0' && c <= '9':
				kind = kindNumber
				ok = p.number()
			default:
				kind, ok = p.value()
			}
			if !ok {
				return false, transform.CodeInvalidInput, reasonNotJSON
			}
			if f != nil {
				f.count++
				f.kind, f.start, f.end = kind, vs, p.i
				if kind == kindString {
					f.start, f.end = vs+1, p.i-1
				}
			}
			p.ws()
			if p.peek() == ',' {
				p.i++
				p.ws()
				continue
			}
			if p.peek() != '}' {
				return false, transform.CodeInvalidInput, reasonNotJSON
			}
			p.i++
			break
		}
	}
	p.ws()
	if p.i != len(p.s) {
		return false, transform.CodeInvalidInput, reasonNotJSON
	}

	switch {
	case commodity.count == 0:
		return false, transform.CodeSchema, reasonCommodityMissing
	case commodity.count > 1:
		return false, transform.CodeSchema, reasonCommodityDup
	case commodity.kind != kindString || commodity.start == commodity.end:
		return false, transform.CodeSchema, reasonCommodityType
	}
	switch {
	case price.count == 0:
		return false, transform.CodeSchema, reasonPriceMissing
	case price.count > 1:
		return false, transform.CodeSchema, reasonPriceDup
	case price.kind != kindNumber:
		return false, transform.CodeSchema, reasonPriceType
	}
	x := toFloat(v[price.start:price.end])
	if !(x > 0) {
		return false, transform.CodeOutOfRange, reasonPricePositive
	}
	if !(x <= l.max) {
		return false, transform.CodeOutOfRange, l.maxReason
	}
	switch {
	case ts.count == 0:
		return false, transform.CodeSchema, reasonTSMissing
	case ts.count > 1:
		return false, transform.CodeSchema, reasonTSDup
	case ts.kind == kindNumber && epochMillis(v[ts.start:ts.end]):
	case ts.kind == kindString && rfc3339(v[ts.start:ts.end]):
	default:
		return false, transform.CodeSchema, reasonTSInvalid
	}
	return true, 0, ""
}

// pow10 holds the powers of ten that are exact doubles.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// toFloat converts a valid JSON number token to the nearest double; overflow gives ±Inf,
// underflow ±0 (strconv reports range errors alongside exactly those values).
//
// Common tokens take Clinger's fast path: with at most 15 significant digits the mantissa is an
// exact double, and so is 10^e for |e| <= 22, so one IEEE multiplication or division rounds
// correctly. Everything else goes to strconv.ParseFloat.
func toFloat(tok []byte) float64 {
	var mant uint64
	digits, exp, i := 0, 0, 0
	neg := tok[0] == '-'
	if neg {
		i++
	}
	for ; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
		if mant != 0 || tok[i] != '0' {
			digits++
		}
		mant = mant*10 + uint64(tok[i]-'0')
	}
	if i < len(tok) && tok[i] == '.' {
		for i++; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
			if mant != 0 || tok[i] != '0' {
				digits++
			}
			mant = mant*10 + uint64(tok[i]-'0')
			exp--
		}
	}
	if i == len(tok) && digits <= 15 && exp >= -22 {
		f := float64(mant)
		if exp < 0 {
			f /= pow10[-exp]
		}
		if neg {
			f = -f
		}
		return f
	}
	f, _ := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	return f
}

// epochMillis reports whether a number token is an integer (no fraction, no exponent) in
// [0, maxEpochMillis] (SPEC section 6).
func epochMillis(tok []byte) bool {
	neg := false
	if tok[0] == '-' {
		neg, tok = true, tok[1:]
	}
	if len(tok) > 15 {
		return false
	}
	var n int64
	for _, c := range tok {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int64(c-'0')
	}
	if neg && n != 0 {
		return false
	}
	return n <= maxEpochMillis
}

// rfc3339 reports whether the raw contents of a JSON string decode to an RFC 3339 date-time as
// SPEC section 5 defines it.
func rfc3339(raw []byte) bool {
	s := raw
	if bytes.IndexByte(raw, '\\') >= 0 {
		var buf [40]byte
		d, ok := decodeASCII(raw, buf[:0])
		if !ok {
			return false
		}
		s = d
	}
	if len(s) < 20 || len(s) > 35 {
		return false
	}
	digits := func(b []byte) (int, bool) {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return false
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		return ok1 && ok2 && oh <= 23 && om <= 59
	}
	return false
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
