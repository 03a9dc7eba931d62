package schema_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/internal/schema/registrytest"
)

// FuzzDecodeAvro feeds arbitrary payloads to the Avro decoder: it must never panic, and whatever
// it accepts must be JSON.
func FuzzDecodeAvro(f *testing.F) {
	s := avro.MustParse(listingSchema)
	for i := range 4 {
		p, err := avro.Marshal(s, sampleListing(i))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Add([]byte{})
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	reg := registrytest.New(f)
	id := reg.Register(f, "listings-value", "AVRO", listingSchema)
	d := newDecoder(f, map[string]any{"format": "avro", "registry": registryCfg(reg)})
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, _, err := d.Decode(context.Background(), wire(id, payload), nil)
		var re *schema.RecordError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("err = %v, want a *RecordError", err)
		}
		if err == nil && !json.Valid(out) {
			t.Fatalf("accepted %x as %s, which is not JSON", payload, out)
		}
	})
}

// FuzzEncodeAvro feeds arbitrary JSON to the Avro encoder: it must never panic, and what it writes
// hamba must read.
func FuzzEncodeAvro(f *testing.F) {
	f.Add([]byte(sampleListingJSON))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`[1,2]`))
	reg := registrytest.New(f)
	e := newEncoder(f, map[string]any{"format": "avro", "registry": registryCfg(reg), "subject": "listings-value",
		"schema": listingSchema, "auto_register": true})
	s := avro.MustParse(listingSchema)
	f.Fuzz(func(t *testing.T, value []byte) {
		out, _, err := e.Encode(context.Background(), value, nil)
		var re *schema.RecordError
		if err != nil {
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a *RecordError", err)
			}
			return
		}
		var v any
		if err := avro.Unmarshal(s, out[5:], &v); err != nil {
			t.Fatalf("hamba cannot read what %s encoded to: %v", value, err)
		}
	})
}
