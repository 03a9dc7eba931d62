// Package pipeline holds the configuration the runtime runs a pipeline from: its source,
// transforms, sinks, dead-letter sink, delivery guarantee and batch and buffer policies.
//
// It is the runtime's own vocabulary, free of any file format: the manifest loader (package
// manifests) decodes YAML into these types, and the supervisor and the engine take them. Every
// default the runtime applies is declared here, once, as an exported constant, so the manifest
// docs and JSON Schema show the values the engine really uses.
package pipeline

import (
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Defaults of the batch and buffer policies.
const (
	DefaultBatchRecords  = 1024
	DefaultBatchBytes    = 4 << 20
	DefaultBatchLinger   = 20 * time.Millisecond
	DefaultBufferRecords = 65536
	DefaultBufferBytes   = 64 << 20
)

// Defaults of the dead-letter failure limit: ratio 1 never stops a pipeline.
const (
	DefaultFailureRatio  = 1.0
	DefaultFailureWindow = 1000
)

// Defaults of a transform stage's limits.
const (
	DefaultTransformMemory  = 64 << 20
	DefaultTransformTimeout = 5 * time.Second
	DefaultTransformMode    = ModeMetered
	// MaxTransformInstances caps a stage's instance pool.
	MaxTransformInstances = 64
	// MinTransformMemory is the smallest memory limit: one 64 KiB WASM page.
	MinTransformMemory = 64 << 10
	// MaxTransformMemory is the largest memory limit: the 4 GiB a wasm32 module can address.
	MaxTransformMemory = 4 << 30
)

// DefaultTransformInstances is the instance pool size of a stage that sets none: GOMAXPROCS,
// at most 4.
func DefaultTransformInstances() int { return min(runtime.GOMAXPROCS(0), 4) }

// DefaultDrainTimeout bounds the drain after a stop request.
const DefaultDrainTimeout = 30 * time.Second

// DefaultStuckAfter is how long a sink may keep failing, or a stage may hold a batch, before the
// pipeline reports itself not ready.
const DefaultStuckAfter = 2 * time.Minute

// DefaultPort is the transform output port of passed records, and the port a sink reads when its
// configuration names none: output port 0 of every transform module (sdk/go/abi).
const DefaultPort = abi.DefaultPort

// Delivery is a pipeline's delivery guarantee.
type Delivery string

// Delivery guarantees.
const (
	AtLeastOnce Delivery = "at_least_once"
	ExactlyOnce Delivery = "exactly_once"
)

// DefaultDelivery is the guarantee of a pipeline that states none.
const DefaultDelivery = AtLeastOnce

// OnReject says what happens to records a transform rejects.
type OnReject string

// Reject policies.
const (
	RejectToDeadLetter OnReject = "dead_letter"
	RejectDrop         OnReject = "drop"
	RejectStop         OnReject = "stop"
)

// DefaultOnReject is the reject policy of a transform that states none.
const DefaultOnReject = RejectToDeadLetter

// Transform execution modes.
const (
	// ModeMetered runs a rewritten module that counts its work and lets the host stop it at its
	// deadline, at close to ModeTrusted's speed.
	ModeMetered = "metered"
	// ModeStrict interrupts a guest at its deadline with the runtime's own checks (slower).
	ModeStrict = "strict"
	// ModeTrusted runs faster but cannot interrupt a runaway guest.
	ModeTrusted = "trusted"
)

// Pipeline is one pipeline's configuration. Zero values of its policies mean the defaults above;
// WithDefaults fills them in.
type Pipeline struct {
	Name       string
	Labels     map[string]string
	Source     Component
	Transforms []Transform
	Sinks      []Sink
	// DeadLetter receives rejected, refused and unrouted records; nil when none is configured.
	DeadLetter *Component
	// FailureLimit stops the pipeline when too many records go to the dead letters.
	FailureLimit FailureLimit
	Delivery     Delivery
	Batch        BatchPolicy
	Buffer       BufferPolicy
	// StuckAfter is how long a sink may keep failing, or a stage may hold one batch, before the
	// pipeline reports itself not ready (the reason shows in the admin API). Default
	// DefaultStuckAfter.
	StuckAfter time.Duration
	// Lease, when set, makes the pipeline a singleton across replicas: it runs only while this
	// process holds the lease, and its source positions move with the lease. Nil: no lease.
	Lease *Lease
}

// DefaultLeaseRetry is how often a replica waiting for a lease tries to take it, and how often
// the holder checks that it still holds it.
const DefaultLeaseRetry = time.Second

// Lease is a pipeline's lease: of the processes running pipelines with the same lease, one holds
// it and runs the pipeline; the others stand by (ready, not reading) until the holder dies or
// lets it go.
type Lease struct {
	// Postgres is the connection string of the Postgres database whose session advisory lock is
	// the lease and which keeps the pipeline's source positions while it is leased. Exactly one
	// of Postgres and Kubernetes is set.
	Postgres string
	// Kubernetes makes the lease a Kubernetes Lease object (coordination.k8s.io/v1) in the
	// cluster the process runs in, named Name, which also keeps the positions.
	Kubernetes *KubernetesLease
	// Name identifies the lease: pipelines with the same lease name (and database) exclude each
	// other and share positions. Empty means the pipeline's name.
	Name string
	// Retry is how often a standby tries to take the lease and the holder checks it; zero means
	// DefaultLeaseRetry.
	Retry time.Duration
	// Secrets lists the secret values of the settings (the password in Postgres), for redaction.
	Secrets []string
}

// DefaultLeaseDuration is a Kubernetes lease's leaseDurationSeconds: a holder that has not
// renewed it for this long is taken over.
const DefaultLeaseDuration = 15 * time.Second

// KubernetesLease is where a Kubernetes lease lives.
type KubernetesLease struct {
	// Namespace of the Lease object; empty means the service account's namespace.
	Namespace string
	// Duration is the Lease's leaseDurationSeconds; zero means DefaultLeaseDuration.
	Duration time.Duration
	// Server, TokenFile and CAFile reach the API server from outside the cluster; empty means
	// the in-cluster values (the service account's).
	Server, TokenFile, CAFile string
}

// Component is a configured source, sink or dead-letter sink.
type Component struct {
	// Type names the component in the catalog ("file", "plugin:csv").
	Type string
	// Config holds the validated configuration: defaults applied, references resolved.
	Config connector.Config
	// Secrets lists the values of secret fields (and what references in them resolved to), so
	// logs and errors can redact them.
	Secrets []string
	// Decode (a source's) is the validated decode: mapping: how the source's record values are
	// turned from Avro, Protobuf or JSON Schema payloads (with a schema registry's wire header)
	// into the JSON the transforms see. Nil when the manifest has none.
	Decode connector.Config
	// Encode (a sink's) is the validated encode: mapping: how the JSON record values are turned
	// into a registry's wire format before the sink writes them. Nil when the manifest has none.
	Encode connector.Config
}

// Sink is a named sink reading from one transform output port.
type Sink struct {
	Component
	Name string
	// From is the output port the sink reads; DefaultPort when empty.
	From string
	// Batch is the sink's own batch policy: the engine gathers the pipeline's batches for this
	// sink until one of its limits is reached or its linger has passed since the first record
	// waiting, without holding up the other sinks. Nil means the sink writes the pipeline's
	// batches as they come (coalescing what is queued when it falls behind). Zero fields take the
	// pipeline's batch values (WithDefaults). A sink batch holds its records' share of the buffer
	// budget while it fills, so it must fit in the buffer.
	Batch *BatchPolicy
}

// Port returns the port the sink reads, DefaultPort when From is empty.
func (s *Sink) Port() string {
	if s.From == "" {
		return DefaultPort
	}
	return s.From
}

// Transform is one WASM transform stage.
type Transform struct {
	Name string
	// Module is the path of the WASM module.
	Module string
	// SHA256 pins the module's digest (lowercase hex); empty when not pinned.
	SHA256 string
	// Config is the JSON text handed to the module's init call unchanged; "{}" when empty.
	Config []byte
	Limits Limits
	// OnReject defaults to DefaultOnReject.
	OnReject OnReject
	// Aggregate is set for an aggregate stage (manifest key aggregate:), whose module is an
	// aggregate module (ABI.md section 13): Module, SHA256 and Config are then the aggregate
	// mapping's wasm, sha256 and config.
	Aggregate *Aggregate
}

// Aggregate configures an aggregate stage: keys, event time, windows and state.
type Aggregate struct {
	// Key is a JSONPath into the record value ("$.commodity"), "$" for the whole value, or empty
	// for the record key.
	Key string
	// Time is a JSONPath to the event time (epoch ms, or RFC 3339 text); empty means processing
	// time.
	Time string
	// Window: at most one of Tumbling, Hopping (with Every) and Session is set; none means one
	// slot per key, expired by TTL.
	Tumbling, Hopping, Every, Session time.Duration
	// AllowedLateness holds the watermark that far behind the largest event time seen.
	AllowedLateness time.Duration
	// TTL expires the slot of a key idle that long (stages without a window); 0 keeps slots.
	TTL time.Duration
	// Early emits updates of open windows that changed, that often; 0 emits only when windows
	// close.
	Early time.Duration
	// Late is LateDeadLetter (default), LateDrop, or the name of an output port.
	Late string
	// StateBytes bounds one state blob; 0 means the ABI's default (64 KiB).
	StateBytes int
	// MemoryBytes bounds the state blobs held in memory (the rest is read back from the store);
	// 0 means the default (256 MiB).
	MemoryBytes int64
}

// DefaultAggregateMemory is the default bound of the state blobs an aggregate stage holds in
// memory (Aggregate.MemoryBytes).
const DefaultAggregateMemory = 256 << 20

// Where late records go (Aggregate.Late).
const (
	LateDeadLetter = "dead_letter"
	LateDrop       = "drop"
)

// Limits bound a transform stage. Zero values mean the defaults above.
type Limits struct {
	// MemoryBytes caps each instance's linear memory. Default DefaultTransformMemory.
	MemoryBytes int64
	// Timeout is the deadline of one guest call. Default DefaultTransformTimeout.
	Timeout time.Duration
	// Mode is ModeMetered (the default), ModeStrict or ModeTrusted.
	Mode string
	// Instances is the pool size. Default DefaultTransformInstances().
	Instances int
	// Fuel bounds, in metered mode, the work of one guest call to Fuel units per record of its
	// frame; 0 means no bound.
	Fuel int64
}

// FailureLimit stops a pipeline when more than Ratio of the last Window records went to the
// dead letters (rejected by a transform, refused by a sink, or unrouted): a flood of failures
// usually means a broken upstream or a wrong transform, not bad records. Ratio 1 never stops.
type FailureLimit struct {
	Ratio  float64 // in (0, 1]; default DefaultFailureRatio
	Window int     // records; default DefaultFailureWindow
}

// BatchPolicy says how the engine groups records into batches.
type BatchPolicy struct {
	MaxRecords int           // default DefaultBatchRecords
	MaxBytes   int64         // default DefaultBatchBytes
	Linger     time.Duration // default DefaultBatchLinger: how long to wait to fill a batch
}

// BufferPolicy bounds the records in flight between the source and the sinks.
type BufferPolicy struct {
	MaxRecords int   // default DefaultBufferRecords
	MaxBytes   int64 // default DefaultBufferBytes
}

// WithDefaults returns a copy of p with every zero-valued policy and limit replaced by its
// default, and the zero fields of every sink batch by the pipeline's batch values. Slices and maps
// are shared with p, except Sinks when a sink has a batch.
func (p *Pipeline) WithDefaults() *Pipeline {
	c := *p
	c.FailureLimit = c.FailureLimit.withDefaults()
	c.Batch = c.Batch.withDefaults()
	c.Buffer = c.Buffer.withDefaults()
	if c.Delivery == "" {
		c.Delivery = DefaultDelivery
	}
	if c.StuckAfter <= 0 {
		c.StuckAfter = DefaultStuckAfter
	}
	copied := false
	for i, s := range p.Sinks {
		if s.Batch == nil {
			continue
		}
		if !copied {
			c.Sinks, copied = append([]Sink(nil), p.Sinks...), true
		}
		b := s.Batch.over(c.Batch)
		c.Sinks[i].Batch = &b
	}
	if len(c.Transforms) > 0 {
		c.Transforms = make([]Transform, len(p.Transforms))
		for i, t := range p.Transforms {
			c.Transforms[i] = t.WithDefaults()
		}
	}
	return &c
}

// WithDefaults returns t with its zero-valued limits, reject policy and config replaced by their
// defaults.
func (t Transform) WithDefaults() Transform {
	t.Limits = t.Limits.WithDefaults()
	if t.OnReject == "" {
		t.OnReject = DefaultOnReject
	}
	if len(t.Config) == 0 {
		t.Config = []byte("{}")
	}
	return t
}

// WithDefaults returns l with its zero values replaced by the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = DefaultTransformMemory
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTransformTimeout
	}
	if l.Mode == "" {
		l.Mode = DefaultTransformMode
	}
	if l.Instances <= 0 {
		l.Instances = DefaultTransformInstances()
	}
	return l
}

func (f FailureLimit) withDefaults() FailureLimit {
	if f.Ratio <= 0 {
		f.Ratio = DefaultFailureRatio
	}
	if f.Window <= 0 {
		f.Window = DefaultFailureWindow
	}
	return f
}

func (b BatchPolicy) withDefaults() BatchPolicy {
	if b.MaxRecords <= 0 {
		b.MaxRecords = DefaultBatchRecords
	}
	if b.MaxBytes <= 0 {
		b.MaxBytes = DefaultBatchBytes
	}
	if b.Linger <= 0 {
		b.Linger = DefaultBatchLinger
	}
	return b
}

// over returns b with its zero fields taken from the pipeline's batch policy p.
func (b BatchPolicy) over(p BatchPolicy) BatchPolicy {
	if b.MaxRecords <= 0 {
		b.MaxRecords = p.MaxRecords
	}
	if b.MaxBytes <= 0 {
		b.MaxBytes = p.MaxBytes
	}
	if b.Linger <= 0 {
		b.Linger = p.Linger
	}
	return b
}

func (b BufferPolicy) withDefaults() BufferPolicy {
	if b.MaxRecords <= 0 {
		b.MaxRecords = DefaultBufferRecords
	}
	if b.MaxBytes <= 0 {
		b.MaxBytes = DefaultBufferBytes
	}
	return b
}

// Secrets returns the secret values of the pipeline's components, for redaction, longest first
// (the order Redact needs, so that it need not sort them on every call).
func (p *Pipeline) Secrets() []string {
	out := append([]string(nil), p.Source.Secrets...)
	for _, s := range p.Sinks {
		out = append(out, s.Secrets...)
	}
	if p.DeadLetter != nil {
		out = append(out, p.DeadLetter.Secrets...)
	}
	sort.SliceStable(out, longerFirst(out))
	return out
}

func longerFirst(ss []string) func(i, j int) bool {
	return func(i, j int) bool { return len(ss[i]) > len(ss[j]) }
}

// Redact replaces every secret value in s with "[redacted]", longest first so that a secret
// containing another is hidden whole. Secrets already longest first (as Pipeline.Secrets returns
// them) are not copied or sorted again.
func Redact(s string, secrets []string) string {
	if len(secrets) == 0 || s == "" {
		return s
	}
	sorted := secrets
	if !sort.SliceIsSorted(secrets, longerFirst(secrets)) {
		sorted = append([]string(nil), secrets...)
		sort.Slice(sorted, longerFirst(sorted))
	}
	for _, sec := range sorted {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
