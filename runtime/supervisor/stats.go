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
	counts := s.counts(pipes...)
	out := make([]Info, len(pipes))
	for i, m := range pipes {
		out[i] = s.info(m, counts[m.name])
	}
	return out
}

// PipelineInfo reports the named pipeline; it fails with ErrUnknownPipeline.
func (s *Supervisor) PipelineInfo(name string) (Info, error) {
	m, err := s.lookup(name)
	if err != nil {
		return Info{}, err
	}
	return s.info(m, s.counts(m)[m.name]), nil
}

func (s *Supervisor) info(m *managed, c Counts) Info {
	in, out := s.rates.rate(m.name)
	return Info{Status: m.status(), Counts: c, InPerSecond: in, OutPerSecond: out}
}

// counts reads the pipelines' counters from the metrics. Each metric vector is collected once
// for all of them: the vectors hold every pipeline's series, so reading them per pipeline would
// cost the square of the pipeline count (with 100 pipelines, most of an idle process's CPU).
func (s *Supervisor) counts(pipes ...*managed) map[string]Counts {
	type acc struct {
		Counts
		sinks  map[string]bool
		lag    float64
		hasLag bool
	}
	accs := make(map[string]*acc, len(pipes))
	for _, m := range pipes {
		a := &acc{sinks: make(map[string]bool, len(m.cfg.Sinks))}
		for _, sk := range m.cfg.Sinks {
			a.sinks[sk.Name] = true
		}
		accs[m.name] = a
	}
	add := func(c prometheus.Collector, f func(a *acc, component string, v float64)) {
		eachSeries(c, func(pipeline, component string, v float64) {
			if a := accs[pipeline]; a != nil {
				f(a, component, v)
			}
		})
	}
	add(s.m.RecordsIn, func(a *acc, comp string, v float64) {
		if comp == "source" {
			a.In += v
		}
	})
	add(s.m.RecordsOut, func(a *acc, comp string, v float64) {
		if a.sinks[comp] {
			a.Out += v
		}
	})
	add(s.m.DeadLetters, func(a *acc, _ string, v float64) { a.DeadLetters += v })
	add(s.m.RecordsRejected, func(a *acc, _ string, v float64) { a.Rejected += v })
	add(s.m.RecordsFailed, func(a *acc, _ string, v float64) { a.Failed += v })
	add(s.m.BacklogRecords, func(a *acc, _ string, v float64) { a.lag, a.hasLag = a.lag+v, true })
	out := make(map[string]Counts, len(accs))
	for name, a := range accs {
		c := a.Counts
		c.Errors = c.Rejected + c.Failed
		if a.hasLag {
			lag := a.lag
			c.Lag = &lag
		}
		out[name] = c
	}
	return out
}

// eachSeries calls f with the pipeline and component labels and the value of every counter or
// gauge series of a metric vector.
func eachSeries(c prometheus.Collector, f func(pipeline, component string, v float64)) {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var d dto.Metric
	for m := range ch {
		d.Reset()
		if m.Write(&d) != nil {
			continue
		}
		var pipeline, comp string
		for _, l := range d.GetLabel() {
			switch l.GetName() {
			case "pipeline":
				pipeline = l.GetValue()
			case "component":
				comp = l.GetValue()
			}
		}
		switch {
		case d.Counter != nil:
			f(pipeline, comp, d.Counter.GetValue())
		case d.Gauge != nil:
			f(pipeline, comp, d.Gauge.GetValue())
		}
	}
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
	counts := r.s.counts(pipes...)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range pipes {
		c := counts[m.name]
		list := append(r.samples[m.name], sample{at: now, in: c.In, out: c.Out})
		for len(list) > 1 && now.Sub(list[0].at) > rateWindow {
			list = list[1:]
		}
		r.samples[m.name] = list
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
