package schema_test

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/internal/schema/registrytest"
)

const listingSchema = `{
 "type": "record", "name": "Listing", "namespace": "shop",
 "fields": [
  {"name": "id", "type": "long"},
  {"name": "sku", "type": "string"},
  {"name": "title", "type": "string"},
  {"name": "price", "type": "double"},
  {"name": "qty", "type": "int"},
  {"name": "active", "type": "boolean"},
  {"name": "category", "type": {"type": "enum", "name": "Category", "symbols": ["BOOKS", "GAMES", "TOOLS"]}},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "attrs", "type": {"type": "map", "values": "string"}},
  {"name": "discount", "type": ["null", "double"], "default": null},
  {"name": "seller", "type": {"type": "record", "name": "Seller", "fields": [
     {"name": "name", "type": "string"}, {"name": "rating", "type": "float"}]}},
  {"name": "updated", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
  {"name": "checksum", "type": {"type": "fixed", "name": "Check", "size": 4}},
  {"name": "note", "type": ["null", "string"], "default": null}
 ]}`

type seller struct {
	Name   string  `avro:"name"`
	Rating float32 `avro:"rating"`
}

type listing struct {
	ID       int64             `avro:"id"`
	SKU      string            `avro:"sku"`
	Title    string            `avro:"title"`
	Price    float64           `avro:"price"`
	Qty      int               `avro:"qty"`
	Active   bool              `avro:"active"`
	Category string            `avro:"category"`
	Tags     []string          `avro:"tags"`
	Attrs    map[string]string `avro:"attrs"`
	Discount *float64          `avro:"discount"`
	Seller   seller            `avro:"seller"`
	Updated  time.Time         `avro:"updated"`
	Amount   *big.Rat          `avro:"amount"`
	Checksum [4]byte           `avro:"checksum"`
	Note     *string           `avro:"note"`
}

func sampleListing(i int) listing {
	d := 0.15
	return listing{
		ID: int64(1_000_000 + i), SKU: "SKU-" + strings.Repeat("7", i%5+1), Title: "A \"quoted\" title ünïcode\n",
		Price: 12.5 + float64(i), Qty: -3, Active: true, Category: "GAMES",
		Tags: []string{"new", "sale"}, Attrs: map[string]string{"color": "red"}, Discount: &d,
		Seller: seller{Name: "acme", Rating: 4.5}, Updated: time.UnixMilli(1_700_000_000_123).UTC(),
		Amount: big.NewRat(-123456, 100), Checksum: [4]byte{0xde, 0xad, 0xbe, 0xef},
	}
}

const sampleListingJSON = `{"id":1000000,"sku":"SKU-7","title":"A \"quoted\" title ünïcode\n","price":12.5,"qty":-3,
 "active":true,"category":"GAMES","tags":["new","sale"],"attrs":{"color":"red"},"discount":0.15,
 "seller":{"name":"acme","rating":4.5},"updated":1700000000123,"amount":-1234.56,"checksum":"3q2+7w==","note":null}`

func TestAvroDecodeHambaPayload(t *testing.T) {
	reg := registrytest.New(t)
	id := reg.Register(t, "listings-value", "AVRO", listingSchema)
	payload, err := avro.Marshal(avro.MustParse(listingSchema), sampleListing(0))
	if err != nil {
		t.Fatal(err)
	}
	d := newDecoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg)})
	out, info, err := d.Decode(context.Background(), wire(id, payload), []byte("prefix:"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "prefix:") {
		t.Fatalf("Decode did not append to dst: %q", out)
	}
	sameJSON(t, out[len("prefix:"):], sampleListingJSON)
	if info != (schema.Info{ID: id, Subject: "listings-value", Version: 1}) {
		t.Fatalf("info = %+v", info)
	}
	if !strings.Contains(string(out), `"amount":-1234.56`) {
		t.Fatalf("decimal is not exact number text: %s", out)
	}
}

func TestAvroEncodeReadByHamba(t *testing.T) {
	reg := registrytest.New(t)
	enc := newEncoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg), "subject": "listings-value",
		"schema": listingSchema, "auto_register": true})
	out, info, err := enc.Encode(context.Background(), []byte(sampleListingJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID == 0 || info.Subject != "listings-value" || info.Version != 1 {
		t.Fatalf("info = %+v", info)
	}
	if out[0] != 0 || int(out[4]) != info.ID {
		t.Fatalf("header = % x", out[:5])
	}
	var got listing
	if err := avro.Unmarshal(avro.MustParse(listingSchema), out[5:], &got); err != nil {
		t.Fatal(err)
	}
	want := sampleListing(0)
	if got.ID != want.ID || got.SKU != want.SKU || got.Title != want.Title || got.Price != want.Price || got.Qty != want.Qty ||
		got.Active != want.Active || got.Category != want.Category || strings.Join(got.Tags, ",") != "new,sale" ||
		got.Attrs["color"] != "red" || got.Discount == nil || *got.Discount != 0.15 || got.Seller != want.Seller ||
		!got.Updated.Equal(want.Updated) || got.Amount.Cmp(want.Amount) != 0 || got.Checksum != want.Checksum || got.Note != nil {
		t.Fatalf("hamba reads back\n%+v\nwant\n%+v", got, want)
	}
}

func TestAvroRoundTripsTypes(t *testing.T) {
	cases := []struct {
		name, schema, json string
		out                string // decoded JSON when it differs from json
	}{
		{"null", `"null"`, `null`, ""},
		{"int", `"int"`, `-2147483648`, ""},
		{"long", `"long"`, `9007199254740993`, ""},
		{"float", `"float"`, `1.5`, ""},
		{"double small", `"double"`, `1e-7`, ""},
		{"double NaN", `"double"`, `"NaN"`, ""},
		{"string escapes", `"string"`, `"tab\t\u0001 \u2028 \"q\" \\"`, ""},
		{"bytes", `"bytes"`, `"AAEC/w=="`, ""},
		{"enum", `{"type":"enum","name":"E","symbols":["A","B"]}`, `"B"`, ""},
		{"union of null and string", `["null","string"]`, `"x"`, ""},
		{"union null", `["null","string"]`, `null`, ""},
		{"union int or string", `["int","string"]`, `"7"`, ""},
		{"union picks double for a fraction", `["null","int","double"]`, `2.5`, ""},
		{"union of records", `[{"type":"record","name":"A","fields":[{"name":"a","type":"int"}]},{"type":"record","name":"B","fields":[{"name":"b","type":"string"}]}]`, `{"b":"x"}`, ""},
		{"map of arrays", `{"type":"map","values":{"type":"array","items":"long"}}`, `{"a":[1,2],"b":[]}`, ""},
		{"date", `{"type":"int","logicalType":"date"}`, `19700`, ""},
		{"date from text", `{"type":"int","logicalType":"date"}`, `"2024-01-02"`, `19724`},
		{"timestamp from RFC 3339", `{"type":"long","logicalType":"timestamp-micros"}`, `"2024-01-02T03:04:05.000006Z"`, `1704164645000006`},
		{"uuid", `{"type":"string","logicalType":"uuid"}`, `"0b7a1c1e-55a4-4b6a-9a8e-2f1f3f0f6a11"`, ""},
		{"decimal fixed", `{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":12,"scale":3}`, `-0.005`, ""},
		{"decimal big", `{"type":"bytes","logicalType":"decimal","precision":38,"scale":4}`, `12345678901234567890123456789.1234`, ""},
		{"decimal keeps scale", `{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}`, `3`, `3.00`},
		{"duration", `{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}`, `{"months":1,"days":2,"milliseconds":3}`, ""},
		{"record defaults", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"},{"name":"c","type":["null","long"],"default":null},{"name":"d","type":{"type":"enum","name":"E2","symbols":["P","Q"]},"default":"Q"}]}`, `{"a":1}`, `{"a":1,"b":"x","c":null,"d":"Q"}`},
		{"recursive", `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"],"default":null}]}`, `{"v":1,"next":{"v":2,"next":null}}`, ""},
	}
	reg := registrytest.New(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			subject := strings.ReplaceAll(c.name, " ", "-")
			enc := newEncoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg), "subject": subject, "schema": c.schema, "auto_register": true})
			b, _, err := enc.Encode(context.Background(), []byte(c.json), nil)
			if err != nil {
				t.Fatal(err)
			}
			// an independent reader agrees the bytes are valid for the schema
			var v any
			if err := avro.Unmarshal(avro.MustParse(c.schema), b[5:], &v); err != nil {
				t.Fatalf("hamba cannot read the encoding: %v", err)
			}
			d := newDecoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg)})
			out, _, err := d.Decode(context.Background(), b, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := c.out
			if want == "" {
				want = c.json
			}
			if c.name == "long" || strings.HasPrefix(c.name, "decimal") {
				if string(out) != want { // exact number text
					t.Fatalf("got %s, want %s", out, want)
				}
				return
			}
			sameJSON(t, out, want)
		})
	}
}

func TestAvroRecordErrors(t *testing.T) {
	reg := registrytest.New(t)
	enc := newEncoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg), "subject": "prices-value",
		"schema": listingSchema, "auto_register": true})
	base := strings.NewReplacer("\n", "").Replace(sampleListingJSON)
	cases := []struct{ name, json, want string }{
		{"type", strings.Replace(base, `"price":12.5`, `"price":"12.5"`, 1), `field "price": expected double, got string`},
		{"missing", strings.Replace(base, `"sku":"SKU-7",`, ``, 1), `field "sku": missing, and the schema gives it no default`},
		{"nested", strings.Replace(base, `"rating":4.5`, `"rating":true`, 1), `field "seller.rating": expected float, got boolean`},
		{"array item", strings.Replace(base, `["new","sale"]`, `["new",3]`, 1), `field "tags[1]": expected string, got number 3`},
		{"enum", strings.Replace(base, `"GAMES"`, `"CARS"`, 1), `field "category": "CARS" is not a symbol of enum shop.Category (BOOKS, GAMES, TOOLS)`},
		{"int range", strings.Replace(base, `"qty":-3`, `"qty":3000000000`, 1), `field "qty": 3000000000 is out of range for int`},
		{"unknown field", strings.Replace(base, `"id":`, `"extra":1,"id":`, 1), `field "extra": not a field of record shop.Listing`},
		{"decimal places", strings.Replace(base, `-1234.56`, `1.234`, 1), `field "amount": 1.234 has more than the 2 decimal places`},
		{"not JSON", `{"id":`, `value is not JSON`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := []byte("keep")
			out, _, err := enc.Encode(context.Background(), []byte(c.json), dst)
			var re *schema.RecordError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a *RecordError", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "schema id 1 (subject prices-value): ") {
				t.Fatalf("err = %q, want it to contain %q", err, c.want)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed on error: %q", out)
			}
		})
	}
	t.Run("ignore_unknown_fields", func(t *testing.T) {
		enc := newEncoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg), "subject": "prices-value",
			"schema": listingSchema, "ignore_unknown_fields": true})
		if _, _, err := enc.Encode(context.Background(), []byte(strings.Replace(base, `"id":`, `"extra":1,"id":`, 1)), nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAvroDecodeBadPayloads(t *testing.T) {
	reg := registrytest.New(t)
	id := reg.Register(t, "prices-value", "AVRO", listingSchema)
	good, err := avro.Marshal(avro.MustParse(listingSchema), sampleListing(0))
	if err != nil {
		t.Fatal(err)
	}
	d := newDecoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg)})
	cases := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"plain JSON", []byte(`{"id":1}`), `schema: payload is not in the schema registry wire format: its first byte is 0x7b, not the magic byte 0`},
		{"short header", []byte{0, 0, 1}, `shorter than the schema registry wire format's 5-byte header`},
		{"truncated", wire(id, good[:len(good)-3]), `schema id 1 (subject prices-value): field "checksum": payload ends early`},
		{"trailing bytes", wire(id, append(append([]byte{}, good...), 1, 2)), `2 bytes left after the value`},
		{"bad enum index", wire(id, badEnum(t)), `field "category": enum index 7 out of range for shop.Category`},
		{"unknown id", wire(99, good), `schema id 99: unknown schema id: the registry does not know it`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, info, err := d.Decode(context.Background(), c.payload, []byte("keep"))
			var re *schema.RecordError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a *RecordError", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %q, want it to contain %q", err, c.want)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed on error: %q", out)
			}
			if re.Info != info {
				t.Fatalf("info %+v differs from the error's %+v", info, re.Info)
			}
		})
	}
}

// badEnum is a Listing whose category index is 7.
func badEnum(t *testing.T) []byte {
	s := avro.MustParse(strings.Replace(listingSchema, `"symbols": ["BOOKS", "GAMES", "TOOLS"]`, `"symbols": ["A0","A1","A2","A3","A4","A5","A6","A7"]`, 1))
	l := sampleListing(0)
	l.Category = "A7"
	b, err := avro.Marshal(s, l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
