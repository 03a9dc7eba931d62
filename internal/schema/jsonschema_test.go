package schema_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/internal/schema/registrytest"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }

const priceJSONSchema = `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
 "properties":{"price":{"type":"number","minimum":0},"sku":{"type":"string"}},"required":["price","sku"]}`

func TestJSONSchema(t *testing.T) {
	reg := registrytest.New(t)
	ctx := context.Background()
	enc := newEncoder(t, map[string]any{"format": "json_schema", "registry": registryCfg(reg), "subject": "prices-value",
		"schema": priceJSONSchema, "auto_register": true})
	out, info, err := enc.Encode(ctx, []byte(`{"price":2.5,"sku":"a"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(out[5:]) != `{"price":2.5,"sku":"a"}` || out[0] != 0 || int(out[4]) != info.ID {
		t.Fatalf("encoded %q", out)
	}
	_, _, err = enc.Encode(ctx, []byte(`{"price":-1}`), nil)
	var re *schema.RecordError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "/price: must be >= 0") || !strings.Contains(err.Error(), "/sku: missing") {
		t.Fatalf("invalid value: %v", err)
	}

	d := newDecoder(t, map[string]any{"format": "json_schema", "registry": registryCfg(reg)})
	back, dinfo, err := d.Decode(ctx, out, nil)
	if err != nil || string(back) != `{"price":2.5,"sku":"a"}` || dinfo.Subject != "prices-value" {
		t.Fatalf("Decode = %s, %+v, %v", back, dinfo, err)
	}
	_, _, err = d.Decode(ctx, wire(info.ID, []byte(`{"price":"x","sku":"a"}`)), nil)
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "/price") {
		t.Fatalf("invalid payload: %v", err)
	}
	_, _, err = d.Decode(ctx, wire(info.ID, []byte(`{"price":`)), nil)
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("broken payload: %v", err)
	}
}

func TestFormatJSON(t *testing.T) {
	ctx := context.Background()
	plain := newDecoder(t, map[string]any{"format": "json"})
	out, info, err := plain.Decode(ctx, []byte(`{"a":1}`), nil)
	if err != nil || string(out) != `{"a":1}` || info != (schema.Info{}) {
		t.Fatalf("plain: %s %+v %v", out, info, err)
	}
	_, _, err = plain.Decode(ctx, wire(1, []byte(`{"a":1}`)), nil)
	var re *schema.RecordError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "set decode.registry") {
		t.Fatalf("wire format without a registry: %v", err)
	}

	reg := registrytest.New(t)
	id := reg.Register(t, "events-value", "JSON", `{"type":"object"}`)
	withReg := newDecoder(t, map[string]any{"format": "json", "registry": registryCfg(reg)})
	out, info, err = withReg.Decode(ctx, wire(id, []byte(`{"a":1}`)), nil)
	if err != nil || string(out) != `{"a":1}` || info.ID != id || info.Subject != "events-value" {
		t.Fatalf("unwrapped: %s %+v %v", out, info, err)
	}
	if out, _, err = withReg.Decode(ctx, []byte(` [1]`), nil); err != nil || string(out) != ` [1]` {
		t.Fatalf("plain with a registry: %s %v", out, err)
	}

	enc := newEncoder(t, map[string]any{"format": "json"})
	if out, _, err := enc.Encode(ctx, []byte(`{"a":1}`), nil); err != nil || string(out) != `{"a":1}` {
		t.Fatalf("encode json: %s %v", out, err)
	}
	if _, _, err := enc.Encode(ctx, []byte(`{"a":`), nil); !errors.As(err, &re) {
		t.Fatalf("encode broken json: %v", err)
	}
}

func TestReferences(t *testing.T) {
	reg := registrytest.New(t)
	ctx := context.Background()
	t.Run("avro", func(t *testing.T) {
		reg.Register(t, "seller", "AVRO", `{"type":"record","name":"Seller","namespace":"shop","fields":[{"name":"name","type":"string"}]}`)
		main := `{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"seller","type":"shop.Seller"}]}`
		id := reg.Register(t, "orders-value", "AVRO", main, registrytest.Reference{Name: "shop.Seller", Subject: "seller", Version: 1})
		full := avro.MustParse(`{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"seller","type":{"type":"record","name":"Seller","fields":[{"name":"name","type":"string"}]}}]}`)
		p, err := avro.Marshal(full, map[string]any{"seller": map[string]any{"name": "acme"}})
		if err != nil {
			t.Fatal(err)
		}
		d := newDecoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg)})
		out, _, err := d.Decode(ctx, wire(id, p), nil)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, out, `{"seller":{"name":"acme"}}`)
		e := newEncoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg), "subject": "orders-value"})
		if b, _, err := e.Encode(ctx, []byte(`{"seller":{"name":"acme"}}`), nil); err != nil || string(b[5:]) != string(p) {
			t.Fatalf("encode with a reference: % x, %v", b, err)
		}
	})
	t.Run("protobuf", func(t *testing.T) {
		reg.Register(t, "money", "PROTOBUF", "syntax = \"proto3\";\npackage shop.v1;\nmessage Money { string currency = 1; int64 units = 2; }\n")
		main := "syntax = \"proto3\";\npackage shop.v1;\nimport \"shop/money.proto\";\nmessage Price { Money amount = 1; }\n"
		id := reg.Register(t, "prices-value", "PROTOBUF", main, registrytest.Reference{Name: "shop/money.proto", Subject: "money", Version: 1})
		e := newEncoder(t, map[string]any{"format": "protobuf", "registry": registryCfg(reg), "subject": "prices-value"})
		b, info, err := e.Encode(ctx, []byte(`{"amount":{"currency":"EUR","units":"5"}}`), nil)
		if err != nil || info.ID != id {
			t.Fatalf("encode: %+v %v", info, err)
		}
		d := newDecoder(t, map[string]any{"format": "protobuf", "registry": registryCfg(reg)})
		out, _, err := d.Decode(ctx, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, out, `{"amount":{"currency":"EUR","units":"5"}}`)
	})
	t.Run("json_schema", func(t *testing.T) {
		reg.Register(t, "address", "JSON", `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`)
		main := `{"type":"object","properties":{"ship_to":{"$ref":"address.json"}}}`
		id := reg.Register(t, "shipments-value", "JSON", main, registrytest.Reference{Name: "address.json", Subject: "address", Version: 1})
		d := newDecoder(t, map[string]any{"format": "json_schema", "registry": registryCfg(reg)})
		if _, _, err := d.Decode(ctx, wire(id, []byte(`{"ship_to":{"city":"Oslo"}}`)), nil); err != nil {
			t.Fatal(err)
		}
		_, _, err := d.Decode(ctx, wire(id, []byte(`{"ship_to":{}}`)), nil)
		if err == nil || !strings.Contains(err.Error(), "/ship_to/city: missing") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		spec   string
		values map[string]any
		field  string
	}{
		{"decode", map[string]any{"format": "avro"}, "registry.url"},
		{"decode", map[string]any{"format": "protobuf", "registry": map[string]any{"url": "http://x", "token": "t", "username": "u"}}, "registry.token"},
		{"decode", map[string]any{"format": "avro", "registry": map[string]any{"url": "http://x", "tls": map[string]any{"cert_file": "c"}}}, "registry.tls.cert_file"},
		{"decode", map[string]any{"format": "avro", "registry": map[string]any{"url": "http://x", "cache_size": 0}}, "registry.cache_size"},
		{"decode", map[string]any{"format": "avro", "registry": map[string]any{"url": "http://u:secret@x"}}, "registry.url"},
		{"decode", map[string]any{"format": "avro", "registry": map[string]any{"url": "localhost:8081"}}, "registry.url"},
		{"encode", map[string]any{"format": "avro", "registry": map[string]any{"url": "http://x"}}, "subject"},
		{"encode", map[string]any{"format": "json", "registry": map[string]any{"url": "http://x"}}, "registry"},
		{"encode", map[string]any{"format": "avro", "registry": map[string]any{"url": "http://x"}, "subject": "s", "auto_register": true}, "auto_register"},
		{"encode", map[string]any{"format": "avro", "registry": map[string]any{"url": "http://x"}, "subject": "s", "schema": `{"type":"nope"}`}, "schema"},
		{"encode", map[string]any{"format": "avro", "registry": map[string]any{"url": "http://x"}, "subject": "s", "schema": `"int"`, "schema_file": "f"}, "schema_file"},
		{"encode", map[string]any{"format": "protobuf", "registry": map[string]any{"url": "http://x"}, "subject": "s", "schema": listingProto, "message": "shop.v1.Nope"}, "schema"},
		{"encode", map[string]any{"format": "avro", "registry": map[string]any{"url": "http://x"}, "subject": "s", "message": "m"}, "message"},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			var err error
			if c.spec == "decode" {
				cfg, cerr := schema.DecodeSpec.Config(c.values)
				if cerr != nil {
					t.Fatal(cerr)
				}
				_, err = schema.NewDecoder(cfg)
			} else {
				cfg, cerr := schema.EncodeSpec.Config(c.values)
				if cerr != nil {
					t.Fatal(cerr)
				}
				_, err = schema.NewEncoder(cfg)
			}
			var ce *connector.ConfigError
			if !errors.As(err, &ce) || ce.Field != c.field {
				t.Fatalf("err = %v, want a *connector.ConfigError at %s", err, c.field)
			}
		})
	}
	if _, err := schema.DecodeSpec.Config(map[string]any{"format": "xml"}); err == nil {
		t.Fatal("format xml accepted")
	}
	if _, err := schema.DecodeSpec.Config(map[string]any{"format": "json", "nope": 1}); err == nil {
		t.Fatal("unknown key accepted")
	}
}
