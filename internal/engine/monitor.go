package engine

import (
	"context"
	"sync"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// inflight remembers when each batch in flight was read, to report the age of the oldest.
type inflight struct {
	mu   sync.Mutex
	read map[uint64]time.Time
}

func newInflight() *inflight { return &inflight{read: map[uint64]time.Time{}} }

func (f *inflight) add(id uint64, read time.Time) {
	f.mu.Lock()
	f.read[id] = read
	f.mu.Unlock()
}

func (f *inflight) done(id uint64) {
	f.mu.Lock()
	delete(f.read, id)
	f.mu.Unlock()
}

// oldest returns when the oldest batch in flight was read, and false when none is.
func (f *inflight) oldest() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var min time.Time
	for _, t := range f.read {
		if min.IsZero() || t.Before(min) {
			min = t
		}
	}
	return min, !min.IsZero()
}

// monitor refreshes the lag and readiness gauges every MonitorInterval until stop is closed.
//
// It wakes at multiples of the interval on the clock, so that the monitors of many pipelines in
// one process wake together rather than each at its own phase.
func (r *run) monitor(stop <-chan struct{}) {
	every := r.p.opts.MonitorInterval
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		r.observe()
		t.Reset(every - time.Duration(time.Now().UnixNano()%int64(every)))
		select {
		case <-t.C:
		case <-stop:
			r.observe()
			return
		}
	}
}

// observe sets the lag gauges: the age of the oldest record in flight, the source's backlog per
// partition (when the source reports it) and readiness.
func (r *run) observe() {
	p := r.p
	pl := p.spec.Name
	age := 0.0
	if t, ok := r.inflight.oldest(); ok {
		age = max(0, p.opts.Clock().Sub(t).Seconds())
	}
	p.m.OldestInFlight.WithLabelValues(pl).Set(age)
	ready := 0.0
	if p.Ready() {
		ready = 1
	}
	p.m.PipelineReady.WithLabelValues(pl).Set(ready)

	bs, ok := p.source.(connector.BacklogSource)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.workCtx, 5*time.Second)
	defer cancel()
	backlog, err := bs.Backlog(ctx, r.committed.list())
	if err != nil {
		p.log.Debug("source backlog unknown", "err", err)
		return
	}
	for _, b := range backlog {
		if b.Records >= 0 {
			p.m.BacklogRecords.WithLabelValues(pl, b.Partition).Set(float64(b.Records))
		}
		if b.Bytes >= 0 {
			p.m.BacklogBytes.WithLabelValues(pl, b.Partition).Set(float64(b.Bytes))
		}
	}
}
