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
	// RecordsRejected counts records a transform rejected.
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
	// CheckpointAge is the time since the pipeline's last durable checkpoint.
	CheckpointAge *prometheus.GaugeVec
	// Retries counts sink write retries.
	Retries *prometheus.CounterVec
	// PipelineUp is 1 while a pipeline runs.
	PipelineUp *prometheus.GaugeVec
}

// New builds the collectors, with Go and process collectors beside them.
func New() *Metrics {
	pc := []string{"pipeline", "component"}
	m := &Metrics{
		Registry:        prometheus.NewRegistry(),
		RecordsIn:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_in_total", Help: "Records that entered a component."}, pc),
		RecordsOut:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_out_total", Help: "Records a component passed on or made durable."}, pc),
		RecordsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_rejected_total", Help: "Records a transform rejected."}, pc),
		RecordsFailed:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_failed_total", Help: "Records a sink could not write."}, pc),
		DeadLetters:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_dead_letters_total", Help: "Records made durable in the dead-letter sink."}, []string{"pipeline"}),
		BatchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_batch_duration_seconds", Help: "Time one batch spends in a component.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, pc),
		InFlightRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_inflight_records", Help: "Records between the source and the sinks."}, []string{"pipeline"}),
		InFlightBytes:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_inflight_bytes", Help: "Bytes of records between the source and the sinks."}, []string{"pipeline"}),
		CheckpointAge:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_checkpoint_age_seconds", Help: "Seconds since the pipeline's last durable checkpoint."}, []string{"pipeline"}),
		Retries:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_retries_total", Help: "Sink write retries."}, pc),
		PipelineUp:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_pipeline_up", Help: "1 while the pipeline runs."}, []string{"pipeline"}),
	}
	m.Registry.MustRegister(m.RecordsIn, m.RecordsOut, m.RecordsRejected, m.RecordsFailed, m.DeadLetters, m.BatchSeconds,
		m.InFlightRecords, m.InFlightBytes, m.CheckpointAge, m.Retries, m.PipelineUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
