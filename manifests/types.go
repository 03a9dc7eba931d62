// Package manifests loads, validates and describes Sluice pipeline manifests.
//
// A manifest file holds one or more Kubernetes-style YAML documents (apiVersion sluice.dev/v1,
// kind Pipeline). Loading is strict: unknown keys, wrong types, missing required fields, bad enum
// values, unknown components and unresolvable ${env:NAME} / ${file:PATH} references and any other ${...} are all
// reported together as Diagnostics, each with the file, line and column it concerns.
package manifests

import (
	"github.com/sluicehq/sluice/runtime/pipeline"
)

// APIVersion is the only manifest API version this runtime reads.
const APIVersion = "sluice.dev/v1"

// Pos is a place in a manifest file. Line and Col are 1-based; zero means unknown.
type Pos struct {
	File string
	Line int
	Col  int
}

// Delivery is a pipeline's delivery guarantee.
type Delivery = pipeline.Delivery

// Delivery guarantees.
const (
	AtLeastOnce = pipeline.AtLeastOnce
	ExactlyOnce = pipeline.ExactlyOnce
)

// OnReject says what happens to records a transform rejects.
type OnReject = pipeline.OnReject

// Reject policies.
const (
	RejectToDeadLetter = pipeline.RejectToDeadLetter
	RejectDrop         = pipeline.RejectDrop
	RejectStop         = pipeline.RejectStop
)

// Pipeline is one validated Pipeline document.
type Pipeline struct {
	Name       string
	Labels     map[string]string
	Pos        Pos // of the document
	Source     Component
	Transforms []Transform
	Sinks      []Sink
	DeadLetter *Component // nil when the manifest configures none
	// FailureLimit stops the pipeline when too many records go to the dead letters.
	FailureLimit FailureLimit
	Delivery     Delivery
	Batch        BatchPolicy
	Buffer       BufferPolicy
	// Lease makes the pipeline a singleton across replicas (spec.lease); nil when not set.
	Lease *pipeline.Lease
}

// Component is a configured source, sink or dead-letter sink: the runtime's configuration of it
// (type, config with defaults applied and references resolved, secret values) and where the
// manifest wrote it.
type Component struct {
	pipeline.Component
	Pos    Pos            // of the component's mapping
	Fields map[string]Pos // position of each top-level config key, for later diagnostics
	// CodecFields holds the position of each key of the source's decode: or the sink's encode:
	// mapping, by its path ("decode", "decode.format", "encode.registry.url"), for later
	// diagnostics. Nil when the manifest has neither.
	CodecFields map[string]Pos
}

// Sink is a named sink reading from one transform output port.
type Sink struct {
	Component
	Name string
	// From is the output port the sink reads; DefaultPort ("main") when not set.
	From string
	// Batch is the sink's own batch policy, with the pipeline's values in the fields the manifest
	// does not set; nil when the sink has none.
	Batch *BatchPolicy
}

// DefaultPort is the port a sink reads when its manifest entry names none.
const DefaultPort = pipeline.DefaultPort

// Transform is one WASM transform stage: the runtime's configuration of it and where the manifest
// wrote it. Module is the wasm: path resolved relative to the manifest file's directory; Config is
// what the module's tf_init receives: the JSON text of the config: mapping, keys in written order,
// numbers as written, no HTML escaping, references resolved, "{}" when the manifest has none (see
// ConfigJSON for the conversions); Limits and OnReject have their defaults applied.
//
// An aggregate stage (aggregate:) takes Module, SHA256, Config and Limits from its aggregate:
// mapping, and the rest of that mapping goes to Aggregate, with the defaults of limits.state and
// limits.state_memory applied and Late set (pipeline.LateDeadLetter unless the manifest says
// otherwise).
type Transform struct {
	pipeline.Transform
	Pos Pos
	// WasmPos is the position of the wasm: key's value (under aggregate: in an aggregate stage),
	// for module diagnostics.
	WasmPos Pos
	// Fields holds the position of each key under the transform ("sha256", "config",
	// "config.max_price", "config.fields[0]", "limits.memory"), for later diagnostics. In an
	// aggregate stage the module's settings (wasm, sha256, config, limits) keep these names,
	// although the manifest writes them under aggregate:, and the stage's own keys are
	// "aggregate", "aggregate.time", "aggregate.window", "aggregate.window.session"...
	Fields map[string]Pos
}

// Limits bound a transform stage. Zero values mean the runtime's defaults.
type Limits = pipeline.Limits

// FailureLimit stops a pipeline when too many records go to the dead letters.
type FailureLimit = pipeline.FailureLimit

// BatchPolicy says how the engine groups records into batches.
type BatchPolicy = pipeline.BatchPolicy

// BufferPolicy bounds the records in flight between the source and the sinks.
type BufferPolicy = pipeline.BufferPolicy
