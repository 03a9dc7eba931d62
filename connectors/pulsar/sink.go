package pulsar

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/sluicehq/sluice/connectors/internal/outstanding"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

var sinkSpec = connector.Spec{
	Name:    "pulsar",
	Summary: "Produces records to Pulsar through batching producers; a write returns once the broker persisted every message.",
	Description: "Each record becomes one message: its value the payload, its key the message key (or `key` rendered for the " +
		"record), its time the event time, its headers and `properties` the message properties. `topic`, `key` and the values " +
		"of `properties` are record templates (`{{commodity}}`, `{{header.region}}`, `{{key}}`; the syntax is documented in the " +
		"Go package `sdk/go/template`), so one sink can route records to topics by their content. Messages with a key go to " +
		"the partition of their key, so the messages of one key keep their order.\n\n" +
		"The sink keeps one producer per topic (at most `max_producers`, the least recently used closed first). Producers batch " +
		"messages (`batching_max_delay`, `batching_max_messages`, `batching_max_size`) and compress batches (`compression`); " +
		"a write hands every record over and ends only when the broker has persisted every message. The engine keeps up to " +
		"eight writes in flight; the newest one flushes the producers, so `batching_max_delay` can only delay a write that " +
		"newer ones follow. Delivery is at least once: a write that failed as a " +
		"whole (broker unreachable, `send_timeout`) is written again.\n\n" +
		"A record refused on its own goes to the dead letters with the reason while the others are written: a message larger " +
		"than the broker's limit (`maxMessageSize`, 5 MiB by default), a template that cannot be rendered for it, a rendered " +
		"topic that is not a valid name or does not exist where topics are not created automatically. A fixed `topic` that " +
		"does not exist fails `Open`.\n\n" +
		"Headers become properties (the last value wins for a repeated key), except the metadata headers of the Pulsar source " +
		"(`pulsar_topic`, `pulsar_message_id`, `pulsar_publish_time`, `pulsar_event_time`, `pulsar_redelivery_count`), which " +
		"describe the message read, not the one written. The sink can serve as a pipeline's `dead_letter` sink.",
	Fields: append(append([]connector.Field(nil), connectionFields...),
		connector.Field{Name: "topic", Type: connector.TypeString, Required: true, Example: "events-clean",
			Description: "The topic, a record template: `events-clean`, `persistent://tenant/ns/prices-{{commodity}}`."},
		connector.Field{Name: "key", Type: connector.TypeString,
			Description: "The message key, a record template; empty for no key. Unset: the record's own key.", Example: "{{user_id}}"},
		connector.Field{Name: "properties", Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString},
			Description: "Message properties, each value a record template; they override headers of the same name.",
			Example:     map[string]any{"source": "sluice", "region": "{{region}}"}},
		connector.Field{Name: "headers", Type: connector.TypeBool, Default: true,
			Description: "Copy the record's headers into the message properties."},
		connector.Field{Name: "event_time", Type: connector.TypeBool, Default: true,
			Description: "Set the message's event time to the record's time."},
		connector.Field{Name: "compression", Type: connector.TypeString, Default: "none", Enum: []string{"none", "lz4", "zlib", "zstd", "snappy"},
			Description: "Compression of message batches."},
		connector.Field{Name: "compression_level", Type: connector.TypeString, Default: "default", Enum: []string{"default", "faster", "better"},
			Description: "Trade-off between speed and ratio, for zstd."},
		connector.Field{Name: "batching", Type: connector.TypeBool, Default: true,
			Description: "Group messages into batches; without it every message is its own entry."},
		connector.Field{Name: "batching_max_delay", Type: connector.TypeDuration, Default: 10 * time.Millisecond,
			Description: "How long a batch may wait for more messages while a write is still handing records over."},
		connector.Field{Name: "batching_max_messages", Type: connector.TypeInt, Default: int64(1000), Description: "Most messages in one batch."},
		connector.Field{Name: "batching_max_size", Type: connector.TypeByteSize, Default: int64(128 << 10), Description: "Largest batch."},
		connector.Field{Name: "batch_builder", Type: connector.TypeString, Default: "default", Enum: []string{"default", "key_based"},
			Description: "`key_based` batches messages by key, so that a `key_shared` subscription can give each consumer whole batches."},
		connector.Field{Name: "hashing_scheme", Type: connector.TypeString, Default: "java_string", Enum: []string{"java_string", "murmur3"},
			Description: "How a key picks the partition; `java_string` is what the Java client does by default."},
		connector.Field{Name: "max_pending_messages", Type: connector.TypeInt, Default: int64(10000),
			Description: "Messages a producer (per partition) holds unpersisted; a write waits when it is full."},
		connector.Field{Name: "send_timeout", Type: connector.TypeDuration, Default: 30 * time.Second,
			Description: "How long a message may wait to be persisted before the write fails (and the runtime retries it)."},
		connector.Field{Name: "max_producers", Type: connector.TypeInt, Default: int64(64),
			Description: "Producers (topics) kept open; the least recently used is closed past this. A write to more topics than this keeps them all open until it ends."},
	),
}

var compressions = map[string]pulsar.CompressionType{
	"none": pulsar.NoCompression, "lz4": pulsar.LZ4, "zlib": pulsar.ZLib, "zstd": pulsar.ZSTD, "snappy": pulsar.SNAPPY,
}

var compressionLevels = map[string]pulsar.CompressionLevel{"default": pulsar.Default, "faster": pulsar.Faster, "better": pulsar.Better}

// Sink produces records to Pulsar. Write is called from one goroutine at a time.
type Sink struct {
	conn      connConfig
	log       *slog.Logger
	topic     *template.Template
	static    string // the topic, when topic has no placeholder
	key       *template.Template
	props     []property
	headers   bool
	eventTime bool
	opts      pulsar.ProducerOptions
	maxProds  int
	problems  *connProblems
	clientMu  sync.Mutex
	client    pulsar.Client
	// mu guards producers, lru, free and the entries' counts: the engine runs the waits on a
	// goroutine of their own, beside WriteAsync.
	mu        sync.Mutex
	producers map[string]*list.Element   // of *producerEntry
	lru       list.List                  // front: most recently used
	free      [][]pulsar.ProducerMessage // message slices of completed writes, for the next ones
	handed    atomic.Uint64              // writes handed over so far
}

type property struct {
	name string
	t    *template.Template
}

type producerEntry struct {
	topic     string
	p         pulsar.Producer
	used      int    // writes in flight that send to it (not evicted meanwhile)
	lastWrite uint64 // the last write that sent to it (write.seq)
}

var _ connector.Sink = (*Sink)(nil)

// NewSink builds a Pulsar sink from its configuration. It does no I/O.
func NewSink(cfg connector.Config, env connector.Env) (*Sink, error) {
	conn, err := decodeConn(&sinkSpec, cfg)
	if err != nil {
		return nil, err
	}
	var c struct {
		Topic        string            `config:"topic"`
		Key          string            `config:"key"`
		Properties   map[string]string `config:"properties"`
		Headers      bool              `config:"headers"`
		EventTime    bool              `config:"event_time"`
		Compression  string            `config:"compression"`
		Level        string            `config:"compression_level"`
		Batching     bool              `config:"batching"`
		MaxDelay     time.Duration     `config:"batching_max_delay"`
		MaxMessages  int               `config:"batching_max_messages"`
		MaxSize      int               `config:"batching_max_size"`
		Builder      string            `config:"batch_builder"`
		Hashing      string            `config:"hashing_scheme"`
		MaxPending   int               `config:"max_pending_messages"`
		SendTimeout  time.Duration     `config:"send_timeout"`
		MaxProducers int               `config:"max_producers"`
	}
	if err := sinkSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	s := &Sink{conn: conn, log: env.Logger, headers: c.Headers, eventTime: c.EventTime, maxProds: c.MaxProducers,
		producers: map[string]*list.Element{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.topic, err = template.ParseField("topic", c.Topic); err != nil {
		return nil, err
	}
	if t, ok := s.topic.Static(); ok {
		if t == "" {
			return nil, &connector.ConfigError{Field: "topic", Msg: "must not be empty"}
		}
		if _, err := splitTopic(t); err != nil {
			return nil, &connector.ConfigError{Field: "topic", Msg: err.Error()}
		}
		s.static = t
	}
	if cfg.Has("key") { // set, even empty (no key): the template replaces the record's key
		if s.key, err = template.ParseField("key", c.Key); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(c.Properties))
	for n := range c.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == "" {
			return nil, &connector.ConfigError{Field: "properties", Msg: "a property name must not be empty"}
		}
		t, err := template.ParseField("properties."+n, c.Properties[n])
		if err != nil {
			return nil, err
		}
		s.props = append(s.props, property{name: n, t: t})
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"batching_max_delay", int64(c.MaxDelay)}, {"batching_max_messages", int64(c.MaxMessages)}, {"batching_max_size", int64(c.MaxSize)},
		{"max_pending_messages", int64(c.MaxPending)}, {"send_timeout", int64(c.SendTimeout)}, {"max_producers", int64(c.MaxProducers)}} {
		if f.v <= 0 {
			return nil, &connector.ConfigError{Field: f.name, Msg: "must be greater than 0"}
		}
	}
	s.opts = pulsar.ProducerOptions{
		SendTimeout:             c.SendTimeout,
		MaxPendingMessages:      c.MaxPending,
		CompressionType:         compressions[c.Compression],
		CompressionLevel:        compressionLevels[c.Level],
		DisableBatching:         !c.Batching,
		BatchingMaxPublishDelay: c.MaxDelay,
		BatchingMaxMessages:     uint(c.MaxMessages),
		BatchingMaxSize:         uint(c.MaxSize),
	}
	if c.Builder == "key_based" {
		s.opts.BatcherBuilderType = pulsar.KeyBasedBatchBuilder
	}
	if c.Hashing == "murmur3" {
		s.opts.HashingScheme = pulsar.Murmur3_32Hash
	}
	return s, nil
}

// Open creates the client and, when the topic is fixed, its producer, so that a topic that does
// not exist or may not be written is reported here.
func (s *Sink) Open(ctx context.Context) error {
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	if s.client != nil {
		return errors.New("pulsar sink: already open")
	}
	s.problems = newConnProblems()
	client, err := s.conn.newClient(s.log, s.problems)
	if err != nil {
		return fmt.Errorf("pulsar sink: %w: %w", err, connector.ErrPermanent)
	}
	s.client = client
	if s.static != "" {
		if _, err := s.producer(ctx, s.static); err != nil {
			s.client = nil
			client.Close()
			return err
		}
	}
	return nil
}

// producer returns the producer of topic, creating it. The error of a creation that failed is
// classified (a missing topic is permanent).
func (s *Sink) producer(ctx context.Context, topic string) (*producerEntry, error) {
	if el, ok := s.producers[topic]; ok {
		s.lru.MoveToFront(el)
		return el.Value.(*producerEntry), nil
	}
	opts := s.opts
	opts.Topic = topic
	client := s.client
	p, err := withContext(ctx, s.problems.refusals(), func() (pulsar.Producer, error) { return client.CreateProducer(opts) },
		func(p pulsar.Producer, err error) {
			if err == nil {
				p.Close()
			}
		})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, classify(err, fmt.Sprintf("pulsar sink: create a producer for %s", topic), s.conn.URL, s.problems)
	}
	e := &producerEntry{topic: topic, p: p}
	s.producers[topic] = s.lru.PushFront(e)
	return e, nil
}

// evict closes the least recently used producers past max_producers, except those writes in
// flight use.
func (s *Sink) evict() {
	for el := s.lru.Back(); el != nil && len(s.producers) > s.maxProds; {
		prev := el.Prev()
		if e := el.Value.(*producerEntry); e.used == 0 {
			s.lru.Remove(el)
			delete(s.producers, e.topic)
			e.p.Close()
		}
		el = prev
	}
}

// Write sends every record, flushes the producers it used and waits until the broker persisted
// every message. Records refused on their own come back in a *connector.BatchError.
func (s *Sink) Write(ctx context.Context, records []connector.Record) error {
	return s.WriteAsync(ctx, records)()
}

var _ connector.PipelinedSink = (*Sink)(nil)

// WriteAsync hands every record to its topic's producer and returns; wait flushes those
// producers and waits until the broker persisted every message (or refused it). A producer sends
// its messages in order over one connection, so writes become durable in the order they were
// handed over; after a write fails as a whole, the engine writes it and the later ones again (at
// least once: the later ones may be stored twice). The records and the message slice stay
// untouched until wait returned.
func (s *Sink) WriteAsync(ctx context.Context, records []connector.Record) (wait func() error) {
	if s.client == nil {
		return func() error { return errors.New("pulsar sink: write before open") }
	}
	if err := ctx.Err(); err != nil {
		return func() error { return err }
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &write{errs: make([]error, len(records)), pending: outstanding.New(), seq: s.handed.Add(1)}
	msgs := s.messages(len(records))
	callback := w.callback(msgs)
	for i := range records {
		r := &records[i]
		topic, err := s.topicOf(r)
		if err != nil {
			w.refuse(i, err)
			continue
		}
		e, err := s.producer(ctx, topic)
		if err != nil {
			if errors.Is(err, connector.ErrPermanent) && s.static == "" {
				w.refuse(i, err) // this record's topic: does not exist, invalid, not allowed
				continue
			}
			w.failure = err
			break
		}
		if e.lastWrite != w.seq { // the first record of this write for the producer
			e.lastWrite = w.seq
			e.used++
			w.targets = append(w.targets, e)
		}
		m := &msgs[i]
		if err := s.message(m, r); err != nil {
			w.refuse(i, err)
			continue
		}
		w.pending.Add()
		e.p.SendAsync(ctx, m, callback)
	}
	return func() error {
		defer func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, e := range w.targets {
				e.used--
			}
			s.evict()
		}()
		// Flush only the newest write: a flush waits for every message the producer holds, so
		// flushing an older write would wait for the newer ones too. An older write's last
		// messages go out as the newer ones fill the producer's batches, or after
		// batching_max_delay.
		if w.failure == nil && w.seq == s.handed.Load() {
			for _, e := range w.targets {
				if err := e.p.FlushWithCtx(ctx); err != nil && ctx.Err() == nil {
					w.failure = fmt.Errorf("pulsar sink: flush %s: %w", e.topic, err)
					break
				}
			}
		}
		w.pending.Done() // every record handed over
		select {
		case <-w.pending.Wait():
			s.mu.Lock()
			s.free = append(s.free, msgs) // the client is done with them
			s.mu.Unlock()
		case <-ctx.Done():
			return ctx.Err() // the messages handed over may still be persisted: the retry duplicates them
		}
		if w.failure != nil {
			return w.failure
		}
		for i, err := range w.errs {
			if err == nil {
				continue
			}
			if !refusedAlone(err, s.static == "") {
				return fmt.Errorf("pulsar sink: send to %s: %w", s.topicName(&records[i]), classifyWrite(err, s.static != ""))
			}
			w.refuse(i, fmt.Errorf("pulsar sink: %w", err))
		}
		if len(w.recordErrs) > 0 {
			sort.Slice(w.recordErrs, func(a, b int) bool { return w.recordErrs[a].Index < w.recordErrs[b].Index })
			return &connector.BatchError{Failed: w.recordErrs}
		}
		return nil
	}
}

// messages returns a cleared slice of n messages, reusing one of a completed write.
func (s *Sink) messages(n int) []pulsar.ProducerMessage {
	for len(s.free) > 0 {
		m := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		if cap(m) >= n {
			m = m[:n]
			clear(m)
			return m
		}
	}
	return make([]pulsar.ProducerMessage, n)
}

// refuse records that record i cannot be written, for a reason of its own.
func (w *write) refuse(i int, err error) {
	w.recordErrs = append(w.recordErrs, connector.RecordError{Index: i, Err: err})
}

func (s *Sink) topicOf(r *connector.Record) (string, error) {
	if s.static != "" {
		return s.static, nil
	}
	t, err := s.topic.Render(r)
	if err != nil {
		return "", fmt.Errorf("pulsar sink: topic: %w", err)
	}
	if _, err := splitTopic(t); err != nil {
		return "", fmt.Errorf("pulsar sink: topic: %w", err)
	}
	return t, nil
}

// topicName is the topic of a record, for messages (its render error was reported before).
func (s *Sink) topicName(r *connector.Record) string {
	t, _ := s.topicOf(r)
	return t
}

// message fills m from r.
func (s *Sink) message(m *pulsar.ProducerMessage, r *connector.Record) error {
	m.Payload = r.Value
	if s.key != nil {
		k, err := s.key.Render(r)
		if err != nil {
			return fmt.Errorf("pulsar sink: key: %w", err)
		}
		m.Key = k
	} else if len(r.Key) > 0 {
		m.Key = string(r.Key)
	}
	if s.eventTime && !r.Time.IsZero() {
		m.EventTime = r.Time
	}
	if s.headers {
		for _, h := range r.Headers {
			if metadataHeader(h.Key) {
				continue
			}
			if m.Properties == nil {
				m.Properties = make(map[string]string, len(r.Headers)+len(s.props))
			}
			m.Properties[h.Key] = string(h.Value)
		}
	}
	for _, p := range s.props {
		v, err := p.t.Render(r)
		if err != nil {
			return fmt.Errorf("pulsar sink: property %s: %w", p.name, err)
		}
		if m.Properties == nil {
			m.Properties = make(map[string]string, len(s.props))
		}
		m.Properties[p.name] = v
	}
	return nil
}

// refusedAlone reports whether the broker or client refused a message for what it is, so that
// only it goes to the dead letters. With topics from a template, a topic that is gone (deleted,
// terminated) is the record's problem too.
func refusedAlone(err error, dynamic bool) bool {
	return errors.Is(err, pulsar.ErrMessageTooLarge) || errors.Is(err, pulsar.ErrMetaTooLarge) ||
		errors.Is(err, pulsar.ErrInvalidMessage) || errors.Is(err, pulsar.ErrSchema) ||
		dynamic && (errors.Is(err, pulsar.ErrTopicNotfound) || errors.Is(err, pulsar.ErrTopicTerminated))
}

// classifyWrite marks the send errors retrying cannot fix as permanent, with a fixed topic.
func classifyWrite(err error, static bool) error {
	if static && (errors.Is(err, pulsar.ErrTopicNotfound) || errors.Is(err, pulsar.ErrTopicTerminated)) {
		return fmt.Errorf("%w: %w", err, connector.ErrPermanent)
	}
	return err
}

// write tracks the messages of one Write until the broker answered for each.
// write is one write in flight: its messages' outcomes, and what it refused before sending.
type write struct {
	pending    *outstanding.Count // messages the broker has not answered yet
	errs       []error
	seq        uint64           // its number among the writes handed over
	targets    []*producerEntry // the producers its messages went to
	failure    error            // a failure of the whole write (a producer, a flush)
	recordErrs []connector.RecordError
}

// callback is the send callback of the messages of msgs; it finds a failed message's index by
// its address, so that the common case needs no closure per message.
func (w *write) callback(msgs []pulsar.ProducerMessage) func(pulsar.MessageID, *pulsar.ProducerMessage, error) {
	return func(_ pulsar.MessageID, m *pulsar.ProducerMessage, err error) {
		if err != nil {
			for i := range msgs {
				if &msgs[i] == m {
					w.errs[i] = err
					break
				}
			}
		}
		w.pending.Done()
	}
}

// Close flushes and closes the producers, then the client. It is idempotent.
func (s *Sink) Close(context.Context) error {
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for el := s.lru.Front(); el != nil; el = el.Next() {
		el.Value.(*producerEntry).p.Close()
	}
	s.lru.Init()
	clear(s.producers)
	if s.client != nil {
		s.client.Close()
		s.client = nil
	}
	return nil
}
