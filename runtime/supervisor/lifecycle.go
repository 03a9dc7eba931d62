package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Defaults of RestartPolicy.
const (
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultResetAfter     = time.Minute
	DefaultStartAttempts  = 3
)

// RestartPolicy says how a pipeline that failed with a transient error is restarted. A
// permanent error (one matching connector.ErrPermanent, a configuration problem, a transform
// that cannot be built, the dead-letter limit) is never retried: the pipeline stays failed.
type RestartPolicy struct {
	// InitialBackoff is the wait before the first restart; it doubles with each failure in a row.
	// Default DefaultInitialBackoff.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait. Default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// ResetAfter: a run that moved data at least this long before it failed starts the backoff
	// again from InitialBackoff. Default DefaultResetAfter.
	ResetAfter time.Duration
	// StartAttempts is how many runs a pipeline gets while none of them has opened its
	// components (a sink that was never reachable is more often misconfigured than down); after
	// that it is failed. Once a run has opened them, the pipeline is restarted without limit.
	// 0 means DefaultStartAttempts; a negative value means no limit.
	StartAttempts int
}

func (r RestartPolicy) withDefaults() RestartPolicy {
	if r.InitialBackoff <= 0 {
		r.InitialBackoff = DefaultInitialBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	if r.MaxBackoff < r.InitialBackoff {
		r.MaxBackoff = r.InitialBackoff
	}
	if r.ResetAfter <= 0 {
		r.ResetAfter = DefaultResetAfter
	}
	if r.StartAttempts == 0 {
		r.StartAttempts = DefaultStartAttempts
	}
	return r
}

// backoff is the wait before the restart that follows failure number n (1-based) in a row.
func (r RestartPolicy) backoff(n int) time.Duration {
	d := r.InitialBackoff
	for i := 1; i < n && d < r.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.MaxBackoff)
}

// ErrUnknownPipeline is returned by the control methods for a name no added pipeline has.
var ErrUnknownPipeline = errors.New("no such pipeline")

// ErrNotRunning is returned by the control methods for a pipeline the supervisor is not running:
// Run was not called or has returned, or the pipeline has ended (Pause).
var ErrNotRunning = errors.New("pipeline is not running")

// Permanent reports whether err, a pipeline run's error, is one a restart does not cure.
func Permanent(err error) bool {
	var ce *connector.ConfigError
	var se stageError
	return errors.Is(err, connector.ErrPermanent) || errors.Is(err, engine.ErrNoDeadLetter) ||
		errors.Is(err, engine.ErrFailureLimit) || errors.Is(err, checkpoint.ErrCorrupt) ||
		errors.As(err, &ce) || errors.As(err, &se)
}

// stageError marks a transform stage that could not be built: the module or its limits are
// wrong, which a restart does not change.
type stageError struct{ error }

func (e stageError) Unwrap() error { return e.error }

type phase int

const (
	phaseIdle    phase = iota // added, not run yet
	phaseRunning              // a run is in progress; the engine pipeline reports its state
	phaseBackoff              // waiting to restart after a transient failure
	phaseEnded                // finished, stopped or failed; final holds the status
)

// managed is one pipeline under the supervisor: its configuration, its current run and what
// the restart policy and the control methods need.
type managed struct {
	s    *Supervisor
	name string
	cfg  *pipeline.Pipeline

	mu           sync.Mutex
	cur          *engine.Pipeline
	phase        phase
	final        pipeline.Status
	err          error // the pipeline's final error, once ended
	paused       bool
	gated        bool          // the reader waits in gate: nothing more is read until Resume
	resumed      chan struct{} // closed by Resume; a new one per Pause
	started      bool          // a run opened the components
	runningSince time.Time     // when the current run started to move data
	attempts     int           // failures in a row
	restarts     int           // runs after the first
	backoff      time.Duration // the current wait, in phaseBackoff
	retryAt      time.Time
	lastErr      string
	stopRun      context.CancelFunc // stops the current run gracefully
	wake         chan struct{}      // cuts the current wait short
	restartReq   bool
	lease        leaseState   // spec.lease: standing by and the lease held (lease.go)
	replays      []*replayJob // dead-letter replays to run before the next run (replay.go)
}

// gate is the engine's BeforeRead hook: it blocks while the pipeline is paused.
func (m *managed) gate(ctx context.Context) error {
	for {
		m.mu.Lock()
		if !m.paused {
			m.mu.Unlock()
			return nil
		}
		ch := m.resumed
		m.gated = true
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		m.mu.Lock()
		m.gated = false
		m.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// onRunning is the engine's OnRunning hook.
func (m *managed) onRunning() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.started = true
	m.runningSince = time.Now()
}

// loop runs the pipeline, restarting it as the policy says, until it finishes, ctx is done or
// it fails for good. It returns the pipeline's final error.
func (m *managed) loop(ctx context.Context) error {
	pol := m.s.policy
	log := m.s.log.With("pipeline", m.name)
	for {
		m.runReplays(ctx)
		m.mu.Lock()
		p := m.cur
		fresh := m.phase != phaseIdle
		m.mu.Unlock()
		if fresh { // an engine pipeline runs once: build a new one from the same configuration
			np, err := m.s.build(m)
			if err != nil {
				return m.end(pipeline.Status{State: pipeline.StateFailed, Reason: err.Error()}, err, log, false)
			}
			p = np
		}
		runCtx, stopRun := context.WithCancel(ctx)
		m.mu.Lock()
		if fresh {
			m.cur = p
			m.restarts++
		}
		m.phase, m.stopRun, m.runningSince = phaseRunning, stopRun, time.Time{}
		if m.restartReq { // a restart (or a replay) requested between two runs: this run stops at once
			stopRun()
		}
		m.mu.Unlock()

		lost, err := m.runLeased(runCtx, p, log) // p.Run, holding the lease when there is one
		stopRun()

		m.mu.Lock()
		restart := m.restartReq
		m.restartReq = false
		healthy := !m.runningSince.IsZero() && time.Since(m.runningSince) >= pol.ResetAfter
		m.mu.Unlock()
		switch {
		case ctx.Err() != nil:
			return m.end(m.stoppedStatus(p), err, log, true)
		case restart:
			log.Info("restarting on request")
			m.mu.Lock()
			m.attempts = 0
			m.mu.Unlock()
			continue
		case lost: // another replica runs it now; stand by again
			continue
		case err == nil:
			return m.end(p.Status(), nil, log, false)
		case Permanent(err):
			return m.end(p.Status(), err, log, false)
		}

		m.mu.Lock()
		if healthy {
			m.attempts = 0
		}
		m.attempts++
		if !m.started && pol.StartAttempts > 0 && m.attempts >= pol.StartAttempts {
			n := m.attempts
			m.mu.Unlock()
			err = fmt.Errorf("%w (gave up after %d attempts: the pipeline never opened its components)", err, n)
			return m.end(pipeline.Status{State: pipeline.StateFailed, Reason: err.Error()}, err, log, false)
		}
		d := pol.backoff(m.attempts)
		wake := make(chan struct{})
		m.phase, m.backoff, m.retryAt, m.lastErr, m.wake = phaseBackoff, d, time.Now().Add(d), err.Error(), wake
		attempt := m.attempts
		m.mu.Unlock()
		log.Warn("pipeline failed; restarting", "err", err, "in", d, "failures_in_a_row", attempt)

		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-wake:
		case <-ctx.Done():
			t.Stop()
			return m.end(pipeline.Status{State: pipeline.StateStopped, Reason: "stopped while waiting to restart after: " + err.Error()}, nil, log, true)
		}
		t.Stop()
	}
}

// end records how the pipeline ended and returns err.
func (m *managed) end(st pipeline.Status, err error, log *slog.Logger, stopping bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		st.State, st.Ready = pipeline.StateFailed, false
		if st.Reason == "" {
			st.Reason = err.Error()
		}
		m.lastErr = st.Reason
		if !stopping { // say it now: the process may go on running the other pipelines for long
			log.Error("pipeline failed; it will not be restarted", "err", err)
		}
	}
	m.phase, m.final, m.err, m.stopRun = phaseEnded, st, err, nil
	return err
}

// status reports the pipeline as the supervisor sees it.
func (m *managed) status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Name: m.name, Restarts: m.restarts, LastError: m.lastErr, Paused: m.paused}
	switch m.phase {
	case phaseEnded:
		st.Status = m.final
		if st.State == pipeline.StateFinished {
			st.Ready, st.Reason = true, "" // nothing left to connect: it does not hold the process back
		}
	case phaseBackoff:
		st.Status = pipeline.Status{State: pipeline.StateDegraded,
			Reason: fmt.Sprintf("restarting in %s (failure %d in a row): %s", time.Until(m.retryAt).Round(100*time.Millisecond), m.attempts, m.lastErr)}
		st.BackoffSeconds = m.backoff.Seconds()
	default:
		if sb, ok := m.standbyStatus(); ok {
			st.Status = sb
			break
		}
		st.Status = m.cur.Status()
		if st.State == pipeline.StateRunning {
			switch {
			case !st.Ready:
				st.State = pipeline.StateDegraded
			case m.paused && m.gated:
				st.State, st.Reason = pipeline.StatePaused, "paused: the source is not read"
			case m.paused: // a read that began before Pause has yet to return
				st.Reason = "pausing: waiting for the read in progress"
			}
		}
	}
	return st
}

// pause stops reading the source: what is in flight is delivered.
func (m *managed) pause() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase == phaseEnded || m.phase == phaseIdle {
		return fmt.Errorf("pipeline %q: %w", m.name, ErrNotRunning)
	}
	if !m.paused {
		m.paused, m.resumed = true, make(chan struct{})
	}
	return nil
}

func (m *managed) resume() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paused {
		m.paused = false
		close(m.resumed)
	}
	if m.phase == phaseEnded || m.phase == phaseIdle {
		return fmt.Errorf("pipeline %q: %w", m.name, ErrNotRunning)
	}
	return nil
}

// restart drains the current run and starts a fresh one; it cuts a restart wait short. It
// reports whether the pipeline had ended (the caller starts its loop again).
func (m *managed) restart() (ended bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.phase {
	case phaseIdle:
		return false, fmt.Errorf("pipeline %q: %w", m.name, ErrNotRunning)
	case phaseRunning:
		m.restartReq = true
		m.stopRun()
	case phaseBackoff:
		m.attempts = 0
		if m.wake != nil {
			close(m.wake)
			m.wake = nil
		}
	case phaseEnded:
		m.attempts, m.err = 0, nil
		return true, nil
	}
	return false, nil
}
