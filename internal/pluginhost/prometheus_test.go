package pluginhost

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestPrometheusMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewPrometheusMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPrometheusMetrics(reg); err == nil {
		t.Fatal("second registration on one registry succeeded")
	}
	h := newHost(t, Options{Metrics: m})
	p := discoverOne(t, h, pluginDir(t, "seq"))
	src, err := h.NewSource(p, "seq", connector.Config{"count": int64(10)}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, src, nil, nil)
	m.PluginRestarted("seq")
	m.PluginCall("seq", "write", 0, errors.New("boom"))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case mt.Counter != nil:
				got[key] = mt.Counter.GetValue()
			case mt.Histogram != nil:
				got[key] = float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"sluice_plugin_restarts_total,plugin=seq":                     1,
		"sluice_plugin_call_errors_total,method=write,plugin=seq":     1,
		"sluice_plugin_call_duration_seconds,method=open,plugin=seq":  1,
		"sluice_plugin_call_duration_seconds,method=close,plugin=seq": 1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], want, got)
		}
	}
	if got["sluice_plugin_call_duration_seconds,method=read,plugin=seq"] < 1 {
		t.Errorf("no read calls observed: %v", got)
	}
}
