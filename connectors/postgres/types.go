package postgres

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/jackc/pgx/v5/pgtype"
)

// kind is a column type the sink converts to, named by its canonical SQL spelling.
type kind uint8

const (
	kText kind = iota + 1
	kVarchar
	kChar
	kSmallint
	kInteger
	kBigint
	kReal
	kDouble
	kNumeric
	kBoolean
	kTimestamptz
	kTimestamp
	kDate
	kJSONB
	kJSON
	kUUID
	kBytea
)

// kinds maps every accepted spelling of a type (lower case, single spaces) to its kind.
var kinds = map[string]kind{
	"text": kText, "varchar": kVarchar, "character varying": kVarchar, "char": kChar, "character": kChar, "bpchar": kChar,
	"smallint": kSmallint, "int2": kSmallint,
	"integer": kInteger, "int": kInteger, "int4": kInteger,
	"bigint": kBigint, "int8": kBigint,
	"real": kReal, "float4": kReal,
	"double precision": kDouble, "float8": kDouble, "float": kDouble,
	"numeric": kNumeric, "decimal": kNumeric,
	"boolean": kBoolean, "bool": kBoolean,
	"timestamptz": kTimestamptz, "timestamp with time zone": kTimestamptz,
	"timestamp": kTimestamp, "timestamp without time zone": kTimestamp,
	"date":  kDate,
	"jsonb": kJSONB, "json": kJSON,
	"uuid":  kUUID,
	"bytea": kBytea,
}

// kindInfo is what the sink knows of a kind: its SQL name in DDL, the OID of its wire format and
// which type modifiers it takes.
var kindInfo = map[kind]struct {
	sql  string
	oid  uint32
	mods int // how many numbers may follow in parentheses
}{
	kText: {"text", pgtype.TextOID, 0}, kVarchar: {"varchar", pgtype.VarcharOID, 1}, kChar: {"char", pgtype.BPCharOID, 1},
	kSmallint: {"smallint", pgtype.Int2OID, 0}, kInteger: {"integer", pgtype.Int4OID, 0}, kBigint: {"bigint", pgtype.Int8OID, 0},
	kReal: {"real", pgtype.Float4OID, 0}, kDouble: {"double precision", pgtype.Float8OID, 0},
	kNumeric: {"numeric", pgtype.NumericOID, 2}, kBoolean: {"boolean", pgtype.BoolOID, 0},
	kTimestamptz: {"timestamptz", pgtype.TimestamptzOID, 1}, kTimestamp: {"timestamp", pgtype.TimestampOID, 1},
	kDate: {"date", pgtype.DateOID, 0}, kJSONB: {"jsonb", pgtype.JSONBOID, 0}, kJSON: {"json", pgtype.JSONOID, 0},
	kUUID: {"uuid", pgtype.UUIDOID, 0}, kBytea: {"bytea", pgtype.ByteaOID, 0},
}

// supportedTypes lists the accepted type names for error messages.
const supportedTypes = "text, varchar(n), char(n), smallint, integer, bigint, real, double precision, numeric(p,s), " +
	"boolean, timestamptz, timestamp, date, jsonb, json, uuid, bytea"

// sqlType is a declared column type.
type sqlType struct {
	kind kind
	mods []int // type modifiers: varchar(n), numeric(p,s), timestamptz(p)
}

var typeSyntax = regexp.MustCompile(`^([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$`)

// parseType reads a declared type such as "double precision", "varchar(32)" or "numeric(12, 4)".
func parseType(s string) (sqlType, error) {
	norm := strings.Join(strings.Fields(strings.ToLower(s)), " ")
	m := typeSyntax.FindStringSubmatch(norm)
	if m == nil {
		return sqlType{}, fmt.Errorf("%q is not a supported type (supported: %s)", s, supportedTypes)
	}
	k, ok := kinds[m[1]]
	if !ok {
		return sqlType{}, fmt.Errorf("%q is not a supported type (supported: %s)", s, supportedTypes)
	}
	t := sqlType{kind: k}
	for _, d := range m[2:] {
		if d == "" {
			continue
		}
		n, err := strconv.Atoi(d)
		if err != nil || n > 10000 {
			return sqlType{}, fmt.Errorf("%q: modifier %s is out of range", s, d)
		}
		t.mods = append(t.mods, n)
	}
	if len(t.mods) > kindInfo[k].mods {
		return sqlType{}, fmt.Errorf("%q: %s takes %d modifier(s)", s, kindInfo[k].sql, kindInfo[k].mods)
	}
	return t, nil
}

// String is the type as written in DDL.
func (t sqlType) String() string {
	s := kindInfo[t.kind].sql
	if t.kind == kDouble && len(t.mods) == 0 {
		return s
	}
	switch len(t.mods) {
	case 1:
		s += fmt.Sprintf("(%d)", t.mods[0])
	case 2:
		s += fmt.Sprintf("(%d,%d)", t.mods[0], t.mods[1])
	}
	return s
}

// oid is the OID of the type's wire format.
func (t sqlType) oid() uint32 { return kindInfo[t.kind].oid }

// compatible reports whether a table column of base type oid takes this type's binary format.
func (t sqlType) compatible(oid uint32) bool {
	switch t.kind {
	case kText, kVarchar, kChar:
		return oid == pgtype.TextOID || oid == pgtype.VarcharOID || oid == pgtype.BPCharOID
	}
	return oid == t.oid()
}

// inKind says what an input holds.
type inKind uint8

const (
	inNull   inKind = iota // a missing field, JSON null, or absent metadata
	inString               // a JSON string: s holds its decoded text, raw the JSON token
	inNumber               // a JSON number: s holds its text
	inBool                 // a JSON boolean: b
	inObject               // a JSON object: raw
	inArray                // a JSON array: raw
	inBytes                // bytes that did not come from JSON (a key, a header, the whole value): s
	inTime                 // a record time: t
)

// input is one column's value for one record, before conversion.
type input struct {
	kind inKind
	b    bool
	s    []byte
	raw  []byte
	t    time.Time
}

func (in *input) describe() string {
	switch in.kind {
	case inNull:
		return "null"
	case inString:
		return "the string " + preview(in.raw)
	case inNumber:
		return "the number " + preview(in.s)
	case inBool:
		return strconv.FormatBool(in.b)
	case inObject:
		return "an object"
	case inArray:
		return "an array"
	case inBytes:
		return strconv.Quote(string(truncate(in.s, 64)))
	case inTime:
		return in.t.Format(time.RFC3339Nano)
	}
	return "a value"
}

func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return b[:n]
}

func preview(b []byte) string {
	if len(b) <= 64 {
		return string(b)
	}
	return string(b[:61]) + "..."
}

// text returns the input as text when it is a string or bytes.
func (in *input) text() ([]byte, bool) {
	return in.s, in.kind == inString || in.kind == inBytes
}

// bstr views b as a string without copying; the string must not outlive b.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// appendField appends the binary COPY field of the input converted to t: its length, then its
// bytes (length -1 for NULL). tm encodes numeric values.
func (t sqlType) appendField(dst []byte, in *input, tm *pgtype.Map) ([]byte, error) {
	if in.kind == inNull {
		return binary.BigEndian.AppendUint32(dst, math.MaxUint32), nil // -1: NULL
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0) // length, filled in below
	var err error
	switch t.kind {
	case kText, kVarchar, kChar:
		dst, err = appendText(dst, in, t)
	case kSmallint, kInteger, kBigint:
		var n int64
		if n, err = toInt(in, t.kind); err == nil {
			switch t.kind {
			case kSmallint:
				dst = binary.BigEndian.AppendUint16(dst, uint16(n))
			case kInteger:
				dst = binary.BigEndian.AppendUint32(dst, uint32(n))
			default:
				dst = binary.BigEndian.AppendUint64(dst, uint64(n))
			}
		}
	case kReal, kDouble:
		var f float64
		if f, err = toFloat(in, t.kind == kReal); err == nil {
			if t.kind == kReal {
				dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(f)))
			} else {
				dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
			}
		}
	case kNumeric:
		dst, err = appendNumeric(dst, in, tm)
	case kBoolean:
		var b bool
		if b, err = toBool(in); err == nil {
			if b {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		}
	case kTimestamptz, kTimestamp:
		var us int64
		if us, err = toMicros(in); err == nil {
			dst = binary.BigEndian.AppendUint64(dst, uint64(us))
		}
	case kDate:
		var d int32
		if d, err = toDays(in); err == nil {
			dst = binary.BigEndian.AppendUint32(dst, uint32(d))
		}
	case kJSONB, kJSON:
		if t.kind == kJSONB {
			dst = append(dst, 1) // jsonb binary format version
		}
		dst, err = appendJSON(dst, in)
	case kUUID:
		dst, err = appendUUID(dst, in)
	case kBytea:
		dst, err = appendBytea(dst, in)
	default:
		err = fmt.Errorf("unsupported type")
	}
	if err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst, nil
}

func appendText(dst []byte, in *input, t sqlType) ([]byte, error) {
	var s []byte
	switch in.kind {
	case inString, inBytes:
		s = in.s
	case inNumber:
		s = in.s
	case inBool:
		return strconv.AppendBool(dst, in.b), nil
	case inObject, inArray:
		s = in.raw
	case inTime:
		return in.t.UTC().AppendFormat(dst, time.RFC3339Nano), nil
	}
	if !utf8.Valid(s) {
		return dst, errors.New("is not valid UTF-8 text")
	}
	for _, c := range s {
		if c == 0 {
			return dst, errors.New("contains a NUL character, which Postgres text cannot hold")
		}
	}
	if t.kind == kVarchar && len(t.mods) == 1 && len(s) > t.mods[0] {
		if n := utf8.RuneCount(s); n > t.mods[0] {
			return dst, fmt.Errorf("is %d characters long, more than %s allows", n, t)
		}
	}
	return append(dst, s...), nil
}

// numberText returns the text of a number or of a string holding one.
func numberText(in *input) ([]byte, bool) {
	switch in.kind {
	case inNumber:
		return in.s, true
	case inString, inBytes:
		return trimSpace(in.s), true
	}
	return nil, false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func toInt(in *input, k kind) (int64, error) {
	s, ok := numberText(in)
	if !ok {
		return 0, fmt.Errorf("%s is not an integer", in.describe())
	}
	n, ok := parseDigits(s)
	if !ok {
		n, ok = parseInt(s)
	}
	if !ok {
		f, err := strconv.ParseFloat(bstr(s), 64)
		if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, fmt.Errorf("%s is not an integer", in.describe())
		}
		n = int64(f)
	}
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	switch k {
	case kSmallint:
		lo, hi = math.MinInt16, math.MaxInt16
	case kInteger:
		lo, hi = math.MinInt32, math.MaxInt32
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range for %s", n, kindInfo[k].sql)
	}
	return n, nil
}

func parseInt(s []byte) (int64, bool) {
	n, err := strconv.ParseInt(bstr(s), 10, 64)
	return n, err == nil
}

// parseDigits parses an optionally signed decimal integer of at most 18 digits.
func parseDigits(s []byte) (int64, bool) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range s {
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

func toFloat(in *input, single bool) (float64, error) {
	s, ok := numberText(in)
	if !ok {
		return 0, fmt.Errorf("%s is not a number", in.describe())
	}
	bits := 64
	if single {
		bits = 32
	}
	f, err := strconv.ParseFloat(bstr(s), bits)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s is out of range for %s", in.describe(), map[bool]string{true: "real", false: "double precision"}[single])
		}
		return 0, fmt.Errorf("%s is not a number", in.describe())
	}
	return f, nil
}

func appendNumeric(dst []byte, in *input, tm *pgtype.Map) ([]byte, error) {
	s, ok := numberText(in)
	if !ok || len(s) == 0 {
		return dst, fmt.Errorf("%s is not a number", in.describe())
	}
	var n pgtype.Numeric
	if err := n.ScanScientific(string(s)); err != nil {
		return dst, fmt.Errorf("%s is not a number", in.describe())
	}
	out, err := tm.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, n, dst)
	if err != nil {
		return dst, fmt.Errorf("%s cannot be stored as numeric: %v", in.describe(), err)
	}
	return out, nil
}

func toBool(in *input) (bool, error) {
	switch in.kind {
	case inBool:
		return in.b, nil
	case inNumber:
		switch bstr(in.s) {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
	case inString, inBytes:
		switch strings.ToLower(bstr(trimSpace(in.s))) {
		case "true", "t", "yes", "y", "on", "1":
			return true, nil
		case "false", "f", "no", "n", "off", "0":
			return false, nil
		}
	}
	return false, fmt.Errorf("%s is not a boolean", in.describe())
}

// pgEpoch is the zero of Postgres timestamps and dates.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	pgEpochUnixMicros = 946684800 * 1_000_000
	infinityMicros    = math.MaxInt64
	negInfinityMicros = math.MinInt64
)

// timeLayouts are tried in order after RFC 3339; a time without a zone is UTC.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02",
}

// parseTime reads an RFC 3339 time (or a close variant: a space for the T, no zone meaning UTC,
// a date alone meaning its midnight UTC).
func parseTime(s []byte) (time.Time, bool) {
	str := bstr(trimSpace(s))
	if t, err := time.Parse(time.RFC3339Nano, str); err == nil {
		return t, true
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, str); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// epochMillis reads a number of milliseconds since the Unix epoch, with a fraction allowed.
func epochMillis(s []byte) (int64, bool) {
	if n, ok := parseDigits(s); ok {
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			return 0, false
		}
		return n * 1000, true
	}
	f, err := strconv.ParseFloat(bstr(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 9e15 {
		return 0, false
	}
	return int64(math.Round(f * 1000)), true
}

// toMicros converts to microseconds since 2000-01-01 UTC, the binary format of timestamptz and of
// timestamp (which gets the UTC wall clock).
func toMicros(in *input) (int64, error) {
	switch in.kind {
	case inTime:
		return in.t.UnixMicro() - pgEpochUnixMicros, nil
	case inNumber:
		if us, ok := epochMillis(in.s); ok {
			return us - pgEpochUnixMicros, nil
		}
	case inString, inBytes:
		s := trimSpace(in.s)
		switch strings.ToLower(bstr(s)) {
		case "infinity":
			return infinityMicros, nil
		case "-infinity":
			return negInfinityMicros, nil
		}
		if t, ok := parseTime(s); ok {
			return t.UnixMicro() - pgEpochUnixMicros, nil
		}
		if us, ok := epochMillis(s); ok && len(s) > 0 && s[0] != '+' {
			return us - pgEpochUnixMicros, nil
		}
	}
	return 0, fmt.Errorf("%s is not a time (RFC 3339, or epoch milliseconds)", in.describe())
}

func toDays(in *input) (int32, error) {
	var t time.Time
	switch in.kind {
	case inTime:
		t = in.t.UTC()
	case inNumber:
		us, ok := epochMillis(in.s)
		if !ok {
			return 0, fmt.Errorf("%s is not a date (YYYY-MM-DD, RFC 3339, or epoch milliseconds)", in.describe())
		}
		t = time.UnixMicro(us).UTC()
	case inString, inBytes:
		var ok bool
		if t, ok = parseTime(in.s); !ok {
			return 0, fmt.Errorf("%s is not a date (YYYY-MM-DD, RFC 3339, or epoch milliseconds)", in.describe())
		}
	default:
		return 0, fmt.Errorf("%s is not a date (YYYY-MM-DD, RFC 3339, or epoch milliseconds)", in.describe())
	}
	y, m, d := t.Date() // the date as written, in the time's own offset
	days := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Sub(pgEpoch).Hours() / 24
	return int32(math.Round(days)), nil
}

func appendJSON(dst []byte, in *input) ([]byte, error) {
	switch in.kind {
	case inString, inObject, inArray:
		return append(dst, in.raw...), nil
	case inNumber:
		return append(dst, in.s...), nil
	case inBool:
		return strconv.AppendBool(dst, in.b), nil
	case inTime:
		dst = append(dst, '"')
		dst = in.t.UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"'), nil
	case inBytes:
		if err := validJSON(in.s); err != nil {
			return dst, fmt.Errorf("%s is not JSON: %v", in.describe(), err)
		}
		return append(dst, in.s...), nil
	}
	return dst, fmt.Errorf("%s cannot be stored as JSON", in.describe())
}

func appendUUID(dst []byte, in *input) ([]byte, error) {
	s, ok := in.text()
	if ok {
		str := bstr(trimSpace(s))
		if len(str) == 38 && str[0] == '{' && str[37] == '}' {
			str = str[1:37]
		}
		if len(str) == 36 && str[8] == '-' && str[13] == '-' && str[18] == '-' && str[23] == '-' {
			str = str[0:8] + str[9:13] + str[14:18] + str[19:23] + str[24:]
		}
		if len(str) == 32 {
			var u [16]byte
			if _, err := hex.Decode(u[:], []byte(str)); err == nil {
				return append(dst, u[:]...), nil
			}
		}
	}
	return dst, fmt.Errorf("%s is not a UUID", in.describe())
}

func appendBytea(dst []byte, in *input) ([]byte, error) {
	switch in.kind {
	case inBytes:
		return append(dst, in.s...), nil
	case inString:
		s := in.s
		if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
			n := len(dst)
			dst = append(dst, make([]byte, (len(s)-2)/2)...)
			if _, err := hex.Decode(dst[n:], s[2:]); err != nil || len(s)%2 != 0 {
				return dst[:n], fmt.Errorf("%s is not \\x followed by hex digits", in.describe())
			}
			return dst, nil
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			n := len(dst)
			dst = append(dst, make([]byte, enc.DecodedLen(len(s)))...)
			if m, err := enc.Decode(dst[n:], s); err == nil {
				return dst[:n+m], nil
			}
			dst = dst[:n]
		}
		return dst, fmt.Errorf("%s is not base64", in.describe())
	}
	return dst, fmt.Errorf("%s is not bytes (a base64 string)", in.describe())
}
