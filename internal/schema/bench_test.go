package schema_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/internal/schema/registrytest"
)

// benchPayloads are Listing records as a producer writes them, with hamba's own encoder.
func benchPayloads(b *testing.B) [][]byte {
	s := avro.MustParse(listingSchema)
	out := make([][]byte, 64)
	for i := range out {
		p, err := avro.Marshal(s, sampleListing(i))
		if err != nil {
			b.Fatal(err)
		}
		out[i] = p
	}
	return out
}

func reportRecords(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecodeAvro decodes wire-format Avro records to JSON through the Decoder (header, cached
// schema lookup, transcoding), appending into a reused buffer.
func BenchmarkDecodeAvro(b *testing.B) {
	reg := registrytest.New(b)
	id := reg.Register(b, "listings-value", "AVRO", listingSchema)
	payloads := benchPayloads(b)
	for i := range payloads {
		payloads[i] = wire(id, payloads[i])
	}
	d := newDecoder(b, map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL}})
	ctx := context.Background()
	var dst []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if dst, _, err = d.Decode(ctx, payloads[i%len(payloads)], dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b)
}

// BenchmarkDecodeAvroParallel is BenchmarkDecodeAvro from GOMAXPROCS goroutines sharing one Decoder.
func BenchmarkDecodeAvroParallel(b *testing.B) {
	reg := registrytest.New(b)
	id := reg.Register(b, "listings-value", "AVRO", listingSchema)
	payloads := benchPayloads(b)
	for i := range payloads {
		payloads[i] = wire(id, payloads[i])
	}
	d := newDecoder(b, map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL}})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var dst []byte
		i := 0
		for pb.Next() {
			var err error
			if dst, _, err = d.Decode(ctx, payloads[i%len(payloads)], dst[:0]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	reportRecords(b)
}

// BenchmarkHambaDirect is the baseline: the same library used directly, as a Go program would get
// JSON from Avro without knowing the schema in advance: decode into a generic value, then
// encoding/json.
func BenchmarkHambaDirect(b *testing.B) {
	s := avro.MustParse(listingSchema)
	payloads := benchPayloads(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var v any
		if err := avro.Unmarshal(s, payloads[i%len(payloads)], &v); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b)
}

// BenchmarkHambaDirectStruct is the baseline with a Go struct written for the schema in advance
// (hamba's fastest path), then encoding/json.
func BenchmarkHambaDirectStruct(b *testing.B) {
	s := avro.MustParse(listingSchema)
	payloads := benchPayloads(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var v listing
		if err := avro.Unmarshal(s, payloads[i%len(payloads)], &v); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b)
}

// BenchmarkEncodeAvro encodes JSON records to wire-format Avro through the Encoder.
func BenchmarkEncodeAvro(b *testing.B) {
	reg := registrytest.New(b)
	e := newEncoder(b, map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL},
		"subject": "listings-value", "schema": listingSchema, "auto_register": true})
	value := []byte(sampleListingJSON)
	ctx := context.Background()
	var dst []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if dst, _, err = e.Encode(ctx, value, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b)
}

// BenchmarkDecodeProtobuf decodes wire-format Protobuf Listings to JSON (dynamicpb and protojson).
func BenchmarkDecodeProtobuf(b *testing.B) {
	reg := registrytest.New(b)
	id := reg.Register(b, "listings-value", "PROTOBUF", listingProto)
	payload := wire(id, append([]byte{0}, listingWire()...))
	d := newDecoder(b, map[string]any{"format": "protobuf", "registry": map[string]any{"url": reg.URL}})
	ctx := context.Background()
	var dst []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if dst, _, err = d.Decode(ctx, payload, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b)
}
