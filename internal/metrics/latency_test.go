package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLatencyVecDeletePartialMatch checks that a removed pipeline's series stop being collected
// and the other pipelines' stay, as forgetting a pipeline's metrics on reload needs.
func TestLatencyVecDeletePartialMatch(t *testing.T) {
	v := NewLatencyVec("t_latency_seconds", "test", []float64{0.01, 0.1, 1})
	for _, k := range [][2]string{{"a", "x"}, {"a", "y"}, {"b", "x"}} {
		s := v.With(k[0], k[1])
		c := s.Counts()
		c.Observe(0.05)
		s.Merge(c)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(v)
	if got := series(t, reg); strings.Join(got, ";") != "pipeline=a,sink=x;pipeline=a,sink=y;pipeline=b,sink=x" {
		t.Fatalf("series = %q, want three", got)
	}
	if n := v.DeletePartialMatch(prometheus.Labels{"pipeline": "a"}); n != 2 {
		t.Fatalf("deleted %d series, want 2", n)
	}
	if n := v.DeletePartialMatch(prometheus.Labels{"pipeline": "b", "sink": "y"}); n != 0 {
		t.Fatalf("deleted %d series of pipeline b sink y, want 0", n)
	}
	if got := series(t, reg); strings.Join(got, ";") != "pipeline=b,sink=x" {
		t.Errorf("series left = %q, want only pipeline=b,sink=x", got)
	}
}

// series gathers reg and returns the label pairs of every series, sorted as Gather sorts them.
func series(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			got = append(got, strings.Join(ls, ","))
		}
	}
	return got
}
