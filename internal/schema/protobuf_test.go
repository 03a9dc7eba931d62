package schema_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/internal/schema/registrytest"
)

const listingProto = `syntax = "proto3";
package shop.v1;

import "google/protobuf/timestamp.proto";

message Listing {
  int64 id = 1;
  string sku = 2;
  double price = 3;
  int32 qty = 4;
  bool active = 5;
  Category category = 6;
  repeated string tags = 7;
  map<string, string> attrs = 8;
  Seller seller = 9;
  google.protobuf.Timestamp updated = 10;
  string order_ref = 11;

  message Seller {
    string name = 1;
    float rating = 2;
  }
}

enum Category {
  UNKNOWN = 0;
  BOOKS = 1;
  GAMES = 2;
}

message Other {
  string x = 1;
}
`

// listingWire is a Listing written field by field with protowire: id 7, sku "a", price 1.5,
// category GAMES, tags [x], attrs {k: v}, seller {name: acme}, updated 1700000000s.
func listingWire() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, "a")
	b = protowire.AppendTag(b, 3, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 0x3FF8000000000000) // 1.5
	b = protowire.AppendTag(b, 6, protowire.VarintType)
	b = protowire.AppendVarint(b, 2)
	b = protowire.AppendTag(b, 7, protowire.BytesType)
	b = protowire.AppendString(b, "x")
	var entry []byte
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "k")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendString(entry, "v")
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendBytes(b, entry)
	var seller []byte
	seller = protowire.AppendTag(seller, 1, protowire.BytesType)
	seller = protowire.AppendString(seller, "acme")
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	b = protowire.AppendBytes(b, seller)
	var ts []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, 1700000000)
	b = protowire.AppendTag(b, 10, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	return b
}

const listingProtoJSON = `{"id":"7","sku":"a","price":1.5,"qty":0,"active":false,"category":"GAMES","tags":["x"],"attrs":{"k":"v"},
 "seller":{"name":"acme","rating":0},"updated":"2023-11-14T22:13:20Z","order_ref":""}`

func TestProtobufDecode(t *testing.T) {
	reg := registrytest.New(t)
	id := reg.Register(t, "listings-value", "PROTOBUF", listingProto)
	d := newDecoder(t, map[string]any{"format": "protobuf", "registry": registryCfg(reg)})
	ctx := context.Background()

	out, info, err := d.Decode(ctx, wire(id, append([]byte{0}, listingWire()...)), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, out, listingProtoJSON)
	if info.ID != id || info.Subject != "listings-value" {
		t.Fatalf("info = %+v", info)
	}

	// message indexes [1] (Other) and [0, 1] (Listing.Seller: the map field's entry type is
	// Listing's nested message 0)
	other := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "y")
	out, _, err = d.Decode(ctx, wire(id, append([]byte{2, 2}, other...)), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, out, `{"x":"y"}`)
	out, _, err = d.Decode(ctx, wire(id, append([]byte{4, 0, 2}, other...)), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, out, `{"name":"y","rating":0}`)

	t.Run("options", func(t *testing.T) {
		d := newDecoder(t, map[string]any{"format": "protobuf", "registry": registryCfg(reg),
			"protobuf": map[string]any{"field_names": "json", "emit_unpopulated": false, "enums_as_ints": true}})
		b := protowire.AppendString(protowire.AppendTag(nil, 11, protowire.BytesType), "r")
		b = protowire.AppendVarint(protowire.AppendTag(b, 6, protowire.VarintType), 1)
		out, _, err := d.Decode(ctx, wire(id, append([]byte{0}, b...)), nil)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, out, `{"orderRef":"r","category":1}`)
	})

	for _, c := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"bad message index", wire(id, append([]byte{2, 10}, other...)), "message index [5] names no message"},
		{"garbage", wire(id, []byte{0, 0xff, 0xff, 0xff}), "payload does not decode as shop.v1.Listing"},
		{"no indexes", wire(id, nil), "payload ends inside its Protobuf message indexes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := d.Decode(ctx, c.payload, nil)
			var re *schema.RecordError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "(subject listings-value)") {
				t.Fatalf("err = %v, want a *RecordError containing %q", err, c.want)
			}
		})
	}
}

func TestProtobufEncode(t *testing.T) {
	reg := registrytest.New(t)
	ctx := context.Background()
	enc := newEncoder(t, map[string]any{"format": "protobuf", "registry": registryCfg(reg), "subject": "listings-value",
		"schema": listingProto, "auto_register": true})
	out, info, err := enc.Encode(ctx, []byte(listingProtoJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out[5] != 0 {
		t.Fatalf("message indexes of the first message: % x, want 00", out[5:6])
	}
	d := newDecoder(t, map[string]any{"format": "protobuf", "registry": registryCfg(reg)})
	back, _, err := d.Decode(ctx, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, back, listingProtoJSON)
	if info.Subject != "listings-value" || info.ID == 0 {
		t.Fatalf("info = %+v", info)
	}
	// the same bytes as a Listing written field by field (deterministic field order)
	if string(out[6:]) != string(listingWire()) {
		t.Fatalf("payload differs from protowire's:\n% x\n% x", out[6:], listingWire())
	}

	t.Run("nested message", func(t *testing.T) {
		enc := newEncoder(t, map[string]any{"format": "protobuf", "registry": registryCfg(reg), "subject": "listings-value",
			"schema": listingProto, "message": "shop.v1.Listing.Seller"})
		out, _, err := enc.Encode(ctx, []byte(`{"name":"n"}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(out[5:8]) != "\x04\x00\x02" {
			t.Fatalf("message indexes % x, want 04 00 02", out[5:8])
		}
		back, _, err := d.Decode(ctx, out, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, back, `{"name":"n","rating":0}`)
	})

	for _, c := range []struct{ name, json, want string }{
		{"wrong type", `{"id":"x"}`, `value does not fit message shop.v1.Listing`},
		{"unknown field", `{"nope":1}`, `unknown field "nope"`},
		{"bad enum", `{"category":"CARS"}`, `CARS`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := enc.Encode(ctx, []byte(c.json), nil)
			var re *schema.RecordError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "(subject listings-value)") {
				t.Fatalf("err = %v, want a *RecordError containing %q", err, c.want)
			}
		})
	}
}

// confluentSerializedProto is a schema as Confluent's Python ProtobufSerializer registers it: the
// base64 of a FileDescriptorProto (package xcheck.rdnb5gz5c1hxf; messages Listing, with the
// nested AttrsEntry and Seller, and Other; enum Category).
const confluentSerializedProto = "ChNtZG5iNWd6NWMxaHhmLnByb3RvEhR4Y2hlY2sucmRuYjVnejVjMWh4ZiK2AgoHTGlzdGluZxIKCgJpZBgBIAEoAxILCgNza3UYAiABKAkSDQoFcHJpY2UYAyABKAESDAoEdGFncxgEIAMoCRI3CgVhdHRycxgFIAMoCzIoLnhjaGVjay5yZG5iNWd6NWMxaHhmLkxpc3RpbmcuQXR0cnNFbnRyeRI0CgZzZWxsZXIYBiABKAsyJC54Y2hlY2sucmRuYjVnejVjMWh4Zi5MaXN0aW5nLlNlbGxlchIwCghjYXRlZ29yeRgHIAEoDjIeLnhjaGVjay5yZG5iNWd6NWMxaHhmLkNhdGVnb3J5GiwKCkF0dHJzRW50cnkSCwoDa2V5GAEgASgJEg0KBXZhbHVlGAIgASgDOgI4ARomCgZTZWxsZXISDAoEbmFtZRgBIAEoCRIOCgZyYXRpbmcYAiABKAIiEgoFT3RoZXISCQoBeBgBIAEoCSoiCghDYXRlZ29yeRILCgdVTktOT1dOEAASCQoFR0FNRVMQAWIGcHJvdG8z"

func TestProtobufSerializedSchema(t *testing.T) {
	reg := registrytest.New(t)
	id := reg.Register(t, "xcheck-value", "PROTOBUF", confluentSerializedProto)
	d := newDecoder(t, map[string]any{"format": "protobuf", "registry": registryCfg(reg)})
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		payload []byte // written by Confluent's Python serializer
		want    string
	}{
		{"Listing", []byte{0x00, 0x08, 0x07, 0x12, 0x01, 0x73, 0x19, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x22, 0x01, 0x61, 0x2a, 0x05, 0x0a, 0x01, 0x6b, 0x10, 0x02,
			0x32, 0x0b, 0x0a, 0x04, 0x61, 0x63, 0x6d, 0x65, 0x15, 0x00, 0x00, 0x90, 0x40, 0x38, 0x01},
			`{"id":"7","sku":"s","price":1.5,"tags":["a"],"attrs":{"k":"2"},"seller":{"name":"acme","rating":4.5},"category":"GAMES"}`},
		{"Listing.Seller", []byte{0x04, 0x00, 0x02, 0x0a, 0x01, 0x6e, 0x15, 0x00, 0x00, 0x00, 0x40}, `{"name":"n","rating":2}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := d.Decode(ctx, wire(id, c.payload), nil)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, out, c.want)
		})
	}
	enc := newEncoder(t, map[string]any{"format": "protobuf", "registry": registryCfg(reg), "subject": "xcheck-value",
		"message": "xcheck.rdnb5gz5c1hxf.Listing.Seller"})
	out, _, err := enc.Encode(ctx, []byte(`{"name":"n","rating":2}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := wire(id, []byte{0x04, 0x00, 0x02, 0x0a, 0x01, 0x6e, 0x15, 0x00, 0x00, 0x00, 0x40}); !bytes.Equal(out, want) {
		t.Fatalf("encoded % x, Confluent's serializer writes % x", out, want)
	}
}
