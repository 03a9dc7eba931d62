package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

// health tracks a pipeline's state and its busy components (transforms in a Process call, sinks
// in a write with its retries), so that readiness can tell a stuck pipeline from a busy one.
type health struct {
	now        func() time.Time
	stuckAfter time.Duration

	mu    sync.Mutex
	state pipeline.State
	err   string
	busy  map[string]*activity
}

type activity struct {
	starts    []time.Time // starts of the calls or writes in progress (a transform takes several batches at once)
	failSince time.Time   // first failure of the current write; zero while it has not failed
	lastErr   string
}

func newHealth(now func() time.Time, stuckAfter time.Duration) *health {
	return &health{now: now, stuckAfter: stuckAfter, state: pipeline.StateStarting, busy: map[string]*activity{}}
}

func (h *health) setState(s pipeline.State) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state = s
}

func (h *health) running()  { h.setState(pipeline.StateRunning) }
func (h *health) draining() { h.setState(pipeline.StateDraining) }

// finish records how Run ended.
func (h *health) finish(err error, stopped bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil:
		h.state, h.err = pipeline.StateFailed, err.Error()
	case stopped:
		h.state = pipeline.StateStopped
	default:
		h.state = pipeline.StateFinished
	}
	clear(h.busy)
}

// begin marks a component busy with one more batch; end, given what begin returned, marks that
// batch done.
func (h *health) begin(component string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	a := h.busy[component]
	if a == nil {
		a = &activity{}
		h.busy[component] = a
	}
	a.starts = append(a.starts, now)
	return now
}

// failing records that the component's current batch failed and is being retried.
func (h *health) failing(component string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.busy[component]
	if a == nil {
		return
	}
	if a.failSince.IsZero() {
		a.failSince = h.now()
	}
	a.lastErr = err.Error()
}

func (h *health) end(component string, start time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.busy[component]
	if a == nil {
		return
	}
	if i := slices.Index(a.starts, start); i >= 0 {
		a.starts = slices.Delete(a.starts, i, i+1)
	}
	if len(a.starts) == 0 {
		delete(h.busy, component)
	}
}

func (h *health) status() pipeline.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.state {
	case pipeline.StateFailed:
		return pipeline.Status{State: h.state, Reason: h.err}
	case pipeline.StateRunning:
	default:
		return pipeline.Status{State: h.state, Reason: "pipeline is " + string(h.state)}
	}
	if reason := h.stuckLocked(); reason != "" {
		return pipeline.Status{State: h.state, Reason: reason}
	}
	return pipeline.Status{State: h.state, Ready: true}
}

// stuckLocked describes the components stuck for longer than stuckAfter, failing ones first.
func (h *health) stuckLocked() string {
	now := h.now()
	names := make([]string, 0, len(h.busy))
	for n := range h.busy {
		names = append(names, n)
	}
	sort.Strings(names)
	var failing, slow []string
	for _, n := range names {
		a := h.busy[n]
		held := now.Sub(slices.MinFunc(a.starts, time.Time.Compare)) // the oldest call in progress
		switch {
		case !a.failSince.IsZero() && now.Sub(a.failSince) > h.stuckAfter:
			failing = append(failing, fmt.Sprintf("%q has been failing for %s (last error: %s)", n, now.Sub(a.failSince).Round(time.Second), a.lastErr))
		case held > h.stuckAfter:
			slow = append(slow, fmt.Sprintf("%q has held one batch for %s", n, held.Round(time.Second)))
		}
	}
	all := append(failing, slow...)
	if len(all) == 0 {
		return ""
	}
	return fmt.Sprintf("stuck longer than %s: %s", h.stuckAfter, strings.Join(all, "; "))
}
