// Package metrics holds the Prometheus metrics of the runtime. One Metrics value serves every
// pipeline of a process; label values name the pipeline and the component.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the runtime's collectors, registered on their own registry. Safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	// RecordsIn counts records entering a component (the source: records read).
	RecordsIn *prometheus.CounterVec
	// RecordsOut counts records a component passed on or made durable.
	RecordsOut *prometheus.CounterVec
	// RecordsRejected counts records a transform rejected, and (component "source") records the
	// source marked malformed.
	RecordsRejected *prometheus.CounterVec
	// RecordsFailed counts records a sink could not write (sent to the dead letters).
	RecordsFailed *prometheus.CounterVec
	// DeadLetters counts records made durable in the dead-letter sink.
	DeadLetters *prometheus.CounterVec
	// BatchSeconds is the time one batch spends in a component.
	BatchSeconds *prometheus.HistogramVec
	// InFlightRecords and InFlightBytes are the records between source and sinks (queue depth).
	InFlightRecords *prometheus.GaugeVec
	InFlightBytes   *prometheus.GaugeVec
	// CheckpointTime is the Unix time of the pipeline's last durable checkpoint. The time since
	// it grows while the pipeline is idle, so it is not lag: OldestInFlight and the backlog are.
	CheckpointTime *prometheus.GaugeVec
	// OldestInFlight is the age of the oldest record read and not yet delivered; 0 when none is.
	OldestInFlight *prometheus.GaugeVec
	// EndToEnd is, per sink (labels pipeline, sink), the time from each record's source time
	// (connector.Record.Time: a Kafka record's timestamp, a generated record's creation) to the
	// moment the sink's write holding it returned durable. Records without a time are not
	// observed; dead-letter writes neither.
	EndToEnd *LatencyVec
	// BacklogRecords and BacklogBytes are, per source partition, what lies between the last
	// checkpointed position and the source's end, for sources that report it
	// (connector.BacklogSource).
	BacklogRecords *prometheus.GaugeVec
	BacklogBytes   *prometheus.GaugeVec
	// PipelineReady is 1 while the pipeline runs and nothing is stuck (as /readyz says).
	PipelineReady *prometheus.GaugeVec
	// StagesBroken counts pipelines stopped because a transform reported itself broken.
	StagesBroken *prometheus.CounterVec
	// Retries counts sink write retries.
	Retries *prometheus.CounterVec
	// PipelineUp is 1 while a pipeline runs.
	PipelineUp *prometheus.GaugeVec

	// Aggregate stages (labels pipeline, component: the stage).
	AggLate          *prometheus.CounterVec
	AggWindowsClosed *prometheus.CounterVec
	AggSlots         *prometheus.GaugeVec
	AggStateBytes    *prometheus.GaugeVec
	AggSpilled       *prometheus.GaugeVec
	AggWatermark     *prometheus.GaugeVec
}

// EndToEndBuckets are the upper bounds of sluice_end_to_end_latency_seconds: steps of about a
// third from 1 ms to 2 minutes, so that a percentile read from the buckets is within a few
// milliseconds below 20 ms and within about 15% above.
var EndToEndBuckets = []float64{
	0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.075,
	0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30, 60, 120,
}

// New builds the collectors, with Go and process collectors beside them.
func New() *Metrics {
	pc := []string{"pipeline", "component"}
	m := &Metrics{
		Registry:        prometheus.NewRegistry(),
		RecordsIn:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_in_total", Help: "Records that entered a component."}, pc),
		RecordsOut:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_out_total", Help: "Records a component passed on or made durable."}, pc),
		RecordsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_rejected_total", Help: "Records a transform rejected, or the source marked malformed (component \"source\")."}, pc),
		RecordsFailed:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_failed_total", Help: "Records a sink could not write."}, pc),
		DeadLetters:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_dead_letters_total", Help: "Records made durable in the dead-letter sink."}, []string{"pipeline"}),
		BatchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_batch_duration_seconds", Help: "Time one batch spends in a component.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, pc),
		InFlightRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_inflight_records", Help: "Records between the source and the sinks."}, []string{"pipeline"}),
		InFlightBytes:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_inflight_bytes", Help: "Bytes of records between the source and the sinks."}, []string{"pipeline"}),
		CheckpointTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_checkpoint_timestamp_seconds",
			Help: "Unix time of the pipeline's last durable checkpoint. The time since it grows while the pipeline is idle: it is not lag (see sluice_oldest_inflight_seconds and sluice_source_backlog_records)."}, []string{"pipeline"}),
		OldestInFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_oldest_inflight_seconds",
			Help: "Age of the oldest record read from the source and not yet delivered to every sink; 0 when nothing is in flight."}, []string{"pipeline"}),
		EndToEnd: NewLatencyVec("sluice_end_to_end_latency_seconds",
			"Time from a record's source time (a Kafka record's timestamp) to its sink's durable write, per sink.", EndToEndBuckets),
		BacklogRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_source_backlog_records",
			Help: "Records between the last checkpointed position and the source's end, per partition (sources that can tell)."}, []string{"pipeline", "partition"}),
		BacklogBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_source_backlog_bytes",
			Help: "Bytes between the last checkpointed position and the source's end, per partition (sources that can tell)."}, []string{"pipeline", "partition"}),
		PipelineReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_pipeline_ready",
			Help: "1 while the pipeline runs and no sink has kept failing nor any stage held a batch longer than its stuck_after."}, []string{"pipeline"}),
		StagesBroken: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_transform_broken_total",
			Help: "Times a pipeline was stopped because a transform reported itself broken (it fails whatever records it is given)."}, pc),
		Retries:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_retries_total", Help: "Sink write retries."}, pc),
		PipelineUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_pipeline_up", Help: "1 while the pipeline runs."}, []string{"pipeline"}),
		AggLate: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_aggregate_late_records_total",
			Help: "Records an aggregate stage received after every window they belong to had closed (sent where the stage's late: says)."}, pc),
		AggWindowsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_aggregate_windows_closed_total", Help: "Windows an aggregate stage closed and emitted."}, pc),
		AggSlots:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_aggregate_slots", Help: "(key, window) slots an aggregate stage holds."}, pc),
		AggStateBytes:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_aggregate_state_memory_bytes", Help: "Bytes of state an aggregate stage holds in memory."}, pc),
		AggSpilled:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_aggregate_spilled_slots", Help: "Slots whose state an aggregate stage keeps only on disk."}, pc),
		AggWatermark:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_aggregate_watermark_seconds", Help: "An event-time aggregate stage's watermark, Unix seconds."}, pc),
	}
	m.Registry.MustRegister(m.RecordsIn, m.RecordsOut, m.RecordsRejected, m.RecordsFailed, m.DeadLetters, m.BatchSeconds,
		m.InFlightRecords, m.InFlightBytes, m.CheckpointTime, m.OldestInFlight, m.EndToEnd, m.BacklogRecords, m.BacklogBytes,
		m.PipelineReady, m.StagesBroken, m.Retries, m.PipelineUp,
		m.AggLate, m.AggWindowsClosed, m.AggSlots, m.AggStateBytes, m.AggSpilled, m.AggWatermark,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
