package scraper

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/PuerkitoBio/goquery"
)

// fieldSpec is one item field: where its text comes from and what it converts to.
type fieldSpec struct {
	name     string
	sel      goquery.Matcher // nil: the item element itself
	attr     string
	typ      string // string, int, number, bool, date, url
	layouts  []string
	decimal  byte // '.' or ',' to force the decimal separator; 0 guesses
	required bool
}

// itemSpec says how items are found on a page.
type itemSpec struct {
	sel    goquery.Matcher
	fields []fieldSpec
	id     string // field naming the item, for change detection; "" uses the page URL and index
}

// extracted is one item of a page: its value, or the reason it could not be taken.
type extracted struct {
	key    string
	value  []byte
	reason string // non-empty: the item goes to the dead letters with its partial value
}

// extractItems finds the items of a page.
func (it *itemSpec) extractItems(doc *goquery.Document, page *url.URL) []extracted {
	var out []extracted
	doc.FindMatcher(it.sel).Each(func(i int, el *goquery.Selection) {
		out = append(out, it.extract(el, page, i))
	})
	return out
}

func (it *itemSpec) extract(el *goquery.Selection, page *url.URL, index int) extracted {
	var buf bytes.Buffer
	buf.WriteByte('{')
	var problems []string
	key := ""
	for i, f := range it.fields {
		raw, found := f.text(el)
		var v any
		switch {
		case !found || raw == "":
			if f.required {
				problems = append(problems, fmt.Sprintf("field %s: %s", f.name, missingWhat(f, found)))
			}
			v = nil
		default:
			conv, err := convert(f, raw, page)
			if err != nil {
				problems = append(problems, fmt.Sprintf("field %s: %v", f.name, err))
				conv = nil
			}
			v = conv
		}
		if f.name == it.id && v != nil {
			key = fmt.Sprint(v)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		name, _ := json.Marshal(f.name)
		buf.Write(name)
		buf.WriteByte(':')
		enc, _ := json.Marshal(v)
		buf.Write(enc)
	}
	buf.WriteByte('}')
	if key == "" {
		key = fmt.Sprintf("%s#%d", page.String(), index)
	}
	e := extracted{key: key, value: buf.Bytes()}
	if len(problems) > 0 {
		e.reason = fmt.Sprintf("item %d on %s: %s", index, page.String(), strings.Join(problems, "; "))
	}
	return e
}

func missingWhat(f fieldSpec, found bool) string {
	switch {
	case !found && f.attr != "":
		return fmt.Sprintf("required, but no element with attribute %q matched", f.attr)
	case !found:
		return "required, but its selector matched nothing"
	default:
		return "required, but empty"
	}
}

// text is the field's raw text: the attribute, or the element's text with its white space
// collapsed. found is false when the selector matched nothing or the attribute is absent.
func (f *fieldSpec) text(el *goquery.Selection) (string, bool) {
	target := el
	if f.sel != nil {
		target = el.FindMatcher(f.sel).First()
		if target.Length() == 0 {
			return "", false
		}
	}
	if f.attr != "" {
		v, ok := target.Attr(f.attr)
		return strings.TrimSpace(v), ok
	}
	return strings.Join(strings.Fields(target.Text()), " "), true
}

func convert(f fieldSpec, raw string, page *url.URL) (any, error) {
	switch f.typ {
	case "", "string":
		return raw, nil
	case "number":
		return parseNumber(raw, f.decimal)
	case "int":
		x, err := parseNumber(raw, f.decimal)
		if err != nil {
			return nil, err
		}
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return nil, fmt.Errorf("%q is not a whole number", raw)
		}
		return int64(x), nil
	case "bool":
		switch strings.ToLower(raw) {
		case "true", "yes", "1", "on", "y":
			return true, nil
		case "false", "no", "0", "off", "n":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not a boolean (true/false, yes/no, 1/0)", raw)
	case "date":
		for _, l := range f.layouts {
			if t, err := time.Parse(l, raw); err == nil {
				if !strings.Contains(l, "15") && !strings.Contains(l, ":") { // a layout without a clock: a calendar date
					return t.Format(time.DateOnly), nil
				}
				return t.UTC().Format(time.RFC3339), nil
			}
		}
		return nil, fmt.Errorf("%q does not match the date layouts %q", raw, f.layouts)
	case "url":
		u, err := page.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%q is not a URL: %v", raw, err)
		}
		return u.String(), nil
	}
	return nil, fmt.Errorf("unknown type %q", f.typ)
}

// parseNumber takes the first number out of text such as "€2,376/month", "$1,250/mo",
// "€2.376,00" or "-4.25 %". Thousands separators (',', '.', ' ', '\”, thin spaces) are told from
// the decimal separator by position: when both ',' and '.' appear, the last one is the decimal
// separator; when one of them appears once followed by exactly three digits, it groups thousands;
// otherwise it is the decimal separator. decimal forces the separator ('.' or ',').
func parseNumber(text string, decimal byte) (float64, error) {
	rs := []rune(text)
	start := -1
	for i, r := range rs {
		if unicode.IsDigit(r) {
			start = i
			break
		}
	}
	if start < 0 {
		return 0, fmt.Errorf("%q holds no number", text)
	}
	neg := false // a minus sign right before the number, or before its currency sign ("-€5")
	for i := start - 1; i >= 0 && i >= start-2; i-- {
		if rs[i] == '-' || rs[i] == '−' {
			neg = true
			break
		}
		if unicode.IsSpace(rs[i]) || unicode.IsLetter(rs[i]) {
			break
		}
	}
	end := start
	for end < len(rs) {
		r := rs[end]
		if unicode.IsDigit(r) || r == ',' || r == '.' || r == '\'' || r == '\u00a0' || r == '\u202f' || r == '\u2009' {
			end++
			continue
		}
		if r == ' ' && end+1 < len(rs) && unicode.IsDigit(rs[end+1]) && groupFollows(rs, end+1) {
			end++
			continue
		}
		break
	}
	tok := strings.TrimRight(string(rs[start:end]), ",.' \u00a0\u202f\u2009")
	var digits strings.Builder
	dec := decimal
	if dec == 0 {
		dec = guessDecimal(tok)
	}
	seenDec := false
	for _, r := range tok {
		switch {
		case unicode.IsDigit(r):
			digits.WriteRune('0' + (r - '0')) // ASCII digits only; other scripts' digits were excluded below
		case byte(r) == dec && r < 128:
			if seenDec {
				return 0, fmt.Errorf("%q has two decimal separators", text)
			}
			seenDec = true
			digits.WriteByte('.')
		}
	}
	for _, r := range tok {
		if unicode.IsDigit(r) && (r < '0' || r > '9') {
			return 0, fmt.Errorf("%q uses digits other than 0-9", text)
		}
	}
	x, err := strconv.ParseFloat(digits.String(), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", text)
	}
	if neg {
		x = -x
	}
	return x, nil
}

// groupFollows reports whether exactly three digits start at i (a space-grouped thousand).
func groupFollows(rs []rune, i int) bool {
	n := 0
	for i+n < len(rs) && unicode.IsDigit(rs[i+n]) {
		n++
	}
	return n == 3
}

func guessDecimal(tok string) byte {
	lastDot, lastComma := strings.LastIndexByte(tok, '.'), strings.LastIndexByte(tok, ',')
	switch {
	case lastDot >= 0 && lastComma >= 0:
		if lastDot > lastComma {
			return '.'
		}
		return ','
	case lastDot < 0 && lastComma < 0:
		return '.'
	}
	sep, at := byte('.'), lastDot
	if lastComma >= 0 {
		sep, at = ',', lastComma
	}
	if strings.Count(tok, string(sep)) > 1 {
		return otherSep(sep) // repeated: it groups thousands
	}
	if len(tok)-at-1 == 3 {
		return otherSep(sep) // "2,376" or "1.250": a thousands group
	}
	return sep
}

func otherSep(b byte) byte {
	if b == '.' {
		return ','
	}
	return '.'
}
