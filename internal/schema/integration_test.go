package schema_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestSchemaRegistryIntegration registers Avro, Protobuf and JSON schemas with a real registry
// (Apicurio's Confluent-compatible API in the test services) and round-trips values through the
// Encoder and Decoder.
func TestSchemaRegistryIntegration(t *testing.T) {
	url := testenv.Require(t, "SCHEMA_REGISTRY_URL")
	ctx := context.Background()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	reg := map[string]any{"url": url}

	roundTrip := func(t *testing.T, format, subject, schemaText, value, want string) schema.Info {
		t.Helper()
		enc := newEncoder(t, map[string]any{"format": format, "registry": reg, "subject": subject, "schema": schemaText, "auto_register": true})
		info := enc.Info()
		if info.ID == 0 || info.Subject != subject {
			t.Fatalf("registered: %+v", info)
		}
		b, _, err := enc.Encode(ctx, []byte(value), nil)
		if err != nil {
			t.Fatal(err)
		}
		dec := newDecoder(t, map[string]any{"format": format, "registry": reg})
		out, dinfo, err := dec.Decode(ctx, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, out, want)
		if dinfo.ID != info.ID || dinfo.Subject != subject {
			t.Fatalf("decoded with %+v, encoded with %+v", dinfo, info)
		}
		// an encoder without a schema takes the subject's latest, the one just registered
		if got := newEncoder(t, map[string]any{"format": format, "registry": reg, "subject": subject}).Info(); got.ID != info.ID {
			t.Fatalf("latest of %s: %+v, want id %d", subject, got, info.ID)
		}
		return info
	}

	t.Run("avro", func(t *testing.T) {
		subject := "listings-" + suffix + "-value"
		// a schema of this run only: the registry gives identical schemas one id, whose subject is
		// then the first one registered
		text := strings.Replace(listingSchema, `"namespace": "shop"`, `"namespace": "shop.r`+suffix+`"`, 1)
		info := roundTrip(t, "avro", subject, text, sampleListingJSON, sampleListingJSON)
		// bytes from an independent writer decode under the registry's id
		p, err := avro.Marshal(avro.MustParse(text), sampleListing(0))
		if err != nil {
			t.Fatal(err)
		}
		dec := newDecoder(t, map[string]any{"format": "avro", "registry": reg})
		out, _, err := dec.Decode(ctx, wire(info.ID, p), nil)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, out, sampleListingJSON)
	})
	t.Run("protobuf", func(t *testing.T) {
		text := strings.Replace(listingProto, "package shop.v1;", "package shop.r"+suffix+";", 1)
		roundTrip(t, "protobuf", "listings-"+suffix+"-proto-value", text, listingProtoJSON, listingProtoJSON)
	})
	t.Run("json_schema", func(t *testing.T) {
		text := strings.Replace(priceJSONSchema, `"type":"object",`, `"type":"object","$comment":"`+suffix+`",`, 1)
		roundTrip(t, "json_schema", "prices-"+suffix+"-value", text, `{"price":1,"sku":"a"}`, `{"price":1,"sku":"a"}`)
	})
	t.Run("unknown id", func(t *testing.T) {
		dec := newDecoder(t, map[string]any{"format": "avro", "registry": reg})
		_, _, err := dec.Decode(ctx, wire(2_000_000_000, []byte{0}), nil)
		var re *schema.RecordError
		if !errors.As(err, &re) || re.Info.ID != 2_000_000_000 {
			t.Fatalf("err = %v, want a *RecordError for the id", err)
		}
	})
	t.Run("incompatible change", func(t *testing.T) {
		subject := "prices-" + suffix + "-compat-value"
		v1 := `{"type":"record","name":"P","fields":[{"name":"price","type":"double"}]}`
		v2 := `{"type":"record","name":"P","fields":[{"name":"price","type":"double"},{"name":"currency","type":"string"}]}`
		newEncoder(t, map[string]any{"format": "avro", "registry": reg, "subject": subject, "schema": v1, "auto_register": true})
		cl, err := sr.NewClient(sr.URLs(url))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subject) {
			if r.Err != nil {
				t.Fatalf("set BACKWARD on %s: %v", subject, r.Err)
			}
		}
		_, err = newEncoderErr(t, map[string]any{"format": "avro", "registry": reg, "subject": subject, "schema": v2, "auto_register": true})
		if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "subject "+subject+" refuses the schema as incompatible") {
			t.Fatalf("err = %v, want a permanent refusal naming the subject", err)
		}
		t.Logf("refusal: %v", err)
	})
}
