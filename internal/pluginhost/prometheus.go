package pluginhost

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PrometheusMetrics is a Metrics that feeds Prometheus collectors:
// sluice_plugin_restarts_total{plugin}, sluice_plugin_call_duration_seconds{plugin,method} and
// sluice_plugin_call_errors_total{plugin,method}. It is safe for concurrent use.
type PrometheusMetrics struct {
	restarts *prometheus.CounterVec
	calls    *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

// NewPrometheusMetrics builds the collectors and registers them on reg. Registering twice on the
// same registry fails; use one PrometheusMetrics per registry.
func NewPrometheusMetrics(reg prometheus.Registerer) (*PrometheusMetrics, error) {
	m := &PrometheusMetrics{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_plugin_restarts_total",
			Help: "Restarts of a plugin process after a crash or a missed deadline."}, []string{"plugin"}),
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_plugin_call_duration_seconds",
			Help:    "Duration of calls into plugin processes (read includes waiting for records).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"plugin", "method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_plugin_call_errors_total",
			Help: "Calls into plugin processes that failed at the transport (crash, deadline)."}, []string{"plugin", "method"}),
	}
	for _, c := range []prometheus.Collector{m.restarts, m.calls, m.errors} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("plugin metrics: already registered on this registry")
			}
			return nil, err
		}
	}
	return m, nil
}

// PluginRestarted implements Metrics.
func (m *PrometheusMetrics) PluginRestarted(plugin string) { m.restarts.WithLabelValues(plugin).Inc() }

// PluginCall implements Metrics.
func (m *PrometheusMetrics) PluginCall(plugin, method string, took time.Duration, err error) {
	m.calls.WithLabelValues(plugin, method).Observe(took.Seconds())
	if err != nil {
		m.errors.WithLabelValues(plugin, method).Inc()
	}
}
