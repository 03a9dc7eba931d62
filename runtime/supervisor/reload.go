package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

// ErrReloading is returned by Replace and Remove for a pipeline that another Replace or Remove
// is still draining.
var ErrReloading = errors.New("a reload of the pipeline is under way")

// Replace gives the pipeline named cfg.Name a new configuration. It first checks and builds
// the new one (no I/O, as Add does): with a problem, the running pipeline is left as it was and
// the problems are returned. Otherwise it stops the current run gracefully (stop reading,
// deliver what is in flight, checkpoint: what a SIGTERM does, bounded by the drain timeout),
// then runs the new configuration from the same checkpoint (a checkpoint belongs to the
// pipeline's name). A paused pipeline stays paused; the replacement counts as a restart. The
// other pipelines are not touched. Replace returns once the new configuration is started (or,
// before Run, installed). It fails with ErrUnknownPipeline, ErrReloading, or ErrNotRunning
// after Run has returned. Safe for concurrent use on different pipelines.
func (s *Supervisor) Replace(ctx context.Context, cfg *pipeline.Pipeline) []Problem {
	t0 := time.Now()
	nm, problems := s.prepare(ctx, cfg)
	if len(problems) > 0 {
		return problems
	}
	built := time.Since(t0)
	old, l, err := s.beginStep(cfg.Name)
	if err != nil {
		_ = nm.cur.Discard(ctx)
		return []Problem{{Pipeline: cfg.Name, Kind: "pipeline", Err: err}}
	}
	t1 := time.Now()
	if l != nil {
		l.stop()
		<-l.done
	}
	drained := time.Since(t1)
	old.mu.Lock()
	ran, paused, restarts := old.phase != phaseIdle, old.paused, old.restarts
	old.mu.Unlock()
	if paused {
		nm.paused, nm.resumed = true, make(chan struct{})
	}
	nm.restarts = restarts
	if ran {
		nm.restarts++
	}

	s.mu.Lock()
	for i, m := range s.pipes {
		if m == old {
			s.pipes[i] = nm
		}
	}
	var discard []*managed
	launched := false
	if !ran {
		discard = append(discard, old) // built, never run: close what its build holds
	}
	switch {
	case s.runCtx != nil && s.runCtx.Err() == nil:
		s.launchLocked(nm)
		launched = true
	case s.runCtx != nil || s.over: // Run is ending: the new configuration will not run
		discard = append(discard, nm)
	} // else Run has not launched the pipelines yet: it will launch nm
	s.endStepLocked(cfg.Name)
	s.mu.Unlock()
	for _, m := range discard {
		_ = m.cur.Discard(ctx)
	}
	s.log.Info("pipeline replaced by its new configuration", "pipeline", cfg.Name, "started", launched,
		"building", built.Round(time.Millisecond), "draining", drained.Round(time.Millisecond))
	return nil
}

// Remove stops the named pipeline gracefully (stop reading, deliver what is in flight,
// checkpoint, bounded by the drain timeout) and forgets it: it leaves Status and Info, and its
// metric series are deleted. Its checkpoint stays in the store, so a pipeline of the same name
// added later goes on from it. The other pipelines are not touched. It fails with
// ErrUnknownPipeline or ErrReloading. Safe for concurrent use on different pipelines.
func (s *Supervisor) Remove(ctx context.Context, name string) error {
	m, l, err := s.beginStep(name)
	if err != nil {
		return err
	}
	if l != nil {
		l.stop()
		<-l.done
	}
	m.mu.Lock()
	ran := m.phase != phaseIdle
	m.mu.Unlock()
	s.mu.Lock()
	for i, x := range s.pipes {
		if x == m {
			s.pipes = append(s.pipes[:i:i], s.pipes[i+1:]...)
			break
		}
	}
	s.endStepLocked(name)
	s.mu.Unlock()
	if !ran {
		_ = m.cur.Discard(ctx)
	}
	s.forgetMetrics(name)
	s.log.Info("pipeline removed", "pipeline", name)
	return nil
}

// beginStep marks the named pipeline as being reloaded and returns it with its running loop,
// if any. Run does not return while a step is under way.
func (s *Supervisor) beginStep(name string) (*managed, *launch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findLocked(name)
	switch {
	case m == nil:
		return nil, nil, fmt.Errorf("pipeline %q: %w", name, ErrUnknownPipeline)
	case s.busy[name]:
		return nil, nil, fmt.Errorf("pipeline %q: %w", name, ErrReloading)
	case s.over:
		return nil, nil, fmt.Errorf("pipeline %q: %w", name, ErrNotRunning)
	}
	s.busy[name] = true
	s.pending++
	return m, s.runs[m], nil
}

// endStepLocked ends what beginStep began; s.mu is held.
func (s *Supervisor) endStepLocked(name string) {
	delete(s.busy, name)
	s.pending--
	s.notifyLocked()
}

// forgetMetrics deletes the metric series and rate samples of a removed pipeline, so that the
// metrics stop reporting it (a gauge such as sluice_pipeline_ready would stay at its last value).
func (s *Supervisor) forgetMetrics(name string) {
	l := prometheus.Labels{"pipeline": name}
	m := s.m
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.RecordsIn, m.RecordsOut, m.RecordsRejected, m.RecordsFailed, m.DeadLetters, m.BatchSeconds,
		m.InFlightRecords, m.InFlightBytes, m.CheckpointTime, m.OldestInFlight, m.BacklogRecords, m.BacklogBytes,
		m.PipelineReady, m.StagesBroken, m.Retries, m.PipelineUp,
		m.AggLate, m.AggWindowsClosed, m.AggSlots, m.AggStateBytes, m.AggSpilled, m.AggWatermark, m.EndToEnd} {
		v.DeletePartialMatch(l)
	}
	s.rates.mu.Lock()
	delete(s.rates.samples, name)
	s.rates.mu.Unlock()
}
