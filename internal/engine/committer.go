package engine

import (
	"fmt"

	"context"
	bolt "go.etcd.io/bbolt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// complete finishes one delivery of a batch; the last one finishes the batch.
func (r *run) complete(b *batch) {
	if b.pending.Add(-1) == 0 {
		r.finish(b)
	}
}

// finish releases a delivered batch's positions and budget, and checks the failure limit.
func (r *run) finish(b *batch) {
	if err := r.failures.add(int(b.records), int(b.failed.Load())); err != nil {
		r.fatal(err)
		return
	}
	if err := r.tracker.Done(b.id); err != nil {
		r.fatal(err)
		return
	}
	r.inflight.done(b.id)
	r.budget.release(b.records, b.bytes)
	select {
	case r.commitSig <- struct{}{}:
	default:
	}
}

// committer saves released positions and then acks the source, coalescing bursts of completions
// into one durable write. It returns when commitSig is closed, after a last commit. Commits are at
// least commitInterval apart, and with aggregate stages aggregateCommitInterval: each commit
// writes every slot that changed since the last one, so a slot that changes many times a second
// is written once per interval instead of once per batch.
func (r *run) committer() {
	interval := commitInterval
	if r.firstAggregate() < len(r.stages) {
		interval = aggregateCommitInterval
	}
	var last time.Time
	for {
		if _, open := <-r.commitSig; !open {
			break
		}
		open := true
		for wait := interval - time.Since(last); wait > 0 && open; wait = interval - time.Since(last) {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case _, open = <-r.commitSig:
				t.Stop()
			}
		}
		r.commit()
		last = time.Now()
		if !open {
			break
		}
	}
	r.commit()
}

// commitInterval is the least time between two commits of a pipeline. A commit is an fsync of
// the checkpoint store and an ack to the source (a Kafka offset commit, Pulsar acks); a source
// delivering a few million records a second otherwise commits after every batch or two. Delivery
// is not delayed, only the saved positions and the source's acks; a crash replays at most this
// much more input.
const commitInterval = 20 * time.Millisecond

// aggregateCommitInterval is the least time between two commits of a pipeline with aggregate
// stages (Kafka Streams commits every 30 s by default, 100 ms with exactly-once). A crash replays
// at most this much more input; delivery is not delayed, only the saved positions.
const aggregateCommitInterval = 250 * time.Millisecond

// commit saves the positions released since the last commit, then acks the source.
func (r *run) commit() {
	p := r.p
	var ps []connector.Position
	aggregates := r.firstAggregate() < len(r.stages)
	if aggregates {
		// The state of aggregate stages is saved with the positions it reflects.
		var through uint64
		ps, through = r.tracker.TakeThrough()
		commits := r.aggregateCommits(through)
		if len(ps) == 0 && len(commits) == 0 {
			return
		}
		err := p.opts.Checkpoints.(StateStore).SaveWith(p.spec.Name, ps, func(tx *bolt.Tx) error {
			for _, c := range commits {
				if err := c.Write(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			r.fatal(fmt.Errorf("checkpoint: save %q with its aggregate state: %w", p.spec.Name, err))
			return
		}
		if err := r.appendStateLogs(commits, ps); err != nil {
			r.fatal(err)
			return
		}
		for _, c := range commits {
			c.Done()
		}
		if len(ps) == 0 {
			return
		}
	} else if ps = r.tracker.Take(); len(ps) == 0 {
		return
	} else if err := p.opts.Checkpoints.Save(p.spec.Name, ps); err != nil {
		r.fatal(err)
		return
	}
	r.committed.set(ps)
	p.m.CheckpointTime.WithLabelValues(p.spec.Name).Set(float64(p.opts.Clock().UnixNano()) / 1e9)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.guard("source", "ack", func() error { return p.source.Ack(ctx, ps) }); err != nil {
		// The checkpoint store holds the truth; a failed upstream commit only means the
		// source system shows an older position until the next ack.
		p.log.Warn("source ack failed", "err", err)
	} else if aggregates {
		r.ackedAggregates(ps)
	}
}

// committedPositions is the last checkpointed position of each partition, for the lag metrics.
type committedPositions struct {
	mu sync.Mutex
	m  map[string]connector.Position
}

func newCommittedPositions() *committedPositions {
	return &committedPositions{m: map[string]connector.Position{}}
}

func (c *committedPositions) set(ps []connector.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		c.m[p.Partition] = p
	}
}

func (c *committedPositions) list() []connector.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]connector.Position, 0, len(c.m))
	for _, p := range c.m {
		out = append(out, p)
	}
	return out
}
