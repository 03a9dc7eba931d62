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

// heldLease is a lease this process holds: *lease.Held (Postgres) or *lease.KubernetesHeld.
type heldLease interface {
	Lost() <-chan struct{}
	Err() error
	Load(ctx context.Context) ([]connector.Position, bool, error)
	Save(ctx context.Context, ps []connector.Position) error
	Release()
}

// leaseTaker takes a pipeline's lease.
type leaseTaker struct {
	name    string
	acquire func(ctx context.Context, waiting func(lease.Wait)) (heldLease, error)
}

// heldRef boxes a heldLease for an atomic pointer.
type heldRef struct{ heldLease }

// leaseState is a pipeline's lease (spec.lease): how to take it, the lease held during a run,
// and, while the pipeline stands by, why. The fields but held are guarded by managed.mu.
type leaseState struct {
	taker    *leaseTaker
	held     atomic.Pointer[heldRef] // the lease the current run holds; nil between runs
	standby  bool                    // waiting for the lease
	waitErr  string                  // why the last try failed, when the lease's store did not answer
	neverRan bool                    // the last run was stopped while standing by
}

// newLeaseTaker builds the taker of the lease lc (no I/O).
func newLeaseTaker(lc *pipeline.Lease, name string) (*leaseTaker, error) {
	if k := lc.Kubernetes; k != nil {
		kl, err := lease.NewKubernetes(lease.KubernetesConfig{Namespace: k.Namespace, Name: name, Duration: k.Duration, Retry: lc.Retry,
			Server: k.Server, TokenFile: k.TokenFile, CAFile: k.CAFile})
		if err != nil {
			return nil, err
		}
		return &leaseTaker{name: name, acquire: func(ctx context.Context, w func(lease.Wait)) (heldLease, error) {
			h, err := kl.Acquire(ctx, w)
			if err != nil {
				return nil, err
			}
			return h, nil
		}}, nil
	}
	pg, err := lease.NewPostgres(lc.Postgres, name, lc.Retry)
	if err != nil {
		return nil, err
	}
	return &leaseTaker{name: name, acquire: func(ctx context.Context, w func(lease.Wait)) (heldLease, error) {
		h, err := pg.Acquire(ctx, w)
		if err != nil {
			return nil, err
		}
		return h, nil
	}}, nil
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
	taker := l.taker
	m.mu.Unlock()
	if taker == nil {
		taker, err = newLeaseTaker(m.cfg.Lease, m.leaseName())
		if err != nil {
			_ = p.Discard(context.Background())
			ce := &connector.ConfigError{Field: "lease", Msg: strings.TrimPrefix(redact(err.Error(), m.cfg.Lease.Secrets), "lease: ")}
			if m.cfg.Lease.Kubernetes != nil {
				ce.Hint = "run in a Kubernetes pod with a service account, or set lease.kubernetes.server, token_file and ca_file"
				ce.Msg += "; " + ce.Hint
			}
			return false, ce
		}
		m.mu.Lock()
		l.taker = taker
		m.mu.Unlock()
	}
	m.mu.Lock()
	l.standby, l.waitErr = true, ""
	m.mu.Unlock()
	log.Info("standing by for the lease", "lease", taker.name)
	held, err := taker.acquire(ctx, func(w lease.Wait) {
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
	log.Info("took the lease; running", "lease", taker.name)
	l.held.Store(&heldRef{held})
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
		log.Warn("lost the lease; the run stopped, standing by", "lease", taker.name, "err", redact(lerr.Error(), m.cfg.Lease.Secrets), "run_err", err)
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

// leasedStore keeps a leased pipeline's positions in the process's checkpoint store and in the
// lease's own store (a Postgres table, or the Kubernetes Lease object). The lease's store is the
// truth: Load reads it (the local store only when the lease has no positions yet, to carry over a
// pipeline that ran without a lease), and Save writes it first, fenced (by the lock, or by the
// Lease's resourceVersion), so a run that lost the lease fails its next commit instead of moving
// the positions.
type leasedStore struct {
	local *lazyStore
	m     *managed
}

func (l *leasedStore) held() (heldLease, error) {
	h := l.m.lease.held.Load()
	if h == nil {
		return nil, fmt.Errorf("pipeline %q: %w: not held", l.m.name, lease.ErrLost)
	}
	return h.heldLease, nil
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
