package pulsar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Headers the source adds to every record, besides the message's properties.
const (
	HeaderTopic           = "pulsar_topic"            // the topic partition the message came from
	HeaderMessageID       = "pulsar_message_id"       // ledger:entry:partition:batch
	HeaderPublishTime     = "pulsar_publish_time"     // epoch milliseconds, set by the broker
	HeaderEventTime       = "pulsar_event_time"       // epoch milliseconds, set by the producer; absent when unset
	HeaderRedeliveryCount = "pulsar_redelivery_count" // how often the broker delivered it before; absent when 0
)

// metadataHeader reports whether a header key is one the source adds, which the sink does not copy
// into the properties of the messages it produces.
func metadataHeader(k string) bool {
	switch k {
	case HeaderTopic, HeaderMessageID, HeaderPublishTime, HeaderEventTime, HeaderRedeliveryCount:
		return true
	}
	return false
}

var subscriptionTypes = map[string]pulsar.SubscriptionType{
	"exclusive":  pulsar.Exclusive,
	"failover":   pulsar.Failover,
	"shared":     pulsar.Shared,
	"key_shared": pulsar.KeyShared,
}

var sourceSpec = connector.Spec{
	Name:    "pulsar",
	Summary: "Consumes Pulsar topics through a subscription; acks each message once it is durable in every sink.",
	Description: "Reads the topics named in `topics` (or every topic of a namespace matching `topics_pattern`, found again every " +
		"`auto_discovery_period`) through the durable subscription `subscription`. A message is acknowledged to Pulsar only " +
		"after its record (or its dead letter) is durable in every sink and checkpointed; until then the broker keeps it, " +
		"and gives it again to this or another consumer when the pipeline stops, the process dies or its connection drops " +
		"(a consumer that goes away hands back every message it had not acknowledged). Delivery is at least once.\n\n" +
		"**Subscription types.** `failover` (the default) and `exclusive` keep the order of each partition: a partition has one " +
		"active consumer; with `failover`, several `sluice` processes split the partitions of a partitioned topic and take " +
		"over those of a process that goes away, while `exclusive` refuses a second process. `shared` spreads the messages " +
		"over every process of the subscription in no particular order (scale-out for work whose order does not matter); " +
		"`key_shared` does the same while keeping the order of messages with the same key.\n\n" +
		"**Acks.** Each partition's messages are acknowledged in the order they were read, up to the last durable one: with " +
		"`exclusive` and `failover` by one cumulative ack per partition, with `shared` and `key_shared` one by one (cumulative " +
		"acks are refused there). The broker acknowledges a producer's batch as a whole: when a consumer goes away after " +
		"acknowledging part of a batch, the whole batch comes again (a restarted `exclusive` or `failover` consumer skips the " +
		"part its checkpoint covers, see below).\n\n" +
		"**Positions and the subscription.** A record's position is its topic partition (`persistent://tenant/ns/topic-partition-N`, " +
		"or the topic when not partitioned) with the serialized message id as cursor. The subscription decides where reading " +
		"starts (the broker's cursor, or `initial_position` for a new subscription); the local checkpoint does not move it. " +
		"With `exclusive` and `failover`, messages at or before a partition's checkpointed id (durable, but their ack never " +
		"reached the broker before a crash) are acknowledged and skipped instead of delivered again. To read a topic again " +
		"after resetting the subscription's cursor, run with `--reset` as well.\n\n" +
		"**Records.** The value is the payload, the key the message key, the time the event time when the producer set one " +
		"and the publish time otherwise. Properties become headers (those starting with `sluice-` are dropped, as the runtime " +
		"reserves them), after the metadata headers `pulsar_topic`, `pulsar_message_id` (ledger:entry:partition:batch), " +
		"`pulsar_publish_time` and, when set, `pulsar_event_time` (epoch milliseconds) and `pulsar_redelivery_count`, which " +
		"templates and transforms can read (`{{header.pulsar_topic}}`). The runtime leaves the metadata headers out when " +
		"nothing in the pipeline reads headers (no transform, and only sinks that ignore headers, such as drop, file, stdout " +
		"and iceberg).\n\n" +
		"**Backlog.** With `admin_url`, the subscription's backlog per partition (messages not acknowledged yet, and their bytes) " +
		"is exported as `sluice_source_backlog_records` and `_bytes`. Pulsar counts a producer's batch as one message there; " +
		"in a `shared` subscription every process reports the subscription's whole backlog.",
	Fields: append(append([]connector.Field(nil), connectionFields...),
		connector.Field{Name: "topics", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Example: []any{"events"},
			Description: "Topics to read: `events` (in `public/default`), `tenant/ns/events` or `persistent://tenant/ns/events`. Partitioned topics are read in every partition. Excludes `topics_pattern`."},
		connector.Field{Name: "topics_pattern", Type: connector.TypeString, Default: "",
			Description: "A regular expression for the topics to read, with the namespace: `persistent://public/default/prices-.*`. Excludes `topics`."},
		connector.Field{Name: "subscription", Type: connector.TypeString, Required: true, Example: "sluice",
			Description: "The subscription's name. Every process of one pipeline uses the same; two pipelines reading the same topic need different ones."},
		connector.Field{Name: "subscription_type", Type: connector.TypeString, Default: "failover", Enum: []string{"exclusive", "failover", "shared", "key_shared"},
			Description: "How the subscription's consumers share the messages; see above."},
		connector.Field{Name: "initial_position", Type: connector.TypeString, Default: "earliest", Enum: []string{"earliest", "latest"},
			Description: "Where a subscription that does not exist yet starts: at the oldest message kept, or after the newest."},
		connector.Field{Name: "consumer_name", Type: connector.TypeString, Default: "", Description: "The consumer's name in the broker's stats; empty lets the client choose."},
		connector.Field{Name: "receiver_queue_size", Type: connector.TypeInt, Default: int64(1000),
			Description: "Messages prefetched per partition; also the most records one read returns."},
		connector.Field{Name: "auto_discovery_period", Type: connector.TypeDuration, Default: time.Minute,
			Description: "How often new topics matching `topics_pattern`, and new partitions, are looked for."},
		connector.Field{Name: "admin_url", Type: connector.TypeString, Default: "", Example: "http://localhost:8080",
			Description: "The cluster's admin (web service) URL, for the backlog metrics. Empty: no backlog metrics."},
	),
}

// Source consumes Pulsar topics through one subscription. Read is called from one goroutine; Ack
// and Backlog may run concurrently with it.
type Source struct {
	conn       connConfig
	topics     []string
	pattern    string
	sub        string
	typ        pulsar.SubscriptionType
	initial    pulsar.SubscriptionInitialPosition
	name       string
	queue      int
	discovery  time.Duration
	cumulative bool // acks may be cumulative (exclusive, failover)
	noMeta     bool // leave out the metadata headers: nothing in the pipeline reads headers
	admin      *admin
	log        *slog.Logger
	problems   *connProblems

	client   pulsar.Client
	consumer pulsar.Consumer
	ch       chan pulsar.ConsumerMessage
	batch    []pulsar.ConsumerMessage // Read's scratch

	mu     sync.Mutex
	parts  map[string]*partition
	resume map[string]msgKey
	last   *partition // the partition of the last message read (Read only)
}

// partition is what the source knows of one topic partition.
type partition struct {
	name  []byte // header value, shared by the records
	skip  *msgKey
	queue []pending // read, not acked yet, in read order; queue[head:] is live
	head  int
}

type pending struct {
	id  pulsar.MessageID
	key msgKey
}

var (
	_ connector.Source        = (*Source)(nil)
	_ connector.BacklogSource = (*Source)(nil)
)

// NewSource builds a Pulsar source from its configuration. It does no I/O.
func NewSource(cfg connector.Config, env connector.Env) (*Source, error) {
	conn, err := decodeConn(&sourceSpec, cfg)
	if err != nil {
		return nil, err
	}
	var c struct {
		Topics    []string      `config:"topics"`
		Pattern   string        `config:"topics_pattern"`
		Sub       string        `config:"subscription"`
		Type      string        `config:"subscription_type"`
		Initial   string        `config:"initial_position"`
		Name      string        `config:"consumer_name"`
		Queue     int           `config:"receiver_queue_size"`
		Discovery time.Duration `config:"auto_discovery_period"`
		AdminURL  string        `config:"admin_url"`
	}
	if err := sourceSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	var topics []string
	for i, t := range c.Topics {
		t = strings.TrimSpace(t)
		if t == "" {
			return nil, &connector.ConfigError{Field: fmt.Sprintf("topics[%d]", i), Msg: "must not be empty"}
		}
		if _, err := splitTopic(t); err != nil {
			return nil, &connector.ConfigError{Field: fmt.Sprintf("topics[%d]", i), Msg: err.Error()}
		}
		topics = append(topics, t)
	}
	switch {
	case len(topics) == 0 && c.Pattern == "":
		return nil, &connector.ConfigError{Field: "topics", Msg: "name at least one topic, or set topics_pattern"}
	case len(topics) > 0 && c.Pattern != "":
		return nil, &connector.ConfigError{Field: "topics_pattern", Msg: "topics and topics_pattern exclude each other"}
	}
	if c.Pattern != "" {
		if err := checkPattern(c.Pattern); err != nil {
			return nil, &connector.ConfigError{Field: "topics_pattern", Msg: err.Error(),
				Hint: "write the namespace before the expression: persistent://public/default/prices-.*"}
		}
	}
	if strings.TrimSpace(c.Sub) == "" {
		return nil, &connector.ConfigError{Field: "subscription", Msg: "must not be empty"}
	}
	typ, ok := subscriptionTypes[c.Type]
	if !ok { // the spec's enum has refused it already; kept for configurations built without the spec
		return nil, &connector.ConfigError{Field: "subscription_type", Msg: fmt.Sprintf("unknown type %q", c.Type)}
	}
	if c.Queue <= 0 {
		return nil, &connector.ConfigError{Field: "receiver_queue_size", Msg: "must be greater than 0"}
	}
	if c.Discovery <= 0 {
		return nil, &connector.ConfigError{Field: "auto_discovery_period", Msg: "must be greater than 0"}
	}
	s := &Source{
		conn: conn, topics: topics, pattern: c.Pattern, sub: c.Sub, typ: typ, name: c.Name,
		queue: c.Queue, discovery: c.Discovery, cumulative: typ == pulsar.Exclusive || typ == pulsar.Failover,
		log: env.Logger,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if c.Initial == "latest" {
		s.initial = pulsar.SubscriptionPositionLatest
	} else {
		s.initial = pulsar.SubscriptionPositionEarliest
	}
	if c.AdminURL != "" {
		a, err := newAdmin(c.AdminURL, conn)
		if err != nil {
			return nil, err
		}
		s.admin = a
	}
	return s, nil
}

// checkPattern checks a topics_pattern: a topic name whose last part is a regular expression.
func checkPattern(p string) error {
	n, err := splitTopic(p)
	if err != nil {
		return err
	}
	if _, err := regexp.Compile(n.tenant + "/" + n.namespace + "/" + n.local); err != nil {
		return fmt.Errorf("not a regular expression: %v", err)
	}
	return nil
}

func (s *Source) describe() string {
	if s.pattern != "" {
		return fmt.Sprintf("topics matching %q", s.pattern)
	}
	return "topics " + strings.Join(s.topics, ", ")
}

var _ connector.MetadataHeaderSource = (*Source)(nil)

// OmitMetadataHeaders leaves out the pulsar_* headers: the runtime calls it before Open when
// nothing in the pipeline reads headers (connector.MetadataHeaderSource).
func (s *Source) OmitMetadataHeaders() { s.noMeta = true }

// Open creates the client and subscribes. resume holds the last checkpointed position of each
// partition: with exclusive and failover subscriptions, messages at or before it are acked and
// skipped (they were durable, but their ack may not have reached the broker).
func (s *Source) Open(ctx context.Context, resume []connector.Position) error {
	if s.consumer != nil {
		return errors.New("pulsar source: already open")
	}
	skip := map[string]msgKey{}
	if s.cumulative {
		for _, p := range resume {
			k, err := parseCursor(p.Cursor)
			if err != nil {
				return fmt.Errorf("pulsar source: checkpoint of %s: %w (reset the pipeline's checkpoint to read from the subscription alone): %w", p.Partition, err, connector.ErrPermanent)
			}
			skip[p.Partition] = k
		}
	}
	s.problems = newConnProblems()
	client, err := s.conn.newClient(s.log, s.problems)
	if err != nil {
		return fmt.Errorf("pulsar source: %w: %w", err, connector.ErrPermanent)
	}
	ch := make(chan pulsar.ConsumerMessage, s.queue)
	opts := pulsar.ConsumerOptions{
		SubscriptionName:            s.sub,
		Type:                        s.typ,
		SubscriptionInitialPosition: s.initial,
		Name:                        s.name,
		ReceiverQueueSize:           s.queue,
		MessageChannel:              ch,
		AutoDiscoveryPeriod:         s.discovery,
	}
	switch {
	case s.pattern != "":
		opts.TopicsPattern = s.pattern
	case len(s.topics) == 1:
		opts.Topic = s.topics[0]
	default:
		opts.Topics = s.topics
	}
	consumer, err := withContext(ctx, s.problems.refusals(), func() (pulsar.Consumer, error) { return client.Subscribe(opts) },
		func(c pulsar.Consumer, err error) {
			if err == nil {
				c.Close()
			}
			client.Close()
		})
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, errRefused) { // otherwise the cleanup closes it
			client.Close()
		}
		return classify(err, fmt.Sprintf("pulsar source: subscribe %q to %s", s.sub, s.describe()), s.conn.URL, s.problems)
	}
	s.mu.Lock()
	s.client, s.consumer, s.ch = client, consumer, ch
	s.parts, s.resume, s.last = map[string]*partition{}, skip, nil
	s.mu.Unlock()
	if s.admin == nil {
		s.log.Debug("no admin_url: the subscription's backlog is not exported")
	}
	return nil
}

// Read returns the messages that arrived, at least one, at most receiver_queue_size.
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	if s.consumer == nil {
		return nil, errors.New("pulsar source: read before open")
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var first pulsar.ConsumerMessage
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case first = <-s.ch:
		}
		msgs := append(s.batch[:0], first)
	drain:
		for len(msgs) < s.queue {
			select {
			case m := <-s.ch:
				msgs = append(msgs, m)
			default:
				break drain
			}
		}
		recs := s.records(msgs)
		clear(msgs) // drop the references to the messages
		s.batch = msgs[:0]
		if len(recs) > 0 {
			return recs, nil
		}
	}
}

// records turns messages into records and queues their ids for Ack; messages at or before a
// partition's checkpoint are acked at once and left out.
func (s *Source) records(msgs []pulsar.ConsumerMessage) []connector.Record {
	nh, nb := 0, 0
	for _, m := range msgs {
		nh += len(m.Properties()) + 5
		nb += len(m.Key()) + 96
	}
	hdrs := make([]connector.Header, 0, nh)
	buf := make([]byte, 0, nb)
	recs := make([]connector.Record, 0, len(msgs))
	var skipped []pulsar.MessageID

	s.mu.Lock()
	for _, cm := range msgs {
		m := cm.Message
		id := m.ID()
		key := keyOf(id)
		p := s.partitionOf(m.Topic())
		if p.skip != nil && key.compare(*p.skip) <= 0 {
			skipped = append(skipped, id)
			continue
		}
		p.queue = append(p.queue, pending{id: id, key: key})

		h0 := len(hdrs)
		publish, et := m.PublishTime(), m.EventTime()
		when := publish
		if et.UnixMilli() > 0 {
			when = et
		}
		if !s.noMeta {
			hdrs = append(hdrs, connector.Header{Key: HeaderTopic, Value: p.name})
			at := len(buf)
			buf = appendIDText(buf, id)
			hdrs = append(hdrs, connector.Header{Key: HeaderMessageID, Value: since(buf, at)})
			at = len(buf)
			buf = strconv.AppendInt(buf, publish.UnixMilli(), 10)
			hdrs = append(hdrs, connector.Header{Key: HeaderPublishTime, Value: since(buf, at)})
			if et.UnixMilli() > 0 {
				at = len(buf)
				buf = strconv.AppendInt(buf, et.UnixMilli(), 10)
				hdrs = append(hdrs, connector.Header{Key: HeaderEventTime, Value: since(buf, at)})
			}
			if n := m.RedeliveryCount(); n > 0 {
				at = len(buf)
				buf = strconv.AppendUint(buf, uint64(n), 10)
				hdrs = append(hdrs, connector.Header{Key: HeaderRedeliveryCount, Value: since(buf, at)})
			}
		}
		for k, v := range m.Properties() {
			if connector.IsReservedHeader(k) {
				continue
			}
			hdrs = append(hdrs, connector.Header{Key: k, Value: []byte(v)})
		}
		var k []byte
		if mk := m.Key(); mk != "" {
			at := len(buf)
			buf = append(buf, mk...)
			k = since(buf, at)
		}
		at := len(buf)
		buf = appendCursor(buf, id)
		cursor := since(buf, at)
		recs = append(recs, connector.Record{
			Key:      k,
			Value:    m.Payload(),
			Headers:  hdrs[h0:len(hdrs):len(hdrs)],
			Time:     when,
			Position: connector.Position{Partition: m.Topic(), Cursor: cursor},
		})
	}
	s.mu.Unlock()
	for _, id := range skipped {
		if err := s.consumer.AckID(id); err != nil {
			s.log.Warn("acking a message delivered before the last checkpoint failed; it will be skipped again", "err", err)
		}
	}
	return recs
}

// since returns what buf holds from at on, capped so that appending to it cannot write into what
// follows. When an append outgrew buf, the earlier slices keep the old array: they stay valid.
func since(buf []byte, at int) []byte { return buf[at:len(buf):len(buf)] }

// partitionOf returns the state of a topic partition, creating it. s.mu is held.
func (s *Source) partitionOf(topic string) *partition {
	if s.last != nil && string(s.last.name) == topic {
		return s.last
	}
	p := s.parts[topic]
	if p == nil {
		p = &partition{name: []byte(topic)}
		if k, ok := s.resume[topic]; ok {
			p.skip = &k
		}
		s.parts[topic] = p
	}
	s.last = p
	return p
}

// Ack acknowledges, for each position, every message of its partition read up to and including
// it: with one cumulative ack (exclusive, failover) or one ack per message (shared, key_shared).
func (s *Source) Ack(_ context.Context, positions []connector.Position) error {
	if s.consumer == nil {
		return errors.New("pulsar source: ack before open")
	}
	var errs []error
	for _, pos := range positions {
		ids, err := s.take(pos)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.ack(ids); err != nil {
			errs = append(errs, fmt.Errorf("pulsar source: ack %s: %w", pos.Partition, err))
		}
	}
	return errors.Join(errs...)
}

// take removes from its partition's queue the messages read up to and including pos.
func (s *Source) take(pos connector.Position) ([]pending, error) {
	want, err := parseCursor(pos.Cursor)
	if err != nil {
		return nil, fmt.Errorf("pulsar source: ack %s: %w", pos.Partition, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[pos.Partition]
	if p == nil {
		return nil, fmt.Errorf("pulsar source: ack of %s, a partition this consumer has not read", pos.Partition)
	}
	live := p.queue[p.head:]
	for i := range live {
		if live[i].key == want {
			ids := append([]pending(nil), live[:i+1]...)
			clear(live[:i+1])
			p.head += i + 1
			if p.head == len(p.queue) {
				p.queue, p.head = p.queue[:0], 0
			} else if p.head > 1024 && p.head > len(p.queue)/2 {
				n := copy(p.queue, p.queue[p.head:])
				clear(p.queue[n:])
				p.queue, p.head = p.queue[:n], 0
			}
			return ids, nil
		}
	}
	return nil, fmt.Errorf("pulsar source: ack of %s in %s, which is not waiting for an ack", pos, pos.Partition)
}

// ack acknowledges messages of one partition.
func (s *Source) ack(ids []pending) error {
	if s.cumulative {
		// Every message of the partition before the newest of these was read before it, and
		// is durable: a cumulative ack of the newest covers them all.
		newest := 0
		for i := range ids {
			if ids[i].key.compare(ids[newest].key) > 0 {
				newest = i
			}
		}
		return s.consumer.AckIDCumulative(ids[newest].id)
	}
	var errs []error
	for i := range ids {
		if err := s.consumer.AckID(ids[i].id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes the consumer, which hands every message read and not acked back to the broker
// for redelivery, and the client. Acks already given are flushed first. It is idempotent.
func (s *Source) Close(context.Context) error {
	s.mu.Lock()
	consumer, client := s.consumer, s.client
	s.consumer, s.client, s.parts, s.last = nil, nil, nil, nil
	s.mu.Unlock()
	if consumer != nil {
		consumer.Close()
	}
	if client != nil {
		client.Close()
	}
	return nil
}
