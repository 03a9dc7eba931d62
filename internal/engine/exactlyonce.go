package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Exactly-once delivery (delivery: exactly_once). Every sink stores the source positions it has
// written in the same transaction as the records (connector.TransactionalSink). On start the
// engine reads them back, opens the source at the earliest of them per partition, and gives each
// sink only the records after what it stored; every write goes through WriteTx with the last
// position it covers per partition, positions of records the sink never sees included. The local
// checkpoint store is still written, and fills in for a sink that stored nothing for a partition
// (see runtime/RATIONALE.md, "Sink batches and exactly-once delivery").

// checkExactlyOnce reports, without I/O, what keeps the pipeline from delivering exactly once:
// a source whose positions cannot be ordered after a restart, a sink that cannot store positions
// with its data or says it cannot as configured. It sets the sinks' tx.
func (p *Pipeline) checkExactlyOnce() []error {
	var errs []error
	if p.source != nil {
		if cp, ok := p.source.(connector.ComparablePositions); !ok || !p.ask("source", cp.PositionsComparable) {
			errs = append(errs, &ComponentError{Component: "source", Kind: connector.KindSource,
				Err:  fmt.Errorf("delivery exactly_once needs a source whose positions can be ordered after a restart, to skip for each sink the records it already holds; source %s, as configured, cannot tell", p.spec.Source.Type),
				Hint: fmt.Sprintf("use delivery: at_least_once, or a source whose positions are ordered offsets (`sluice docs %s` says when they are)", p.spec.Source.Type)})
		}
	}
	for _, t := range p.spec.Transforms {
		if a := t.Aggregate; a != nil && (a.Time == "" || a.Early > 0) {
			errs = append(errs, &ComponentError{Component: t.Name, Kind: "transform",
				Err:  errors.New("delivery exactly_once needs an aggregate stage on event time without early updates: processing time and early updates cannot be reproduced after a restart"),
				Hint: "set aggregate.time to the event time's path and remove aggregate.early, or use delivery: at_least_once"})
		}
	}
	for _, s := range p.sinks {
		tx, ok := s.sink.(connector.TransactionalSink)
		if !ok {
			err := &ComponentError{Component: s.name, Kind: connector.KindSink,
				Err:  fmt.Errorf("cannot be written exactly once: sink %s does not store source positions with its data", s.typ),
				Hint: "use delivery: at_least_once, or sinks that support exactly_once (`sluice docs TYPE` says)"}
			if strings.HasPrefix(s.typ, "plugin:") { // the plugin host's sinks
				err.Err = errors.New("cannot be written exactly once: the plugin protocol has no transactional write, so a plugin sink cannot store source positions with its data")
			}
			errs = append(errs, err)
			continue
		}
		if err := p.guard(s.name, "check", tx.CheckExactlyOnce); err != nil {
			errs = append(errs, &ComponentError{Component: s.name, Kind: connector.KindSink, Err: fmt.Errorf("cannot be written exactly once: %w", err),
				Hint: "use delivery: at_least_once, or configure the sink so that it can store positions with its data"})
			continue
		}
		s.tx = tx
	}
	if gs, ok := p.source.(connector.GroupedSource); ok && p.ask("source", gs.Grouped) {
		// One process of the pipeline may be the whole group, so this is a warning: a second
		// process is refused by such a sink (the Kafka sink's transactional id fences the
		// first), not written twice.
		for _, s := range p.sinks {
			if s.tx == nil {
				continue
			}
			if sp, ok := s.tx.(connector.SharedPositions); !ok || !p.ask(s.name, sp.SharesPositions) {
				p.log.Warn("exactly once with a consumer group: this sink keeps the pipeline's positions for one process, so run one process of this pipeline; "+
					"several processes need sinks that share positions (postgres, redis, iceberg)", "sink", s.name, "type", s.typ)
			}
		}
	}
	return errs
}

// ask calls a component's yes-or-no method, recovering a panic (taken as no).
func (p *Pipeline) ask(component string, f func() bool) bool {
	ok := false
	err := p.guard(component, "check", func() error { ok = f(); return nil })
	return err == nil && ok
}

// resumeExactlyOnce reads the positions each sink stored and returns where the source resumes:
// per partition, the earliest of the local checkpoint and of what each sink holds (what it
// stored or, for a partition it stored nothing of, the local checkpoint). A partition some sink
// holds nothing of is read from the source's beginning. It sets each sink's skip and stored.
func (r *run) resumeExactlyOnce(ctx context.Context, local []connector.Position) ([]connector.Position, error) {
	p := r.p
	held := make([]map[string]connector.Position, len(p.sinks)) // per sink: what it holds, by partition
	parts := map[string]bool{}
	for i, s := range p.sinks {
		var stored []connector.Position
		err := openWithRetry(ctx, p.log, func(c context.Context) error {
			return p.guard(s.name, "stored positions", func() (err error) {
				stored, err = s.tx.StoredPositions(c)
				return err
			})
		})
		if err != nil {
			return nil, fmt.Errorf("sink %q: read the positions it stored: %w", s.name, err)
		}
		m := map[string]connector.Position{}
		for _, ps := range stored {
			m[ps.Partition] = ps
		}
		p.log.Info("exactly once: positions stored by the sink", "sink", s.name, "positions", fmt.Sprint(stored))
		for _, l := range local {
			if _, ok := m[l.Partition]; !ok {
				m[l.Partition] = l
			}
		}
		held[i] = m
		for k := range m {
			parts[k] = true
		}
	}
	// The local checkpoint takes part too: it moves only once a batch's dead letters are durable,
	// so starting no later than it derives the dead letters of a crashed run's tail again.
	checkpointed := map[string]connector.Position{}
	for _, l := range local {
		checkpointed[l.Partition] = l
	}
	var resume []connector.Position
	at := map[string]int64{}
	for _, part := range slices.Sorted(maps.Keys(parts)) {
		first, found := checkpointed[part]
		for i := range held {
			h, ok := held[i][part]
			if !ok {
				found = false
				break
			}
			if !found || h.Offset < first.Offset {
				first, found = h, true
			}
		}
		if found {
			resume = append(resume, first)
			at[part] = first.Offset
		}
	}
	for i, s := range p.sinks {
		s.skip, s.stored = map[string]int64{}, map[string]int64{}
		for part, h := range held[i] {
			s.stored[part] = h.Offset
			// Also where the source resumes right after what the sink holds: a source may start
			// earlier than asked (a Kafka consumer group resumes from the group's committed
			// offset, which can lag the local checkpoint by one commit), and the sink must not
			// be given those records again.
			if from, ok := at[part]; !ok || h.Offset >= from {
				s.skip[part] = h.Offset
			}
		}
	}
	return resume, nil
}

// forSink returns the records of recs that sink s does not hold yet: those after its skip offset
// in their partition. It returns recs itself when none is skipped, and forgets the skip of every
// partition the batch (whose last positions are last) has passed.
func forSink(s *sinkRunner, recs []connector.Record, last []connector.Position) []connector.Record {
	if len(s.skip) == 0 {
		return recs
	}
	skipping := false
	for _, lp := range last {
		if _, ok := s.skip[lp.Partition]; ok {
			skipping = true
			break
		}
	}
	if !skipping {
		return recs
	}
	var out []connector.Record
	for i := range recs {
		off, ok := s.skip[recs[i].Position.Partition]
		if ok && recs[i].Position.Offset <= off {
			if out == nil {
				out = make([]connector.Record, 0, len(recs))
				out = append(out, recs[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, recs[i])
		}
	}
	for _, lp := range last {
		if off, ok := s.skip[lp.Partition]; ok && lp.Offset > off {
			delete(s.skip, lp.Partition)
		}
	}
	if out == nil {
		return recs
	}
	return out
}
