// Command schema benchmarks decode: avro → drop through the engine beside the Avro library it
// parses schemas with (github.com/hamba/avro/v2) used directly to turn the same payloads into JSON,
// each scenario in a fresh child process so CPU time and peak memory are its own. Rounds
// alternate the implementations so that both see the same machine. Run it with
// `make bench-schema` or `go run ./internal/bench/schema`.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/internal/bench/child"
	"github.com/sluicehq/sluice/internal/bench/latency"
	"github.com/sluicehq/sluice/internal/bench/peak"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/gctune"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// priceSchema is a commodity price as producers write it: about 60 bytes of Avro, 150 of JSON.
const priceSchema = `{"type":"record","name":"Price","namespace":"market","fields":[
 {"name":"commodity","type":"string"},
 {"name":"price","type":"double"},
 {"name":"ts","type":"long"},
 {"name":"qty","type":"int"},
 {"name":"venue","type":["null","string"],"default":null},
 {"name":"side","type":{"type":"enum","name":"Side","symbols":["BUY","SELL"]}},
 {"name":"unit","type":"string"}]}`

type price struct {
	Commodity string  `avro:"commodity" json:"commodity"`
	Price     float64 `avro:"price" json:"price"`
	TS        int64   `avro:"ts" json:"ts"`
	Qty       int32   `avro:"qty" json:"qty"`
	Venue     *string `avro:"venue" json:"venue"`
	Side      string  `avro:"side" json:"side"`
	Unit      string  `avro:"unit" json:"unit"`
}

const schemaID = 7

type result struct {
	Scenario string        `json:"scenario"`
	Impl     string        `json:"impl"`
	Records  int64         `json:"records"`
	Bytes    int64         `json:"bytes"` // JSON produced
	Elapsed  time.Duration `json:"elapsed"`
	P50, P99 time.Duration
	CPU      time.Duration `json:"cpu"`
	MaxRSS   int64         `json:"max_rss"`
}

func main() {
	childName := flag.String("child", "", "run one implementation in this process (internal)")
	records := flag.Int64("records", 3_000_000, "records per run")
	rounds := flag.Int("rounds", 3, "alternating rounds of every implementation")
	flag.Parse()
	if *childName != "" {
		if *childName == "sluice" || *childName == "json-drop" {
			gctune.Apply() // as `sluice run` does; the plain programs keep Go's default
		}
		r, err := runChild(*childName, *records)
		if err != nil {
			fatal(err)
		}
		r.MaxRSS = peak.RSS()
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	impls := []string{"hamba-generic", "hamba-struct", "sluice", "json-drop"}
	fmt.Printf("schema benchmark: Avro decode → drop, %d records of %d bytes (Avro) per run, %d rounds\n\n", *records, len(payloads()[0])-5, *rounds)
	fmt.Printf("%-6s %-14s %10s %8s %12s %9s %9s %8s %9s\n", "round", "impl", "records", "secs", "records/s", "p50", "p99", "cpu s", "peak MiB")
	rates := map[string][]float64{}
	cpuPer := map[string][]float64{}
	for round := 1; round <= *rounds; round++ {
		for _, impl := range impls {
			var r result
			cpu, err := child.Run(&r, "-child", impl, "-records", fmt.Sprint(*records))
			if err != nil {
				fatal(fmt.Errorf("%s: %w", impl, err))
			}
			r.CPU = cpu
			secs := r.Elapsed.Seconds()
			rates[impl] = append(rates[impl], float64(r.Records)/secs)
			cpuPer[impl] = append(cpuPer[impl], float64(r.CPU.Nanoseconds())/float64(r.Records))
			fmt.Printf("%-6d %-14s %10d %8.2f %12.0f %9s %9s %8.2f %9.1f\n", round, impl, r.Records, secs, float64(r.Records)/secs,
				dur(r.P50), dur(r.P99), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20))
		}
	}
	fmt.Println()
	fmt.Printf("%-14s %14s %16s\n", "impl", "median rec/s", "median cpu ns/rec")
	for _, impl := range impls {
		fmt.Printf("%-14s %14.0f %16.0f\n", impl, median(rates[impl]), median(cpuPer[impl]))
	}
	s := median(rates["sluice"])
	fmt.Printf("\nratio sluice / hamba-generic: %.2f (records/s), %.2f (CPU per record, hamba ÷ sluice)\n",
		s/median(rates["hamba-generic"]), median(cpuPer["hamba-generic"])/median(cpuPer["sluice"]))
	fmt.Printf("ratio sluice / hamba-struct:  %.2f (records/s), %.2f (CPU per record, hamba ÷ sluice)\n",
		s/median(rates["hamba-struct"]), median(cpuPer["hamba-struct"])/median(cpuPer["sluice"]))
	fmt.Println("\nsluice = an engine pipeline: a source replaying the wire-format payloads from memory → decode: avro")
	fmt.Println("(schema from an in-process registry) → a sink that drops; p50/p99 = from a batch's read to its write.")
	fmt.Println("hamba-generic = a plain loop: strip the wire header, avro.Unmarshal into map[string]any, json.Marshal.")
	fmt.Println("hamba-struct = the same into the record's Go struct (a program written for this one schema).")
	fmt.Println("json-drop = the engine on the same records already JSON, no decode: the engine's own share.")
}

// payloads are the distinct wire-format values the runs cycle through.
var payloads = sync.OnceValue(func() [][]byte {
	sch := avro.MustParse(priceSchema)
	names := []string{"corn", "wheat", "soybeans", "gold", "silver", "crude oil", "natural gas", "copper"}
	venue := "CBOT"
	out := make([][]byte, 4096)
	for i := range out {
		p := price{Commodity: names[i%len(names)], Price: 10 + float64(i)*0.37, TS: 1767225600000 + int64(i)*250, Qty: int32(i % 500),
			Side: []string{"BUY", "SELL"}[i%2], Unit: "USD/bu"}
		if i%3 == 0 {
			p.Venue = &venue
		}
		b, err := avro.Marshal(sch, p)
		if err != nil {
			fatal(err)
		}
		w := make([]byte, 5, 5+len(b))
		binary.BigEndian.PutUint32(w[1:], schemaID)
		out[i] = append(w, b...)
	}
	return out
})

func runChild(impl string, n int64) (result, error) {
	r := result{Scenario: "avro-decode-drop", Impl: impl}
	ps := payloads()
	switch impl {
	case "hamba-generic", "hamba-struct":
		sch := avro.MustParse(priceSchema)
		start := time.Now()
		for i := range n {
			p := ps[i%int64(len(ps))]
			var (
				b   []byte
				err error
			)
			if impl == "hamba-generic" {
				var v any
				if err = avro.Unmarshal(sch, p[5:], &v); err == nil {
					b, err = json.Marshal(v)
				}
			} else {
				var v price
				if err = avro.Unmarshal(sch, p[5:], &v); err == nil {
					b, err = json.Marshal(&v)
				}
			}
			if err != nil {
				return r, err
			}
			r.Bytes += int64(len(b))
		}
		r.Records, r.Elapsed = n, time.Since(start)
		return r, nil
	case "sluice", "json-drop":
		url, stop, err := serveRegistry()
		if err != nil {
			return r, err
		}
		defer stop()
		dir, err := os.MkdirTemp("", "sluice-bench-schema-")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(dir)
		values := ps
		if impl == "json-drop" {
			values = asJSON(ps)
		}
		src := &memorySource{values: values, left: n}
		snk := &latency.Sink{}
		p := &pipeline.Pipeline{Name: "bench", Source: object(src),
			Sinks: []pipeline.Sink{{Name: "out", Component: object(snk)}}}
		if impl == "sluice" {
			p.Source.Decode = connector.Config{"format": "avro", "registry": map[string]any{"url": url}}
		}
		store, err := checkpoint.Open(filepath.Join(dir, "data"))
		if err != nil {
			return r, err
		}
		defer store.Close()
		e, err := engine.New(p, engine.Options{Catalog: benchCatalog(), Checkpoints: store})
		if err != nil {
			return r, err
		}
		start := time.Now()
		if err := e.Run(context.Background()); err != nil {
			return r, err
		}
		r.Elapsed = time.Since(start)
		r.Records, r.Bytes = snk.Counts()
		r.P50, r.P99 = snk.Percentiles()
		if r.Records != n {
			return r, fmt.Errorf("the sink got %d records of %d", r.Records, n)
		}
		return r, nil
	}
	return r, fmt.Errorf("unknown implementation %q", impl)
}

// asJSON is the JSON form of the payloads (what decode produces), for the engine-only run.
func asJSON(ps [][]byte) [][]byte {
	sch := avro.MustParse(priceSchema)
	out := make([][]byte, len(ps))
	for i, p := range ps {
		var v price
		if err := avro.Unmarshal(sch, p[5:], &v); err != nil {
			fatal(err)
		}
		out[i], _ = json.Marshal(&v)
	}
	return out
}

// serveRegistry answers the requests decode makes of a Confluent-compatible registry for the one
// schema of the benchmark.
func serveRegistry() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /schemas/types", func(w http.ResponseWriter, _ *http.Request) { reply(w, []string{"AVRO", "PROTOBUF", "JSON"}) })
	mux.HandleFunc("GET /subjects", func(w http.ResponseWriter, _ *http.Request) { reply(w, []string{"prices-value"}) })
	mux.HandleFunc(fmt.Sprintf("GET /schemas/ids/%d", schemaID), func(w http.ResponseWriter, _ *http.Request) {
		reply(w, map[string]any{"schema": priceSchema})
	})
	mux.HandleFunc(fmt.Sprintf("GET /schemas/ids/%d/versions", schemaID), func(w http.ResponseWriter, _ *http.Request) {
		reply(w, []map[string]any{{"subject": "prices-value", "version": 1}})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// memorySource returns batches of the values, cycling through them, until it has returned left
// records; each batch carries its read time.
type memorySource struct {
	values [][]byte
	left   int64
	off    int64
}

const batchSize = 1024

func (s *memorySource) Open(context.Context, []connector.Position) error { return nil }
func (s *memorySource) Ack(context.Context, []connector.Position) error  { return nil }
func (s *memorySource) Close(context.Context) error                      { return nil }
func (s *memorySource) Read(context.Context) ([]connector.Record, error) {
	if s.left <= 0 {
		return nil, io.EOF
	}
	n := min(int64(batchSize), s.left)
	s.left -= n
	now := time.Now()
	recs := make([]connector.Record, n)
	for i := range recs {
		recs[i] = connector.Record{Value: s.values[(s.off+int64(i))%int64(len(s.values))], Time: now,
			Position: connector.Position{Offset: s.off + int64(i)}}
	}
	s.off += n
	return recs, nil
}

var objects sync.Map

// object registers a source or sink instance under a fresh id and returns the component that
// builds it.
func object(o any) pipeline.Component {
	id := fmt.Sprintf("%p", o)
	objects.Store(id, o)
	return pipeline.Component{Type: "bench-object", Config: connector.Config{"id": id}}
}

func benchCatalog() *catalog.Catalog {
	cat := all.Catalog()
	spec := connector.Spec{Name: "bench-object", Fields: []connector.Field{{Name: "id", Type: connector.TypeString}}}
	for _, c := range []connector.Component{
		connector.SourceComponent(spec, func(cfg connector.Config, _ connector.Env) (connector.Source, error) {
			o, _ := objects.Load(cfg.String("id"))
			return o.(connector.Source), nil
		}),
		connector.SinkComponent(spec, func(cfg connector.Config, _ connector.Env) (connector.Sink, error) {
			o, _ := objects.Load(cfg.String("id"))
			return o.(connector.Sink), nil
		}),
	} {
		if err := cat.Add(c); err != nil {
			fatal(err)
		}
	}
	return cat
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Microsecond).String()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
