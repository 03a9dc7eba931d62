package iceberg

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// Parsers of one JSON value into a column's type. They take the bytes of a span (a number's
// text, a string's content) and never allocate on success.

var (
	errNotInteger = errors.New("not an integer")
	errNotNumber  = errors.New("not a number")
	errRange      = errors.New("out of range")
	errDate       = errors.New("not a date (want YYYY-MM-DD)")
	errTime       = errors.New("not a time (want HH:MM:SS[.ffffff])")
	errTimestamp  = errors.New("not a timestamp (want RFC 3339: 2006-01-02T15:04:05.999999Z)")
	errUUID       = errors.New("not a UUID")
)

// parseInt reads a JSON integer (no fraction, no exponent) that fits in bits.
func parseInt(b []byte, bits int) (int64, error) {
	if len(b) == 0 {
		return 0, errNotInteger
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || (len(b) > 1 && b[0] == '0') {
		return 0, errNotInteger
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errNotInteger
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, errRange
		}
		u = u*10 + uint64(c-'0')
	}
	limit := uint64(1) << (bits - 1)
	if neg {
		if u > limit {
			return 0, errRange
		}
		return -int64(u), nil
	}
	if u >= limit {
		return 0, errRange
	}
	return int64(u), nil
}

// parseFloat reads a JSON number as a float of the given size.
func parseFloat(b []byte, bits int) (float64, error) {
	if !validNumber(b) {
		return 0, errNotNumber
	}
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), bits)
	if err != nil {
		return 0, errRange
	}
	return f, nil
}

// validNumber checks the JSON number grammar, which is stricter than strconv's.
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}

// pow10 holds 10^0 .. 10^38 as decimal128 numbers.
var pow10 = func() [39]decimal128.Num {
	var p [39]decimal128.Num
	p[0] = decimal128.FromU64(1)
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1].Mul(decimal128.FromU64(10))
	}
	return p
}()

// parseDecimal reads a number (as JSON number text or a string's content) into the unscaled
// value of a decimal(precision, scale). Digits past the scale must be zeros: the sink does not
// round.
func parseDecimal(b []byte, precision, scale int) (decimal128.Num, error) {
	if !validNumber(b) {
		return decimal128.Num{}, errNotNumber
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	mant, exp := b, 0
	for i, c := range b {
		if c == 'e' || c == 'E' {
			mant = b[:i]
			e, err := strconv.Atoi(unsafe.String(unsafe.SliceData(b[i+1:]), len(b)-i-1))
			if err != nil || e > 1000 || e < -1000 {
				return decimal128.Num{}, errRange
			}
			exp = e
			break
		}
	}
	// The value is D × 10^(exp - nfrac), D the mantissa's digits; unscaled it is D × 10^k.
	nfrac := 0
	if i := bytes.IndexByte(mant, '.'); i >= 0 {
		nfrac = len(mant) - i - 1
	}
	k := exp - nfrac + scale
	// the digits of D, without the point, as positions into mant
	nd := len(mant)
	if nfrac > 0 {
		nd--
	}
	digit := func(j int) byte { // j-th digit of D
		if nfrac > 0 && j >= len(mant)-nfrac-1 {
			j++
		}
		return mant[j] - '0'
	}
	keep := nd
	if k < 0 { // the last -k digits fall below the scale and must be zeros
		for j := max(nd+k, 0); j < nd; j++ {
			if digit(j) != 0 {
				return decimal128.Num{}, fmt.Errorf("has more than %d decimal places", scale)
			}
		}
		keep = max(nd+k, 0)
		k = 0
	}
	first := 0
	for first < keep && digit(first) == 0 {
		first++
	}
	if keep-first+k > precision {
		return decimal128.Num{}, fmt.Errorf("does not fit decimal(%d,%d)", precision, scale)
	}
	var small uint64
	j := first
	for ; j < keep && j-first < 18; j++ {
		small = small*10 + uint64(digit(j))
	}
	v := decimal128.FromU64(small)
	for ; j < keep; j++ {
		v = v.Mul(pow10[1]).Add(decimal128.FromU64(uint64(digit(j))))
	}
	if k > 0 && keep > first {
		v = v.Mul(pow10[k])
	}
	if neg {
		v = v.Negate()
	}
	return v, nil
}

func digits(b []byte, n int) (int, bool) {
	if len(b) < n {
		return 0, false
	}
	v := 0
	for _, c := range b[:n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// daysFromCivil is the number of days from 1970-01-01 to the given proleptic Gregorian date.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func daysIn(y, m int) int {
	switch m {
	case 4, 6, 9, 11:
		return 30
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return 31
}

// parseDate reads YYYY-MM-DD into days since the epoch.
func parseDate(b []byte) (int64, error) {
	days, rest, err := parseDatePart(b)
	if err != nil {
		return 0, err
	}
	if len(rest) != 0 {
		return 0, errDate
	}
	return days, nil
}

func parseDatePart(b []byte) (int64, []byte, error) {
	bad := errDate
	y, ok1 := digits(b, 4)
	if !ok1 || len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return 0, nil, bad
	}
	m, ok2 := digits(b[5:], 2)
	d, ok3 := digits(b[8:], 2)
	if !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, nil, bad
	}
	return daysFromCivil(y, m, d), b[10:], nil
}

// parseClock reads HH:MM[:SS[.fraction]] into microseconds since midnight, and returns the rest.
func parseClock(b []byte) (int64, []byte, error) {
	bad := errTime
	h, ok1 := digits(b, 2)
	if !ok1 || len(b) < 5 || b[2] != ':' {
		return 0, nil, bad
	}
	mi, ok2 := digits(b[3:], 2)
	if !ok2 || h > 23 || mi > 59 {
		return 0, nil, bad
	}
	us := int64(h)*3600e6 + int64(mi)*60e6
	b = b[5:]
	if len(b) >= 3 && b[0] == ':' {
		s, ok := digits(b[1:], 2)
		if !ok || s > 60 { // a leap second is read as the next second's start
			return 0, nil, bad
		}
		us += int64(s) * 1e6
		b = b[3:]
		if len(b) > 0 && (b[0] == '.' || b[0] == ',') {
			b = b[1:]
			n := 0
			var frac int64
			for n < len(b) && b[n] >= '0' && b[n] <= '9' {
				if n < 6 {
					frac = frac*10 + int64(b[n]-'0')
				}
				n++
			}
			if n == 0 {
				return 0, nil, bad
			}
			for k := n; k < 6; k++ {
				frac *= 10
			}
			us += frac
			b = b[n:]
		}
	}
	return us, b, nil
}

// parseTime reads a time of day into microseconds since midnight.
func parseTime(b []byte) (int64, error) {
	us, rest, err := parseClock(b)
	if err != nil {
		return 0, err
	}
	if len(rest) != 0 {
		return 0, errTime
	}
	return us, nil
}

// parseTimestamp reads an RFC 3339 timestamp (the 'T' may be a space; seconds, fraction and zone
// optional; a date alone means midnight) into microseconds since the epoch, in UTC. A timestamp
// without a zone is taken as UTC.
func parseTimestamp(b []byte) (int64, error) {
	bad := errTimestamp
	days, rest, err := parseDatePart(b)
	if err != nil {
		return 0, bad
	}
	us := days * 86400e6
	if len(rest) == 0 {
		return us, nil
	}
	if rest[0] != 'T' && rest[0] != 't' && rest[0] != ' ' {
		return 0, bad
	}
	clock, rest, err := parseClock(rest[1:])
	if err != nil {
		return 0, bad
	}
	us += clock
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case rest[0] == '+' || rest[0] == '-':
		h, ok1 := digits(rest[1:], 2)
		m, ok2 := 0, true
		switch len(rest) {
		case 3:
		case 6:
			if rest[3] != ':' {
				return 0, bad
			}
			m, ok2 = digits(rest[4:], 2)
		case 5:
			m, ok2 = digits(rest[3:], 2)
		default:
			return 0, bad
		}
		if !ok1 || !ok2 || h > 23 || m > 59 {
			return 0, bad
		}
		off := int64(h)*3600e6 + int64(m)*60e6
		if rest[0] == '+' {
			us -= off
		} else {
			us += off
		}
	default:
		return 0, bad
	}
	return us, nil
}

// parseUUID reads a UUID in its canonical form (8-4-4-4-12 hex digits) or as 32 hex digits.
func parseUUID(b []byte) ([16]byte, error) {
	var u [16]byte
	switch len(b) {
	case 36:
		if b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
			return u, errUUID
		}
	case 32:
	default:
		return u, errUUID
	}
	j := 0
	for i := 0; i < len(b); {
		if b[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(b[i])
		lo, ok2 := unhex(b[i+1])
		if !ok1 || !ok2 || j >= 16 {
			return u, errUUID
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	if j != 16 {
		return u, errUUID
	}
	return u, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendBase64 decodes standard base64 (as encoding/json writes []byte) and appends it to dst.
func appendBase64(dst, b []byte) ([]byte, error) {
	n := base64.StdEncoding.DecodedLen(len(b))
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	m, err := base64.StdEncoding.Decode(dst[start:], b)
	if err != nil {
		return dst[:start], errors.New("not base64")
	}
	return dst[:start+m], nil
}
