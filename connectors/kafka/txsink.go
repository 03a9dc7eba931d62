package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

var _ connector.TransactionalSink = (*Sink)(nil)

// txState is the transactional side of a sink, set up by the first StoredPositions or WriteTx:
// with `delivery: exactly_once` the runtime writes only through WriteTx, and the plain client of
// Open keeps serving Write for the other delivery modes.
type txState struct {
	cl     *kgo.Client // transactional producer; nil until needed, and after a failure
	loaded bool        // stored holds what the positions topic holds
	stored map[string]connector.Position
	limits map[string]int64 // topic → max.message.bytes, as far as known
}

// positionsValue is what a positions record holds.
type positionsValue struct {
	Positions []connector.Position `json:"positions"`
}

// transactionalID is stable per pipeline and sink, so the process that replaces a crashed one
// fences it and aborts the transaction it left open.
func (s *Sink) transactionalID() string { return "sluice-" + s.pipeline + "-" + s.comp }

func (s *Sink) positionsKey() []byte {
	return []byte(strconv.Quote(s.pipeline) + "/" + strconv.Quote(s.comp))
}

// CheckExactlyOnce refuses configurations a Kafka transaction cannot be made of.
func (s *Sink) CheckExactlyOnce() error {
	switch {
	case !s.acks:
		return &connector.ConfigError{Field: "acks", Msg: "exactly_once needs acks: all (transactions need the idempotent producer)"}
	case !s.idempotent:
		return &connector.ConfigError{Field: "idempotent", Msg: "exactly_once needs the idempotent producer", Hint: "remove idempotent: false"}
	}
	return nil
}

// txClient returns the transactional producer, making it when there is none: it creates the
// positions topic when missing and initializes the producer id, which fences a previous producer
// of the same transactional id and aborts its open transaction.
func (s *Sink) txClient(ctx context.Context) (*kgo.Client, error) {
	if s.tx.cl != nil {
		return s.tx.cl, nil
	}
	if s.dial == nil {
		s.dial = &dialWatch{}
	}
	base, err := s.conn.clientOptions(s.log, s.dial)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	opts := append(append(base, s.opts...), kgo.TransactionalID(s.transactionalID()), kgo.TransactionTimeout(s.txTimeout))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, &connector.ConfigError{Field: "brokers", Msg: err.Error()}
	}
	if err := s.conn.await(ctx, "kafka sink", s.dial, func(c context.Context) error {
		if err := s.ensurePositionsTopic(c, cl); err != nil {
			return err
		}
		_, _, err := cl.ProducerID(c)
		return err
	}); err != nil {
		cl.Close()
		return nil, err
	}
	s.tx.cl = cl
	return cl, nil
}

// ensurePositionsTopic creates the positions topic (compacted, one partition) when missing, and
// refuses one of several partitions: the positions record always goes to partition 0.
func (s *Sink) ensurePositionsTopic(ctx context.Context, cl *kgo.Client) error {
	md, err := topicMetadata(ctx, cl, []string{s.positionsTopic})
	if err != nil {
		return err
	}
	t, ok := md[s.positionsTopic]
	if !ok || errors.Is(t.err, kerr.UnknownTopicOrPartition) {
		compact, segment := "compact", strconv.Itoa(10*60*1000)
		resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact, "segment.ms": &segment}, s.positionsTopic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return s.conn.classify("kafka sink", fmt.Errorf("create positions_topic %q: %w", s.positionsTopic, err))
		}
		return nil
	}
	if t.err != nil {
		return s.conn.classify("kafka sink", fmt.Errorf("positions_topic %q: %w", s.positionsTopic, t.err))
	}
	if len(t.partitions) != 1 {
		return fmt.Errorf("kafka sink: positions_topic %q has %d partitions, it must have one: %w", s.positionsTopic, len(t.partitions), connector.ErrPermanent)
	}
	return nil
}

// closeTx drops the transactional producer; the next transaction makes a new one, which aborts
// whatever the old one left open.
func (s *Sink) closeTx() {
	if s.tx.cl != nil {
		s.tx.cl.Close()
		s.tx.cl = nil
	}
	s.tx.loaded = false
}

// StoredPositions reads this pipeline's and sink's last committed positions record.
func (s *Sink) StoredPositions(ctx context.Context) ([]connector.Position, error) {
	if err := s.loadPositions(ctx); err != nil {
		return nil, err
	}
	out := make([]connector.Position, 0, len(s.tx.stored))
	for _, p := range s.tx.stored {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b connector.Position) int {
		if a.Partition < b.Partition {
			return -1
		} else if a.Partition > b.Partition {
			return 1
		}
		return 0
	})
	return out, nil
}

// loadPositions reads the positions topic up to its last stable offset with a read-committed
// consumer, after the producer was initialized (so a transaction a crashed process left open is
// aborted first), keeping the last record of this pipeline and sink.
func (s *Sink) loadPositions(ctx context.Context) error {
	cl, err := s.txClient(ctx)
	if err != nil {
		return err
	}
	var lso int64
	if err := s.conn.await(ctx, "kafka sink", s.dial, func(c context.Context) error {
		offs, err := kadm.NewClient(cl).ListCommittedOffsets(c, s.positionsTopic)
		if err != nil {
			return err
		}
		o, ok := offs.Lookup(s.positionsTopic, 0)
		if !ok {
			return fmt.Errorf("no offsets of %s partition 0", s.positionsTopic)
		}
		if o.Err != nil {
			return o.Err
		}
		lso = o.Offset
		return nil
	}); err != nil {
		return err
	}
	stored := map[string]connector.Position{}
	if lso > 0 {
		value, err := s.readLastValue(ctx, lso)
		if err != nil {
			return err
		}
		if value != nil {
			var v positionsValue
			if err := json.Unmarshal(value, &v); err != nil {
				return fmt.Errorf("kafka sink: positions record of %s in %s: %v: %w", s.positionsKey(), s.positionsTopic, err, connector.ErrPermanent)
			}
			for _, p := range v.Positions {
				stored[p.Partition] = p
			}
		}
	}
	s.tx.stored, s.tx.loaded = stored, true
	return nil
}

// readLastValue returns the value of the last committed record of this sink's key in partition 0
// of the positions topic below offset end. Control records are kept, so the reading knows when it
// reached end even when the last offsets below it are transaction markers.
func (s *Sink) readLastValue(ctx context.Context, end int64) ([]byte, error) {
	base, err := s.conn.clientOptions(s.log, s.dial)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	cl, err := kgo.NewClient(append(base,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.positionsTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return nil, &connector.ConfigError{Field: "brokers", Msg: err.Error()}
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, s.deliveryTO)
	defer cancel()
	key := string(s.positionsKey())
	var value []byte
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("kafka sink: read positions_topic %s up to offset %d: %w", s.positionsTopic, end, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, s.conn.classify("kafka sink", fmt.Errorf("read positions_topic %s: %w", s.positionsTopic, ferr))
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() && string(r.Key) == key {
				value = r.Value
			}
			if r.Offset+1 >= end {
				done = true
			}
		})
		if done {
			return value, nil
		}
	}
}

// WriteTx produces the records and this sink's positions record in one Kafka transaction.
//
// Records that cannot fit (a template that does not render, larger than batch_max_bytes or the
// topic's max.message.bytes) are refused before the transaction. A record the brokers refuse
// inside the transaction aborts it; the transaction is then written again without that record
// (and, when a whole produce batch was refused, with the records of that batch produced one by
// one, so only the offending one is refused), until one commits.
func (s *Sink) WriteTx(ctx context.Context, records []connector.Record, positions []connector.Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.tx.loaded {
		if err := s.loadPositions(ctx); err != nil {
			return err
		}
		// After an uncertain commit the positions say whether it happened: the runtime never
		// writes a position at or before one it stored.
		if len(positions) > 0 && s.covered(positions) {
			return nil
		}
	}
	merged := make(map[string]connector.Position, len(s.tx.stored)+len(positions))
	for k, p := range s.tx.stored {
		merged[k] = p
	}
	for _, p := range positions {
		merged[p.Partition] = p
	}
	pv := positionsValue{Positions: make([]connector.Position, 0, len(merged))}
	for _, p := range merged {
		pv.Positions = append(pv.Positions, p)
	}
	slices.SortFunc(pv.Positions, func(a, b connector.Position) int {
		if a.Partition < b.Partition {
			return -1
		} else if a.Partition > b.Partition {
			return 1
		}
		return 0
	})
	value, err := json.Marshal(pv)
	if err != nil {
		return fmt.Errorf("kafka sink: positions: %w", err)
	}

	w := s.prepare(records) // its buffers are not given back: the transaction may hold them
	if err := s.refuseOversized(ctx, w); err != nil {
		return err
	}
	suspects := map[int]bool{}
	for attempt := 0; ; attempt++ {
		failed, err := s.attempt(ctx, w, suspects, value)
		if err != nil {
			s.closeTx()
			return err
		}
		if len(failed) == 0 {
			s.tx.stored = merged
			break
		}
		progress := false
		for i, ferr := range failed {
			switch {
			case suspects[i] && (batchRefusal(ferr) || s.recordRefusal(ferr)), !suspects[i] && s.recordRefusal(ferr):
				w.refuse(i, refusal(&w.krecs[i], ferr))
				progress = true
			case batchRefusal(ferr):
				suspects[i] = true
				progress = true
			case errors.Is(ferr, kgo.ErrAborting):
				// Failed by the abort of another record's failure: produced again.
			default:
				s.closeTx()
				return s.conn.classify("kafka sink", fmt.Errorf("produce to %s in a transaction: %w", w.krecs[i].Topic, ferr))
			}
		}
		if !progress {
			s.closeTx()
			return fmt.Errorf("kafka sink: transaction aborted %d times without a record to blame", attempt+1)
		}
		s.log.Debug("kafka sink: transaction aborted for refused records; writing it again without them", "refused", len(w.refused), "one_by_one", len(suspects))
	}
	if len(w.refused) > 0 {
		slices.SortFunc(w.refused, func(a, b connector.RecordError) int { return a.Index - b.Index })
		return &connector.BatchError{Failed: w.refused}
	}
	return nil
}

// covered reports whether the stored positions are at or after every one of positions.
func (s *Sink) covered(positions []connector.Position) bool {
	for _, p := range positions {
		st, ok := s.tx.stored[p.Partition]
		if !ok || st.Offset < p.Offset {
			return false
		}
	}
	return true
}

// attempt runs one transaction: the records not refused (the suspects one by one, after the
// others) and the positions record. It commits when no record failed and returns the failures
// (the transaction then aborted); an error means the transaction's outcome is failed or unknown.
func (s *Sink) attempt(ctx context.Context, w *write, suspects map[int]bool, positions []byte) (map[int]error, error) {
	cl, err := s.txClient(ctx)
	if err != nil {
		return nil, err
	}
	if err := cl.BeginTransaction(); err != nil {
		return nil, fmt.Errorf("kafka sink: begin transaction: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, s.deliveryTO)
	defer cancel()
	w.failed = nil
	for i := range w.krecs {
		if !w.skip[i] && !suspects[i] {
			// Produce keeps the context a record already has (the cancelled one of an earlier
			// attempt): clear it.
			w.krecs[i].Partition, w.krecs[i].Offset, w.krecs[i].Context = partitionOf(s, &w.krecs[i]), 0, nil
			cl.Produce(pctx, &w.krecs[i], func(r *kgo.Record, err error) {
				if err != nil {
					w.fail(r, err)
				}
			})
		}
	}
	if err := cl.Flush(pctx); err != nil {
		return nil, s.deliveryErr(ctx, err)
	}
	for i := range w.krecs {
		if !w.skip[i] && suspects[i] {
			r := &w.krecs[i]
			r.Partition, r.Offset, r.Context = partitionOf(s, r), 0, nil
			if err := cl.ProduceSync(pctx, r).FirstErr(); err != nil {
				w.fail(r, err)
			}
		}
	}
	if len(w.failed) > 0 {
		failed := make(map[int]error, len(w.failed))
		for i := range w.krecs {
			if err, ok := w.failed[&w.krecs[i]]; ok {
				failed[i] = err
			}
		}
		if err := s.abort(cl); err != nil {
			return nil, err
		}
		return failed, nil
	}
	pr := &kgo.Record{Topic: s.positionsTopic, Partition: 0, Key: s.positionsKey(), Value: positions, Timestamp: time.Now()}
	if err := cl.ProduceSync(pctx, pr).FirstErr(); err != nil {
		_ = s.abort(cl)
		return nil, s.conn.classify("kafka sink", fmt.Errorf("produce to positions_topic %s: %w", s.positionsTopic, err))
	}
	// Not cancelled with ctx: a commit cut short leaves its outcome unknown.
	ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), s.deliveryTO)
	defer ecancel()
	if err := cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		_ = cl.EndTransaction(ectx, kgo.TryAbort)
		return nil, s.conn.classify("kafka sink", fmt.Errorf("commit transaction: %w", err))
	}
	return nil, nil
}

// abort ends the transaction without committing anything of it.
func (s *Sink) abort(cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.deliveryTO)
	defer cancel()
	if err := cl.AbortBufferedRecords(ctx); err != nil {
		return fmt.Errorf("kafka sink: abort transaction: %w", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return s.conn.classify("kafka sink", fmt.Errorf("abort transaction: %w", err))
	}
	return nil
}

func (s *Sink) deliveryErr(outer context.Context, err error) error {
	if outer.Err() == nil {
		if last := s.dial.last(); last != nil {
			return fmt.Errorf("kafka sink: records not acknowledged within delivery_timeout (%s); last connection error: %w", s.deliveryTO, last)
		}
		return fmt.Errorf("kafka sink: records not acknowledged within delivery_timeout (%s)", s.deliveryTO)
	}
	return fmt.Errorf("kafka sink: %w", err)
}

// recordOverhead bounds what a record adds to a produce batch beside its key, value and headers
// (the batch header, the record's length, attributes, deltas and varint lengths).
const recordOverhead = 61 + 5 + 1 + 10 + 5 + 5 + 5 + 5

// refuseOversized refuses, before the transaction, the records that cannot fit in a produce batch
// alone: larger than batch_max_bytes, or (uncompressed) than their topic's max.message.bytes.
// Compressed, a large record may still fit, so with compression only batch_max_bytes is checked
// here and the brokers' refusal aborts the transaction.
func (s *Sink) refuseOversized(ctx context.Context, w *write) error {
	for i := range w.krecs {
		if w.skip[i] {
			continue
		}
		r := &w.krecs[i]
		size := int64(recordOverhead + len(r.Key) + len(r.Value))
		for _, h := range r.Headers {
			size += int64(len(h.Key) + len(h.Value) + 10)
		}
		limit := s.batchMax
		if !s.compressed {
			tl, err := s.topicLimit(ctx, r.Topic)
			if err != nil {
				return err
			}
			if tl > 0 {
				limit = min(limit, tl)
			}
		}
		if size > limit {
			w.refuse(i, refusal(r, fmt.Errorf("%w: about %d bytes in a produce batch, over the limit of %d", kerr.MessageTooLarge, size, limit)))
		}
	}
	return nil
}

// topicLimit returns the topic's max.message.bytes, asked once per topic; 0 when unknown (a
// topic that does not exist is refused when produced to).
func (s *Sink) topicLimit(ctx context.Context, topic string) (int64, error) {
	if l, ok := s.tx.limits[topic]; ok {
		return l, nil
	}
	cl, err := s.txClient(ctx)
	if err != nil {
		return 0, err
	}
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return 0, s.conn.classify("kafka sink", fmt.Errorf("describe topic %s: %w", topic, err))
	}
	var limit int64
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" && c.Value != nil {
				limit, _ = strconv.ParseInt(*c.Value, 10, 64)
			}
		}
	}
	if s.tx.limits == nil {
		s.tx.limits = map[string]int64{}
	}
	if len(s.tx.limits) >= 4096 {
		clear(s.tx.limits)
	}
	s.tx.limits[topic] = limit
	return limit, nil
}
