package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/connectors/internal/outstanding"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

var sinkSpec = connector.Spec{
	Name:    "kafka",
	Summary: "Produces records to Kafka with an idempotent producer; a write returns once the brokers acknowledged every record.",
	Description: "Each record becomes one Kafka record with its value, headers and time; its key is the record's key, or `key` " +
		"rendered for the record. `topic`, `key` and `partition` are record templates (`{{commodity}}`, `{{header.kafka_topic}}`, " +
		"`{{key}}`; the syntax is documented in the Go package `sdk/go/template`), so one sink can route records to topics and partitions by their content. " +
		"Without `partition`, the partition comes from the key (murmur2, as the Java client does), so records of one key stay " +
		"in order in one partition.\n\n" +
		"The producer is idempotent and waits for every in-sync replica (`acks: all`) by default: a broker retry never " +
		"writes a record twice, and an acknowledged record survives the loss of the leader. A write returns only when every " +
		"record of the batch is acknowledged; delivery is at least once, since a batch that failed as a whole is written again.\n\n" +
		"A record the brokers refuse for itself (larger than the topic's `max.message.bytes`, a rendered topic that does not " +
		"exist or is not a valid name, a partition out of range, a template that cannot be rendered for it) goes to the dead " +
		"letters with the reason; the other records of the batch are written. When the brokers refuse a whole produce batch " +
		"because of one record in it, the records of that batch are sent again one by one, so only the offending one is " +
		"dead-lettered (they may then land after records of later batches). Any other failure (brokers unreachable, timeouts) " +
		"fails the write, which the runtime retries with backoff.\n\n" +
		"The sink can serve as a pipeline's `dead_letter` sink: the dead-letter envelope is the value, the original key and " +
		"headers are kept.\n\n" +
		"With `delivery: exactly_once` the sink writes each batch in one Kafka transaction (a transactional producer whose " +
		"`transactional.id` is `sluice-PIPELINE-SINK`, so a restarted process fences the one it replaces and aborts what it left " +
		"open), together with a record of the source positions the batch covers in `positions_topic` (a compacted topic of one " +
		"partition, created when missing, keyed by pipeline and sink). On start the sink reads its positions back with a " +
		"read-committed consumer and the runtime resumes after them, so a consumer reading the topics with " +
		"`isolation.level=read_committed` sees every record once, across crashes. A record too large for `batch_max_bytes` or " +
		"for its topic's `max.message.bytes` is dead-lettered before the transaction; a record the brokers refuse inside a " +
		"transaction aborts it, and the transaction is written again without that record, which goes to the dead letters. " +
		"Exactly-once needs `acks: all` and `idempotent: true`, and one process per pipeline writing through this sink.",
	ExactlyOnce: true,
	Fields: append(connectionFields(),
		connector.Field{Name: "topic", Type: connector.TypeString, Required: true,
			Description: "The topic, a record template.", Example: "prices-valid"},
		connector.Field{Name: "key", Type: connector.TypeString,
			Description: "The key, a record template. Unset: the record's own key.", Example: "{{commodity}}"},
		connector.Field{Name: "partition", Type: connector.TypeString,
			Description: "The partition number, a record template. Unset: chosen from the key."},
		connector.Field{Name: "acks", Type: connector.TypeString, Default: "all", Enum: []string{"all", "leader", "none"},
			Description: "Which replicas must have a record before the broker acknowledges it. Anything but `all` can lose acknowledged records when a leader fails, and needs `idempotent: false`."},
		connector.Field{Name: "idempotent", Type: connector.TypeBool, Default: true,
			Description: "Use the idempotent producer, so a retried produce request never duplicates records."},
		connector.Field{Name: "compression", Type: connector.TypeString, Default: "none", Enum: []string{"none", "gzip", "snappy", "lz4", "zstd"},
			Description: "Compression of produce batches."},
		connector.Field{Name: "linger", Type: connector.TypeDuration, Default: 5 * time.Millisecond,
			Description: "How long a partition's batch may wait for more records while a write is still handing records over; a write sends what is left at once."},
		connector.Field{Name: "batch_max_bytes", Type: connector.TypeByteSize, Default: int64(1 << 20),
			Description: "Largest produce batch per partition; a record larger than this (after its overhead) is refused."},
		connector.Field{Name: "max_buffered_records", Type: connector.TypeInt, Default: int64(100_000),
			Description: "Most records the producer holds unacknowledged."},
		connector.Field{Name: "delivery_timeout", Type: connector.TypeDuration, Default: 2 * time.Minute,
			Description: "How long a write waits for the brokers to acknowledge its records before it fails (and the runtime retries it)."},
		connector.Field{Name: "positions_topic", Type: connector.TypeString, Default: "__sluice_positions",
			Description: "With `delivery: exactly_once`: the compacted topic, of one partition, on the same cluster, that holds the source positions each transaction covers, one record per pipeline and sink. Created when missing."},
		connector.Field{Name: "transaction_timeout", Type: connector.TypeDuration, Default: time.Minute,
			Description: "With `delivery: exactly_once`: how long the brokers let a transaction stay open before they abort it. At most the brokers' `transaction.max.timeout.ms`."},
	),
}

// Sink produces records to Kafka. Write is called from one goroutine at a time.
type Sink struct {
	log   *slog.Logger
	conn  connConfig
	topic *template.Template
	key   *template.Template
	part  *template.Template
	opts  []kgo.Opt

	staticTopic string
	staticKey   []byte
	deliveryTO  time.Duration

	cl   *kgo.Client
	dial *dialWatch

	topics map[string]string // rendered topic names, interned

	// Buffers reused by a later write, given back by writes whose records are done.
	bufMu sync.Mutex
	free  []writeBufs

	// Exactly-once (txsink.go).
	acks, idempotent bool
	compressed       bool
	batchMax         int64
	pipeline, comp   string
	positionsTopic   string
	txTimeout        time.Duration
	tx               txState

	closed   bool
	closeErr error
}

var _ connector.Sink = (*Sink)(nil)

// NewSink builds a Kafka sink from its configuration. It does no I/O.
func NewSink(cfg connector.Config, env connector.Env) (*Sink, error) {
	var c struct {
		Topic        string        `config:"topic"`
		Key          string        `config:"key"`
		Partition    string        `config:"partition"`
		Acks         string        `config:"acks"`
		Idempotent   bool          `config:"idempotent"`
		Compression  string        `config:"compression"`
		Linger       time.Duration `config:"linger"`
		BatchMax     int64         `config:"batch_max_bytes"`
		MaxBuffered  int           `config:"max_buffered_records"`
		DeliveryTime time.Duration `config:"delivery_timeout"`
		Positions    string        `config:"positions_topic"`
		TxTimeout    time.Duration `config:"transaction_timeout"`
	}
	if err := sinkSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	s := &Sink{log: logger(env), topics: map[string]string{}, deliveryTO: c.DeliveryTime,
		acks: c.Acks == "all", idempotent: c.Idempotent, compressed: c.Compression != "none", batchMax: c.BatchMax,
		pipeline: env.Pipeline, comp: env.Component, positionsTopic: c.Positions, txTimeout: c.TxTimeout}
	if err := sinkSpec.Decode(cfg, &s.conn); err != nil {
		return nil, err
	}
	if err := s.conn.check(); err != nil {
		return nil, err
	}
	var err error
	if s.topic, err = template.ParseField("topic", c.Topic); err != nil {
		return nil, err
	}
	if t, ok := s.topic.Static(); ok {
		if err := checkTopicName(t); err != nil {
			return nil, &connector.ConfigError{Field: "topic", Msg: err.Error()}
		}
		s.staticTopic = t
	}
	if c.Key != "" {
		if s.key, err = template.ParseField("key", c.Key); err != nil {
			return nil, err
		}
		if k, ok := s.key.Static(); ok {
			s.staticKey = []byte(k)
		}
	}
	if c.Partition != "" {
		if s.part, err = template.ParseField("partition", c.Partition); err != nil {
			return nil, err
		}
		if p, ok := s.part.Static(); ok {
			if n, err := strconv.ParseInt(p, 10, 32); err != nil || n < 0 {
				return nil, &connector.ConfigError{Field: "partition", Msg: fmt.Sprintf("%q is not a partition number", p)}
			}
		}
	}
	if c.Linger < 0 {
		return nil, &connector.ConfigError{Field: "linger", Msg: "must not be negative"}
	}
	if c.BatchMax <= 0 || c.BatchMax > 1<<30 {
		return nil, &connector.ConfigError{Field: "batch_max_bytes", Msg: "must be between 1 and 1 GiB"}
	}
	if c.MaxBuffered <= 0 {
		return nil, &connector.ConfigError{Field: "max_buffered_records", Msg: "must be greater than 0"}
	}
	if c.DeliveryTime <= 0 {
		return nil, &connector.ConfigError{Field: "delivery_timeout", Msg: "must be greater than 0"}
	}
	if err := checkTopicName(c.Positions); err != nil {
		return nil, &connector.ConfigError{Field: "positions_topic", Msg: err.Error()}
	}
	if c.TxTimeout < time.Second {
		return nil, &connector.ConfigError{Field: "transaction_timeout", Msg: "must be at least 1s"}
	}
	opts := []kgo.Opt{
		kgo.ProducerLinger(c.Linger),
		kgo.ProducerBatchMaxBytes(int32(c.BatchMax)),
		kgo.MaxBufferedRecords(c.MaxBuffered),
		// No kgo.RecordDeliveryTimeout: franz-go measures it from the record's timestamp, which
		// for a record read from a topic may be hours old. Write bounds delivery instead.
	}
	switch c.Acks {
	case "all":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case "none":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	}
	if c.Acks != "all" {
		if c.Idempotent {
			return nil, &connector.ConfigError{Field: "acks", Msg: "the idempotent producer needs acks: all", Hint: "set idempotent: false to use acks: " + c.Acks}
		}
	}
	if !c.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	switch c.Compression {
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	}
	if s.part != nil {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	s.opts = opts
	return s, nil
}

// Open connects and, for a fixed topic, checks that it exists.
func (s *Sink) Open(ctx context.Context) error {
	s.dial = &dialWatch{}
	base, err := s.conn.clientOptions(s.log, s.dial)
	if err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	cl, err := kgo.NewClient(append(base, s.opts...)...)
	if err != nil {
		return &connector.ConfigError{Field: "brokers", Msg: err.Error()}
	}
	s.cl = cl
	if s.staticTopic == "" {
		return s.conn.await(ctx, "kafka sink", s.dial, func(c context.Context) error {
			_, err := kadm.NewClient(cl).BrokerMetadata(c)
			return err
		})
	}
	var md map[string]topicInfo
	if err := s.conn.await(ctx, "kafka sink", s.dial, func(c context.Context) (err error) {
		md, err = topicMetadata(c, cl, []string{s.staticTopic})
		return err
	}); err != nil {
		return err
	}
	t, ok := md[s.staticTopic]
	switch {
	case !ok || errors.Is(t.err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("kafka sink: topic %q does not exist on the brokers %s (create it, or correct topic): %w",
			s.staticTopic, strings.Join(s.conn.Brokers, ","), connector.ErrPermanent)
	case t.err != nil:
		return s.conn.classify("kafka sink", fmt.Errorf("topic %q: %w", s.staticTopic, t.err))
	}
	return nil
}

// Write produces the records and returns once the brokers acknowledged every one of them. Records
// refused for themselves come back in a *connector.BatchError.
func (s *Sink) Write(ctx context.Context, records []connector.Record) error {
	return s.WriteAsync(ctx, records)()
}

var _ connector.PipelinedSink = (*Sink)(nil)

// WriteAsync hands every record to the producer, has the producer send them without lingering,
// and returns; wait returns once the brokers acknowledged every record (or refused it). The
// engine keeps a few writes in flight, so the producer builds the next write's batches while the
// brokers store this one's: a Write that waited on a flush would leave the brokers idle while
// records are prepared and the producer idle while they store. The idempotent producer keeps the
// order of a partition's records across writes; a write that fails as a whole (not acknowledged
// within delivery_timeout) is written again by the engine with the ones after it (at least once:
// those may be stored twice). The records stay untouched until wait returned.
func (s *Sink) WriteAsync(ctx context.Context, records []connector.Record) (wait func() error) {
	if len(records) == 0 {
		return func() error { return nil }
	}
	if err := ctx.Err(); err != nil {
		return func() error { return err }
	}
	if s.cl == nil {
		return func() error { return errors.New("kafka sink: write before open") }
	}
	w := s.prepare(records)
	if len(w.refused) == len(records) {
		return func() error { return &connector.BatchError{Failed: w.refused} }
	}
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, s.deliveryTO)
	w.pending = outstanding.New()
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			w.fail(r, err)
		}
		w.pending.Done()
	}
	for i := range w.krecs {
		if w.skip[i] {
			continue
		}
		w.pending.Add()
		s.cl.Produce(ctx, &w.krecs[i], promise)
	}
	w.pending.Done() // every record handed over
	// A flush whose context is already done sends what lingers and returns at once. A flush
	// that waited would keep the producer from lingering while it waits, so records of the
	// next write would leave in many small requests.
	_ = s.cl.Flush(doneContext)
	return func() error {
		defer cancel()
		select {
		case <-w.pending.Wait():
		case <-ctx.Done():
			// Records may still be in flight and referenced by the client: their buffers are
			// not given back.
			if outer.Err() == nil {
				if last := s.dial.last(); last != nil {
					return fmt.Errorf("kafka sink: records not acknowledged within delivery_timeout (%s); last connection error: %w", s.deliveryTO, last)
				}
				return fmt.Errorf("kafka sink: records not acknowledged within delivery_timeout (%s)", s.deliveryTO)
			}
			return fmt.Errorf("kafka sink: %w", outer.Err())
		}
		if len(w.failed) > 0 {
			if err := s.settle(ctx, w); err != nil {
				return err
			}
		}
		s.giveBack(w)
		if len(w.refused) > 0 {
			slices.SortFunc(w.refused, func(a, b connector.RecordError) int { return a.Index - b.Index })
			return &connector.BatchError{Failed: w.refused}
		}
		return nil
	}
}

// doneContext is a context that is already done.
var doneContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// takeBufs returns buffers a finished write gave back, or none.
func (s *Sink) takeBufs() writeBufs {
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	return writeBufs{}
}

// giveBack keeps the buffers of a write whose records the client no longer holds, for a later one.
func (s *Sink) giveBack(w *write) {
	clear(w.krecs)
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	if len(s.free) < connector.MaxWritesInFlight {
		s.free = append(s.free, writeBufs{krecs: w.krecs[:0], hdrs: w.hdrs[:0], keys: w.keys[:0]})
	}
}

// writeBufs are the buffers a write builds its Kafka records in.
type writeBufs struct {
	krecs []kgo.Record
	hdrs  []kgo.RecordHeader
	keys  []byte
}

// write is the state of one Write.
type write struct {
	krecs   []kgo.Record
	hdrs    []kgo.RecordHeader
	keys    []byte
	skip    []bool // records refused before producing
	refused []connector.RecordError

	pending *outstanding.Count // records not yet acknowledged (WriteAsync)

	mu     sync.Mutex
	failed map[*kgo.Record]error
}

func (w *write) fail(r *kgo.Record, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed == nil {
		w.failed = map[*kgo.Record]error{}
	}
	w.failed[r] = err
}

func (w *write) refuse(i int, err error) {
	w.skip[i] = true
	w.refused = append(w.refused, connector.RecordError{Index: i, Err: err})
}

// prepare builds the Kafka records, rendering the templates; a record whose templates fail is
// refused.
func (s *Sink) prepare(records []connector.Record) *write {
	nh := 0
	for i := range records {
		nh += len(records[i].Headers)
	}
	b := s.takeBufs()
	w := &write{krecs: slices.Grow(b.krecs, len(records))[:len(records)], hdrs: slices.Grow(b.hdrs, nh), keys: b.keys,
		skip: make([]bool, len(records))}
	var scratch []byte
	for i := range records {
		r := &records[i]
		kr := &w.krecs[i]
		*kr = kgo.Record{Value: r.Value, Timestamp: r.Time, Key: r.Key, Topic: s.staticTopic}
		if s.staticTopic == "" {
			var err error
			if scratch, err = s.topic.Append(scratch[:0], r); err != nil {
				w.refuse(i, fmt.Errorf("kafka sink: topic: %w", err))
				continue
			}
			if kr.Topic = s.topics[string(scratch)]; kr.Topic == "" {
				if err := checkTopicName(string(scratch)); err != nil {
					w.refuse(i, fmt.Errorf("kafka sink: topic rendered as %q: %w", scratch, err))
					continue
				}
				kr.Topic = string(scratch)
				if len(s.topics) >= 4096 {
					clear(s.topics)
				}
				s.topics[kr.Topic] = kr.Topic
			}
		}
		switch {
		case s.staticKey != nil:
			kr.Key = s.staticKey
		case s.key != nil:
			k0 := len(w.keys)
			var err error
			if w.keys, err = s.key.Append(w.keys, r); err != nil {
				w.keys = w.keys[:k0]
				w.refuse(i, fmt.Errorf("kafka sink: key: %w", err))
				continue
			}
			kr.Key = w.keys[k0:len(w.keys):len(w.keys)]
		}
		if s.part != nil {
			var err error
			if scratch, err = s.part.Append(scratch[:0], r); err != nil {
				w.refuse(i, fmt.Errorf("kafka sink: partition: %w", err))
				continue
			}
			n, perr := strconv.ParseInt(string(scratch), 10, 32)
			if perr != nil || n < 0 {
				w.refuse(i, fmt.Errorf("kafka sink: partition rendered as %q, not a partition number", scratch))
				continue
			}
			kr.Partition = int32(n)
		}
		if len(r.Headers) > 0 {
			h0 := len(w.hdrs)
			for _, h := range r.Headers {
				w.hdrs = append(w.hdrs, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
			kr.Headers = w.hdrs[h0:len(w.hdrs):len(w.hdrs)]
		}
	}
	return w
}

// settle sorts the failures of a write: records refused for themselves are dead-lettered; records
// of a produce batch the brokers refused as a whole are produced again one by one, so only the
// offending ones are; any other failure fails the write.
func (s *Sink) settle(ctx context.Context, w *write) error {
	index := make(map[*kgo.Record]int, len(w.failed))
	for i := range w.krecs {
		if _, ok := w.failed[&w.krecs[i]]; ok {
			index[&w.krecs[i]] = i
		}
	}
	var again []int
	var fatal error
	for r, err := range w.failed {
		i := index[r]
		switch {
		case batchRefusal(err):
			again = append(again, i)
		case s.recordRefusal(err):
			w.refused = append(w.refused, connector.RecordError{Index: i, Err: refusal(r, err)})
		case fatal == nil:
			fatal = s.conn.classify("kafka sink", fmt.Errorf("produce to %s: %w", r.Topic, err))
		}
	}
	if fatal != nil {
		return fatal
	}
	slices.Sort(again)
	for _, i := range again {
		r := &w.krecs[i]
		r.Partition, r.Offset = partitionOf(s, r), 0
		err := s.cl.ProduceSync(ctx, r).FirstErr()
		switch {
		case err == nil:
		case batchRefusal(err) || s.recordRefusal(err):
			w.refused = append(w.refused, connector.RecordError{Index: i, Err: refusal(r, err)})
		default:
			return s.conn.classify("kafka sink", fmt.Errorf("produce to %s: %w", r.Topic, err))
		}
	}
	return nil
}

// partitionOf keeps a templated partition; otherwise the partitioner chooses again.
func partitionOf(s *Sink, r *kgo.Record) int32 {
	if s.part != nil {
		return r.Partition
	}
	return 0
}

func refusal(r *kgo.Record, err error) error {
	return fmt.Errorf("kafka sink: the record (%d bytes of value, topic %s) was refused: %w", len(r.Value), r.Topic, err)
}

// batchRefusal reports the errors with which a broker refuses a whole produce batch although one
// record in it may be the cause.
func batchRefusal(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) ||
		errors.Is(err, kerr.InvalidRecord) || errors.Is(err, kerr.CorruptMessage) || errors.Is(err, kerr.InvalidTimestamp)
}

// recordRefusal reports the errors that concern the record's own topic or partition. A missing or
// forbidden topic is the record's fault only when it was rendered from the record; a fixed topic
// is checked at open, and losing it later fails the write.
func (s *Sink) recordRefusal(err error) bool {
	if strings.HasPrefix(err.Error(), "invalid record partitioning choice") {
		return true
	}
	if s.staticTopic != "" {
		return false
	}
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.InvalidTopicException) ||
		errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.PolicyViolation)
}

// Close waits for what is still buffered and disconnects. It is idempotent and safe after a
// failed Open.
func (s *Sink) Close(ctx context.Context) error {
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	s.closeTx()
	if s.cl == nil {
		return nil
	}
	if err := s.cl.Flush(ctx); err != nil && ctx.Err() == nil {
		s.closeErr = fmt.Errorf("kafka sink: flush: %w", err)
	}
	s.cl.Close()
	return s.closeErr
}
