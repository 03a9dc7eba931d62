package scraper

import (
	"strings"
	"testing"
)

func TestParseNumber(t *testing.T) {
	cases := []struct {
		in   string
		dec  byte
		want float64
	}{
		{"€2,376/month", 0, 2376},
		{"$1,250/mo", 0, 1250},
		{"€2.376,00", 0, 2376},
		{"1.250", 0, 1250},
		{"4.25", 0, 4.25},
		{"4,25 €", 0, 4.25},
		{"1,234,567.89", 0, 1234567.89},
		{"1.234.567,89", 0, 1234567.89},
		{"12 345 Kč", 0, 12345},
		{"CHF 1'250.50", 0, 1250.5},
		{"-4.5 %", 0, -4.5},
		{"-€5", 0, -5},
		{"3 rooms", 0, 3},
		{"2,376", '.', 2.376e3},
		{"2,376", ',', 2.376},
		{"0.5", 0, 0.5},
		{"100.", 0, 100},
	}
	for _, c := range cases {
		got, err := parseNumber(c.in, c.dec)
		if err != nil || got != c.want {
			t.Errorf("parseNumber(%q, %q) = %v, %v; want %v", c.in, c.dec, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "n/a", "price on request", "1.2.3,4,5"} {
		if _, err := parseNumber(bad, 0); err == nil {
			t.Errorf("parseNumber(%q) should fail", bad)
		}
	}
}

func TestConvertKinds(t *testing.T) {
	base := mustURL(t, "https://rentals.example.com/listings/7")
	f := fieldSpec{name: "n", typ: "int"}
	if _, err := convert(f, "2.5 rooms", base); err == nil || !strings.Contains(err.Error(), "whole number") {
		t.Errorf("int of 2.5: %v", err)
	}
	if v, _ := convert(fieldSpec{typ: "url"}, "../img/1.jpg", base); v != "https://rentals.example.com/img/1.jpg" {
		t.Errorf("url: %v", v)
	}
	if v, _ := convert(fieldSpec{typ: "bool"}, "Yes", base); v != true {
		t.Errorf("bool: %v", v)
	}
	d := fieldSpec{typ: "date", layouts: []string{"2006-01-02", "02 Jan 2006"}}
	if v, _ := convert(d, "05 Mar 2026", base); v != "2026-03-05" {
		t.Errorf("date: %v", v)
	}
	if _, err := convert(d, "yesterday", base); err == nil {
		t.Error("a date matching no layout must fail")
	}
}
