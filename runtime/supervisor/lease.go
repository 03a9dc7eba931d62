package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/lease"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// leaseState is a pipeline's lease (spec.lease): how to take it, the lease held during a run,
// and, while the pipeline stands by, why. The fields but held are guarded by managed.mu.
type leaseState struct {
	pg       *lease.Postgres
	held     atomic.Pointer[lease.Held] // the lease the current run holds; nil between runs
	standby  bool                       // waiting for the lease
	waitErr  string                     // why the last try failed, when the database did not answer
	neverRan bool                       // the last run was stopped while standing by
}

// checkpoints returns the position store a run of m uses: the process's checkpoint store, and
// with a lease the positions kept under the lease in Postgres as well (leasedStore).
func (m *managed) checkpoints() engine.Checkpoints {
	if m.cfg.Lease == nil {
		return m.s.store
	}
	return &leasedStore{local: m.s.store, m: m}
}

// leaseName is the name of m's lease: the manifest's, or the pipeline's.
func (m *managed) leaseName() string {
	if n := m.cfg.Lease.Name; n != "" {
		return n
	}
	return m.name
}

// runLeased runs p with ctx, first waiting for the pipeline's lease when it has one. The run
// stops (a graceful stop: no further read) as soon as the lease is lost; lost then reports it,
// and the caller stands by again. Stopped while standing by, it discards p without running it.
func (m *managed) runLeased(ctx context.Context, p *engine.Pipeline, log *slog.Logger) (lost bool, err error) {
	if m.cfg.Lease == nil {
		return false, p.Run(ctx)
	}
	l := &m.lease
	m.mu.Lock()
	l.neverRan = false
	pg := l.pg
	m.mu.Unlock()
	if pg == nil {
		lc := m.cfg.Lease
		pg, err = lease.NewPostgres(lc.Postgres, m.leaseName(), lc.Retry)
		if err != nil {
			_ = p.Discard(context.Background())
			return false, &connector.ConfigError{Field: "lease.postgres.dsn", Msg: err.Error()}
		}
		m.mu.Lock()
		l.pg = pg
		m.mu.Unlock()
	}
	m.mu.Lock()
	l.standby, l.waitErr = true, ""
	m.mu.Unlock()
	log.Info("standing by for the lease", "lease", pg.Name())
	held, err := pg.Acquire(ctx, func(w lease.Wait) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if w.Err != nil {
			l.waitErr = redact(w.Err.Error(), m.cfg.Lease.Secrets)
		} else {
			l.waitErr = ""
		}
	})
	m.mu.Lock()
	l.standby = false
	m.mu.Unlock()
	if err != nil { // ctx is done: stopped or restarted while standing by
		m.mu.Lock()
		l.neverRan = true
		m.mu.Unlock()
		return false, p.Discard(context.Background())
	}
	log.Info("took the lease; running", "lease", pg.Name())
	l.held.Store(held)
	defer func() {
		l.held.Store(nil)
		held.Release()
	}()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-held.Lost():
			stop()
		case <-ran:
		}
	}()
	err = p.Run(runCtx)
	close(ran)
	<-watched
	if lerr := held.Err(); lerr != nil {
		log.Warn("lost the lease; the run stopped, standing by", "lease", pg.Name(), "err", redact(lerr.Error(), m.cfg.Lease.Secrets), "run_err", err)
		// Give the other replicas a moment before trying again.
		t := time.NewTimer(max(m.cfg.Lease.Retry, pipeline.DefaultLeaseRetry))
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		return true, nil
	}
	return false, err
}

// standbyStatus is m's status while it stands by for its lease; ok is false when it does not.
// m.mu is held.
func (m *managed) standbyStatus() (st pipeline.Status, ok bool) {
	if !m.lease.standby {
		return st, false
	}
	if m.lease.waitErr != "" {
		return pipeline.Status{State: pipeline.StateDegraded, Reason: fmt.Sprintf("standby: cannot take the lease %q: %s", m.leaseName(), m.lease.waitErr)}, true
	}
	// A standby is ready: it is what a replica that does not hold the lease should be doing.
	return pipeline.Status{State: pipeline.StateStarting, Ready: true, Reason: fmt.Sprintf("standby: another replica holds the lease %q", m.leaseName())}, true
}

// stoppedStatus is the final status of a run stopped by ctx: p's, or stopped when the run was
// stopped while standing by.
func (m *managed) stoppedStatus(p *engine.Pipeline) pipeline.Status {
	m.mu.Lock()
	never := m.lease.neverRan
	m.mu.Unlock()
	if never {
		return pipeline.Status{State: pipeline.StateStopped, Reason: "stopped while standing by for the lease"}
	}
	return p.Status()
}

// leasedStore keeps a leased pipeline's positions in the process's checkpoint store and under
// the lease in Postgres. Postgres is the truth: Load reads it (the local store only when the
// lease has no positions yet, to carry over a pipeline that ran without a lease), and Save
// writes it first, fenced by the lock, so a run that lost the lease fails its next commit
// instead of moving the positions.
type leasedStore struct {
	local *lazyStore
	m     *managed
}

func (l *leasedStore) held() (*lease.Held, error) {
	h := l.m.lease.held.Load()
	if h == nil {
		return nil, fmt.Errorf("pipeline %q: %w: not held", l.m.name, lease.ErrLost)
	}
	return h, nil
}

func (l *leasedStore) Load(pipeline string) ([]connector.Position, error) {
	h, err := l.held()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps, found, err := h.Load(ctx)
	if err != nil {
		return nil, err
	}
	if !found {
		return l.local.Load(pipeline)
	}
	return ps, nil
}

func (l *leasedStore) Save(pipeline string, ps []connector.Position) error {
	h, err := l.held()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Save(ctx, ps); err != nil {
		return err
	}
	return l.local.Save(pipeline, ps)
}

var _ engine.Checkpoints = (*leasedStore)(nil)

// redact replaces the secret values in s.
func redact(s string, secrets []string) string {
	for _, x := range secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, "[redacted]")
		}
	}
	return s
}
