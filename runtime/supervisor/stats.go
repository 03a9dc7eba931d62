package supervisor

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// rateWindow is how far back the record rates of Info look; rateEvery is how often the counters
// are sampled for them.
const (
	rateWindow = 5 * time.Second
	rateEvery  = time.Second
)

// Counts are a pipeline's counters since the process started, read from its metrics (they add
// up over restarts).
type Counts struct {
	// In is the records its source produced (sluice_records_in_total, component source).
	In float64 `json:"records_in"`
	// Out is the records its sinks made durable, summed over the sinks (not the dead-letter
	// sink): a record routed to two sinks counts twice.
	Out float64 `json:"records_out"`
	// DeadLetters is the records made durable in the dead-letter sink.
	DeadLetters float64 `json:"dead_letters"`
	// Rejected is the records transforms rejected or the source marked malformed.
	Rejected float64 `json:"rejected"`
	// Failed is the records a sink could not write.
	Failed float64 `json:"failed"`
	// Errors is Rejected plus Failed.
	Errors float64 `json:"errors"`
	// Lag is the source's backlog in records summed over its partitions
	// (sluice_source_backlog_records); nil when the source does not report one.
	Lag *float64 `json:"lag"`
}

// Info is a pipeline's status with its counters and rates.
type Info struct {
	Status
	Counts
	// InPerSecond and OutPerSecond are the rates of In and Out over the last few seconds.
	InPerSecond  float64 `json:"records_in_per_second"`
	OutPerSecond float64 `json:"records_out_per_second"`
}

// Info reports every added pipeline with its counters and rates, in the order they were added.
func (s *Supervisor) Info() []Info {
	s.mu.Lock()
	pipes := append([]*managed(nil), s.pipes...)
	s.mu.Unlock()
	out := make([]Info, len(pipes))
	for i, m := range pipes {
		out[i] = s.info(m)
	}
	return out
}

// PipelineInfo reports the named pipeline; it fails with ErrUnknownPipeline.
func (s *Supervisor) PipelineInfo(name string) (Info, error) {
	m, err := s.lookup(name)
	if err != nil {
		return Info{}, err
	}
	return s.info(m), nil
}

func (s *Supervisor) info(m *managed) Info {
	c := s.counts(m)
	in, out := s.rates.rate(m.name)
	return Info{Status: m.status(), Counts: c, InPerSecond: in, OutPerSecond: out}
}

// counts reads m's counters from the metrics.
func (s *Supervisor) counts(m *managed) Counts {
	sinks := map[string]bool{}
	for _, sk := range m.cfg.Sinks {
		sinks[sk.Name] = true
	}
	var c Counts
	c.In, _ = sumSeries(s.m.RecordsIn, m.name, func(comp string) bool { return comp == "source" })
	c.Out, _ = sumSeries(s.m.RecordsOut, m.name, func(comp string) bool { return sinks[comp] })
	c.DeadLetters, _ = sumSeries(s.m.DeadLetters, m.name, nil)
	c.Rejected, _ = sumSeries(s.m.RecordsRejected, m.name, nil)
	c.Failed, _ = sumSeries(s.m.RecordsFailed, m.name, nil)
	c.Errors = c.Rejected + c.Failed
	if lag, ok := sumSeries(s.m.BacklogRecords, m.name, nil); ok {
		c.Lag = &lag
	}
	return c
}

// sumSeries sums the series of a metric vector whose pipeline label is pipeline and, when keep
// is set, whose component label it keeps. It reports whether any series matched.
func sumSeries(c prometheus.Collector, pipeline string, keep func(component string) bool) (float64, bool) {
	ch := make(chan prometheus.Metric, 32)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	found := false
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		match, comp := false, ""
		for _, l := range d.GetLabel() {
			switch l.GetName() {
			case "pipeline":
				match = l.GetValue() == pipeline
			case "component":
				comp = l.GetValue()
			}
		}
		if !match || (keep != nil && !keep(comp)) {
			continue
		}
		found = true
		switch {
		case d.Counter != nil:
			sum += d.Counter.GetValue()
		case d.Gauge != nil:
			sum += d.Gauge.GetValue()
		}
	}
	return sum, found
}

// rates samples every pipeline's In and Out counters while Run runs, for the rates of Info.
type rates struct {
	s       *Supervisor
	mu      sync.Mutex
	samples map[string][]sample
}

type sample struct {
	at      time.Time
	in, out float64
}

func newRates(s *Supervisor) *rates { return &rates{s: s, samples: map[string][]sample{}} }

// start samples every rateEvery until the returned function is called.
func (r *rates) start() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(rateEvery)
		defer t.Stop()
		for {
			r.sample()
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (r *rates) sample() {
	r.s.mu.Lock()
	pipes := append([]*managed(nil), r.s.pipes...)
	r.s.mu.Unlock()
	now := time.Now()
	for _, m := range pipes {
		c := r.s.counts(m)
		r.mu.Lock()
		list := append(r.samples[m.name], sample{at: now, in: c.In, out: c.Out})
		for len(list) > 1 && now.Sub(list[0].at) > rateWindow {
			list = list[1:]
		}
		r.samples[m.name] = list
		r.mu.Unlock()
	}
}

// rate returns the records per second in and out over the samples kept for the pipeline.
func (r *rates) rate(name string) (in, out float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.samples[name]
	if len(list) < 2 {
		return 0, 0
	}
	first, last := list[0], list[len(list)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	return (last.in - first.in) / dt, (last.out - first.out) / dt
}
