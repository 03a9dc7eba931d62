package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Header keys under which the source hands a record's origin to transforms and sinks.
const (
	HeaderTopic     = "kafka_topic"
	HeaderPartition = "kafka_partition"
	HeaderOffset    = "kafka_offset"
)

// Balancers of the consumer group.
const (
	balancerCooperativeSticky = "cooperative-sticky"
	balancerSticky            = "sticky"
	balancerRange             = "range"
	balancerRoundRobin        = "round-robin"
)

var sourceSpec = connector.Spec{
	Name:    "kafka",
	Summary: "Reads Kafka topics, alone or as a member of a consumer group; commits offsets only once the records are durable in every sink.",
	Description: "Each Kafka record becomes one record: its key, value, headers and timestamp are kept, and the headers `kafka_topic`, " +
		"`kafka_partition` and `kafka_offset` (decimal text) come first, so transforms and templates see where it came from " +
		"(`metadata_headers: false` leaves them out, and so does the runtime when nothing in the pipeline reads headers: no " +
		"transform, and only sinks that ignore headers, such as drop, file, stdout and iceberg). Upstream headers whose key starts with `sluice-` are dropped: those keys " +
		"are the runtime's. The position of a record is its partition, named `topic/partition` (`prices/3`), and its offset. " +
		"A position to resume from (the checkpoint's, or an exactly-once sink's) at or past its partition's end is warned of when " +
		"the source opens: the topic was most likely deleted and created again, and its new records up to that offset would count " +
		"as delivered.\n\n" +
		"**With a `group`**, several `sluice` processes running the same pipeline share the partitions of the topics " +
		"(`topics`, or every topic matching `topic_pattern`). Offsets are committed to the group only when the runtime " +
		"acknowledges them, that is once every record up to that offset is durable in every sink; nothing is committed " +
		"automatically. When a partition is assigned, the group's committed offset decides where reading resumes, since the local " +
		"checkpoint of this process may be stale (another member may have read that partition since); the local checkpoint is " +
		"used only for a partition the group has no committed offset for, and `start` when there is neither. " +
		"On a rebalance, the partitions being revoked stop being read at once; the rebalance then waits, at most " +
		"`revoke_timeout`, until what was read from them is delivered, commits it, and from then on never commits those " +
		"partitions again, so their new owner starts where this process stopped. A member that dies (`kill -9`) is replaced " +
		"after `session_timeout`; its records read and not yet committed are read again by the new owner (at-least-once).\n\n" +
		"**Aggregate stages in a group** keep each partition's state in a compacted topic `sluice.GROUP.PIPELINE.STAGE.state` " +
		"(created when missing, with as many partitions as the first topic), so that the state follows a partition to its " +
		"next owner, which resumes with exactly the state of the group's committed offset. The members need the right to " +
		"create, write and read that topic.\n\n" +
		"**Without a `group`**, the source reads every partition of the topics present when it opens, resuming each strictly " +
		"after its checkpointed position, and commits nothing to Kafka.\n\n" +
		"The source reports its lag per partition (`sluice_source_backlog_records`): the records after the last durable " +
		"position, up to the partition's end. In a group, each process reports the partitions it owns and 0 for those it no " +
		"longer owns, so a sum over the processes is the group's lag.\n\n" +
		"An unreachable broker fails the open after `connect_timeout` with the last connection error, and the runtime retries " +
		"it with backoff; the pipeline is not ready until the brokers answered. Once open, lost connections and broker restarts " +
		"are retried by the client without end: reading resumes when the brokers are back. A topic in `topics` that does not " +
		"exist and a failed SASL authentication stop the pipeline with an error saying so.",
	Fields: append(connectionFields(),
		connector.Field{Name: "topics", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString},
			Description: "The topics to read. Exactly one of topics and topic_pattern is required.", Example: []any{"prices"}},
		connector.Field{Name: "topic_pattern", Type: connector.TypeString,
			Description: "A regular expression (Go syntax, anchored at both ends; `prices\\..*`) naming the topics to read; in a group, topics created later that match are read too."},
		connector.Field{Name: "group", Type: connector.TypeString,
			Description: "The consumer group. Empty: no group; this process reads every partition and positions come only from the local checkpoint.",
			Example:     "analytics"},
		connector.Field{Name: "start", Type: connector.TypeString, Default: "earliest",
			Description: "Where to start a partition that has neither a committed offset nor a checkpoint: `earliest`, `latest`, or an RFC 3339 time (the first record at or after it)."},
		connector.Field{Name: "metadata_headers", Type: connector.TypeBool, Default: true,
			Description: "Add the headers kafka_topic, kafka_partition and kafka_offset to every record. Off saves about a sixth of the source's CPU per record; the runtime turns them off by itself when nothing in the pipeline reads headers."},
		connector.Field{Name: "max_poll_records", Type: connector.TypeInt, Default: int64(4096),
			Description: "Most records one read returns."},
		connector.Field{Name: "fetch_max_bytes", Type: connector.TypeByteSize, Default: int64(50 << 20),
			Description: "Most bytes one fetch request asks a broker for."},
		connector.Field{Name: "fetch_max_partition_bytes", Type: connector.TypeByteSize, Default: int64(1 << 20),
			Description: "Most bytes one fetch asks for per partition."},
		connector.Field{Name: "fetch_max_wait", Type: connector.TypeDuration, Default: 500 * time.Millisecond,
			Description: "How long a broker may hold a fetch request while it has no new records."},
		connector.Field{Name: "isolation_level", Type: connector.TypeString, Default: "read_uncommitted", Enum: []string{"read_uncommitted", "read_committed"},
			Description: "`read_committed` skips records of aborted transactions and waits for open ones."},
		connector.Field{Name: "session_timeout", Type: connector.TypeDuration, Default: 45 * time.Second,
			Description: "How long the group waits for a silent member before giving its partitions to others (within the broker's group.min/max.session.timeout.ms)."},
		connector.Field{Name: "heartbeat_interval", Type: connector.TypeDuration, Default: 3 * time.Second,
			Description: "How often a member tells the group it is alive; at most a third of session_timeout."},
		connector.Field{Name: "rebalance_timeout", Type: connector.TypeDuration, Default: 60 * time.Second,
			Description: "How long every member has to rejoin once a rebalance started."},
		connector.Field{Name: "revoke_timeout", Type: connector.TypeDuration, Default: 30 * time.Second,
			Description: "How long a rebalance waits for the records read from revoked partitions to be delivered before it commits what was delivered and lets the partitions go; less than rebalance_timeout."},
		connector.Field{Name: "balancer", Type: connector.TypeString, Default: balancerCooperativeSticky,
			Enum:        []string{balancerCooperativeSticky, balancerSticky, balancerRange, balancerRoundRobin},
			Description: "How the group spreads partitions. `cooperative-sticky` moves only the partitions that change owner; the others keep flowing during a rebalance."},
		connector.Field{Name: "metadata_max_age", Type: connector.TypeDuration, Default: time.Minute,
			Description: "How often the topics' metadata is refreshed, so how soon a group reads a new topic matching topic_pattern or partitions added to a topic."},
		connector.Field{Name: "instance_id", Type: connector.TypeString,
			Description: "A static group membership id, stable across restarts of this process: a restart within session_timeout gets its partitions back without a rebalance. Must differ between processes."},
	),
}

// Source reads Kafka records. Read is called from one goroutine, Ack from another.
type Source struct {
	log      *slog.Logger
	conn     connConfig
	topics   []string
	pattern  string
	group    string
	start    kgo.Offset
	startAt  string // the start field as configured
	headers  bool
	maxPoll  int
	opts     []kgo.Opt // consumer options besides the connection
	revokeTO time.Duration

	cl   *kgo.Client
	adm  *kadm.Client
	dial *dialWatch

	// commitMu orders commits with the revocation of partitions: a revoke takes it to disown
	// partitions, so no commit of a revoked partition starts after the revoke returned.
	commitMu sync.Mutex

	mu       sync.Mutex
	parts    map[topicPartition]*partState
	byName   map[string]*partState
	resume   map[string]int64 // checkpointed offsets handed to Open, by partition name
	noCommit map[topicPartition]bool
	ackSig   chan struct{} // closed and replaced on every Ack
	queue    []chunk       // polled and not yet handed out
	closing  bool

	warnMu     sync.Mutex
	warnedAt   time.Time
	suppressed int

	closed   bool
	closeErr error

	hookMu        sync.Mutex
	assignedHooks []func(partitions []string) // statelog.go
	releasedHooks []func(partitions []string) // statelog.go
}

var (
	_ connector.Source              = (*Source)(nil)
	_ connector.BacklogSource       = (*Source)(nil)
	_ connector.ComparablePositions = (*Source)(nil)
)

type topicPartition struct {
	topic     string
	partition int32
}

// partState is what the source knows of one partition.
type partState struct {
	name       string // "topic/3"
	topic      string
	partition  int32
	topicBytes []byte
	partBytes  []byte
	owned      bool  // assigned to this member (always, without a group)
	read       int64 // last offset handed out in the current assignment; -1: none
	floor      int64 // first offset handed out in the current assignment; -1: none
	acked      int64 // last offset acknowledged in the current assignment; -1: none
	committed  int64 // next offset the group has committed, as far as this member knows; -1: unknown
	// drain is the last offset handed out in an earlier assignment (lost, or revoked before its
	// records were delivered) and not yet acknowledged; -1: none. With stateful stages, records
	// of a new assignment are held back until it is acknowledged.
	drain    int64
	announce bool // the assignment is not yet announced to the OnAssigned hooks
}

// NewSource builds a Kafka source from its configuration. It does no I/O.
func NewSource(cfg connector.Config, env connector.Env) (*Source, error) {
	var c struct {
		connConfig
		Topics          []string      `config:"topics"`
		TopicPattern    string        `config:"topic_pattern"`
		Group           string        `config:"group"`
		Start           string        `config:"start"`
		MetadataHeaders bool          `config:"metadata_headers"`
		MaxPollRecords  int           `config:"max_poll_records"`
		FetchMaxBytes   int64         `config:"fetch_max_bytes"`
		FetchPartBytes  int64         `config:"fetch_max_partition_bytes"`
		FetchMaxWait    time.Duration `config:"fetch_max_wait"`
		Isolation       string        `config:"isolation_level"`
		SessionTimeout  time.Duration `config:"session_timeout"`
		Heartbeat       time.Duration `config:"heartbeat_interval"`
		RebalanceTO     time.Duration `config:"rebalance_timeout"`
		RevokeTO        time.Duration `config:"revoke_timeout"`
		Balancer        string        `config:"balancer"`
		InstanceID      string        `config:"instance_id"`
		MetadataMaxAge  time.Duration `config:"metadata_max_age"`
	}
	if err := sourceSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	if err := sourceSpec.Decode(cfg, &c.connConfig); err != nil {
		return nil, err
	}
	if err := c.connConfig.check(); err != nil {
		return nil, err
	}
	s := &Source{log: logger(env), conn: c.connConfig, group: c.Group, headers: c.MetadataHeaders, maxPoll: c.MaxPollRecords,
		revokeTO: c.RevokeTO, startAt: c.Start}
	switch {
	case len(c.Topics) > 0 && c.TopicPattern != "":
		return nil, &connector.ConfigError{Field: "topic_pattern", Msg: "topics and topic_pattern exclude each other", Hint: "keep one of them"}
	case len(c.Topics) == 0 && c.TopicPattern == "":
		return nil, &connector.ConfigError{Field: "topics", Msg: "name the topics to read, or set topic_pattern"}
	case c.TopicPattern != "":
		s.pattern = "^(?:" + c.TopicPattern + ")$"
		if _, err := regexp.Compile(s.pattern); err != nil {
			return nil, &connector.ConfigError{Field: "topic_pattern", Msg: err.Error()}
		}
	}
	for i, t := range c.Topics {
		if err := checkTopicName(t); err != nil {
			return nil, &connector.ConfigError{Field: fmt.Sprintf("topics[%d]", i), Msg: err.Error()}
		}
	}
	s.topics = slices.Compact(slices.Sorted(slices.Values(c.Topics)))
	switch c.Start {
	case "earliest":
		s.start = kgo.NewOffset().AtStart()
	case "latest":
		s.start = kgo.NewOffset().AtEnd()
	default:
		t, err := time.Parse(time.RFC3339Nano, c.Start)
		if err != nil {
			return nil, &connector.ConfigError{Field: "start", Msg: fmt.Sprintf("%q is not earliest, latest or an RFC 3339 time", c.Start), Hint: "for example 2024-05-01T00:00:00Z"}
		}
		s.start = kgo.NewOffset().AfterMilli(t.UnixMilli())
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"max_poll_records", int64(c.MaxPollRecords)}, {"fetch_max_bytes", c.FetchMaxBytes}, {"fetch_max_partition_bytes", c.FetchPartBytes},
		{"fetch_max_wait", int64(c.FetchMaxWait)}, {"session_timeout", int64(c.SessionTimeout)}, {"heartbeat_interval", int64(c.Heartbeat)},
		{"rebalance_timeout", int64(c.RebalanceTO)}, {"revoke_timeout", int64(c.RevokeTO)}, {"metadata_max_age", int64(c.MetadataMaxAge)}} {
		if f.v <= 0 {
			return nil, &connector.ConfigError{Field: f.name, Msg: "must be greater than 0"}
		}
	}
	if c.FetchMaxBytes > 1<<31-1 || c.FetchPartBytes > 1<<31-1 {
		return nil, &connector.ConfigError{Field: "fetch_max_bytes", Msg: "must be less than 2 GiB"}
	}
	if c.MetadataMaxAge < time.Second {
		return nil, &connector.ConfigError{Field: "metadata_max_age", Msg: "must be at least 1s"}
	}
	if c.Heartbeat*3 > c.SessionTimeout {
		return nil, &connector.ConfigError{Field: "heartbeat_interval", Msg: fmt.Sprintf("%s is more than a third of session_timeout (%s)", c.Heartbeat, c.SessionTimeout)}
	}
	if c.RevokeTO >= c.RebalanceTO {
		return nil, &connector.ConfigError{Field: "revoke_timeout", Msg: fmt.Sprintf("must be less than rebalance_timeout (%s), or the group expels this member while it waits", c.RebalanceTO)}
	}
	if c.Group == "" && c.InstanceID != "" {
		return nil, &connector.ConfigError{Field: "instance_id", Msg: "needs a group"}
	}
	s.opts = []kgo.Opt{
		kgo.WithPools(&recordPool{}),
		kgo.FetchMaxBytes(int32(c.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(c.FetchPartBytes)),
		kgo.FetchMaxWait(c.FetchMaxWait),
		kgo.MetadataMaxAge(c.MetadataMaxAge),
	}
	if c.Isolation == "read_committed" {
		s.opts = append(s.opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if c.Group != "" {
		var bal kgo.GroupBalancer
		switch c.Balancer {
		case balancerSticky:
			bal = kgo.StickyBalancer()
		case balancerRange:
			bal = kgo.RangeBalancer()
		case balancerRoundRobin:
			bal = kgo.RoundRobinBalancer()
		default:
			bal = kgo.CooperativeStickyBalancer()
		}
		s.opts = append(s.opts,
			kgo.ConsumerGroup(c.Group),
			kgo.Balancers(bal),
			kgo.SessionTimeout(c.SessionTimeout),
			kgo.HeartbeatInterval(c.Heartbeat),
			kgo.RebalanceTimeout(c.RebalanceTO),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(s.onAssigned),
			kgo.OnPartitionsRevoked(s.onRevoked),
			kgo.OnPartitionsLost(s.onLost),
			kgo.OnOffsetsFetched(s.onOffsetsFetched),
			kgo.AdjustFetchOffsetsFn(s.adjustOffsets),
		)
		if c.InstanceID != "" {
			s.opts = append(s.opts, kgo.InstanceID(c.InstanceID))
		}
	}
	return s, nil
}

// checkTopicName applies Kafka's rules for topic names.
func checkTopicName(t string) error {
	switch {
	case t == "":
		return errors.New("empty topic name")
	case t == "." || t == "..":
		return fmt.Errorf("%q is not a valid topic name", t)
	case len(t) > 249:
		return errors.New("topic names are at most 249 characters")
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q: topic names hold only ASCII letters, digits, '.', '_' and '-'", t)
		}
	}
	return nil
}

// PositionsComparable is true: within a partition, a later record has a larger offset.
func (s *Source) PositionsComparable() bool { return true }

// Grouped reports whether the source is a member of a consumer group, sharing the partitions with
// other processes running the pipeline.
func (s *Source) Grouped() bool { return s.group != "" }

var _ connector.MetadataHeaderSource = (*Source)(nil)

// OmitMetadataHeaders leaves out kafka_topic, kafka_partition and kafka_offset: the runtime calls
// it before Open when nothing in the pipeline reads headers (connector.MetadataHeaderSource).
func (s *Source) OmitMetadataHeaders() { s.headers = false }

// Open connects, checks the topics, and starts consuming: in a group, from the group's committed
// offsets; without one, after the given positions.
func (s *Source) Open(ctx context.Context, resume []connector.Position) error {
	s.dial = &dialWatch{}
	base, err := s.conn.clientOptions(s.log, s.dial)
	if err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	s.parts = map[topicPartition]*partState{}
	s.byName = map[string]*partState{}
	s.noCommit = map[topicPartition]bool{}
	s.ackSig = make(chan struct{})
	s.resume = map[string]int64{}
	for _, p := range resume {
		s.resume[p.Partition] = p.Offset
	}

	// Check the brokers and topics with a client that does not consume yet, so that a member
	// that cannot read does not join the group and make the others rebalance.
	probe, err := kgo.NewClient(base...)
	if err != nil {
		return &connector.ConfigError{Field: "brokers", Msg: err.Error()}
	}
	topics, err := s.check(ctx, probe)
	if err == nil && len(resume) > 0 {
		s.warnPastEnd(ctx, probe, topics)
	}
	probe.Close()
	if err != nil {
		return err
	}

	opts := append(slices.Clone(base), s.opts...)
	if s.group != "" {
		if s.pattern != "" {
			opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics(s.pattern))
		} else {
			opts = append(opts, kgo.ConsumeTopics(s.topics...))
		}
		opts = append(opts, kgo.ConsumeStartOffset(s.start))
		if len(resume) > 0 {
			s.log.Info("consumer group: partitions resume from the group's committed offsets; the local checkpoint serves only partitions the group has none for",
				"group", s.group, "checkpointed_partitions", len(resume))
		}
	} else {
		offsets := map[string]map[int32]kgo.Offset{}
		for _, t := range topics {
			offsets[t.name] = map[int32]kgo.Offset{}
			for _, p := range t.partitions {
				ps := s.stateLocked(t.name, p)
				ps.owned, ps.floor = true, 0
				off := s.start
				if o, ok := s.resume[ps.name]; ok {
					off = kgo.NewOffset().At(o + 1)
				}
				offsets[t.name][p] = off
			}
		}
		opts = append(opts, kgo.ConsumePartitions(offsets))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	s.cl, s.adm = cl, kadm.NewClient(cl)
	return nil
}

// warnPastEnd warns of each position to resume from that is at or past its partition's end: the
// topic was most likely deleted and created again, and its new records up to that offset would
// pass for delivered ones (exactly-once sinks skip them; without a group they are not read).
// Nothing is changed: a position past the end can also come from a checkpoint of another cluster.
func (s *Source) warnPastEnd(ctx context.Context, cl *kgo.Client, topics []topicInfo) {
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		names = append(names, t.name)
	}
	if len(names) == 0 {
		return
	}
	c, cancel := context.WithTimeout(ctx, s.conn.ConnectTimeout)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(c, names...)
	if err != nil {
		s.log.Debug("end offsets not listed; positions past a partition's end are not looked for", "err", err)
		return
	}
	ends.Each(func(o kadm.ListedOffset) {
		name := partitionName(o.Topic, o.Partition)
		at, ok := s.resume[name]
		if o.Err != nil || !ok || at < o.Offset {
			return
		}
		s.log.Warn("the position to resume from is past the partition's end: if the topic was created again, its records up to that offset "+
			"count as delivered (exactly-once sinks skip them); to read it from the start, reset the pipeline's checkpoint (sluice run --reset) "+
			"and drop the positions its exactly-once sinks store",
			"partition", name, "position", at, "end_offset", o.Offset)
	})
}

// check asks the brokers for the topics' metadata within connect_timeout and returns the topics
// to read (all those matching the pattern, with one).
func (s *Source) check(ctx context.Context, cl *kgo.Client) ([]topicInfo, error) {
	var md map[string]topicInfo
	if err := s.conn.await(ctx, "kafka source", s.dial, func(c context.Context) (err error) {
		md, err = topicMetadata(c, cl, s.topics)
		return err
	}); err != nil {
		return nil, err
	}
	var out []topicInfo
	if s.pattern != "" {
		re := regexp.MustCompile(s.pattern)
		for _, t := range md {
			if !t.internal && t.err == nil && re.MatchString(t.name) {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			if s.group == "" {
				return nil, fmt.Errorf("kafka source: no topic matches topic_pattern %s yet (without a group, the topics are listed once, when the source opens)", s.pattern)
			}
			s.log.Warn("no topic matches topic_pattern yet; the group reads matching topics once they are created", "topic_pattern", s.pattern)
		}
		return out, nil
	}
	var missing []string
	for _, name := range s.topics {
		t, ok := md[name]
		switch {
		case !ok || errors.Is(t.err, kerr.UnknownTopicOrPartition):
			missing = append(missing, name)
		case t.err != nil:
			return nil, s.conn.classify("kafka source", fmt.Errorf("topic %q: %w", name, t.err))
		default:
			out = append(out, t)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kafka source: topic %s does not exist on the brokers %s (create it, or correct topics): %w",
			strings.Join(quoteAll(missing), ", "), strings.Join(s.conn.Brokers, ","), connector.ErrPermanent)
	}
	return out, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

// partitionName is a partition's name in positions and logs: `topic/partition` (`prices/3`).
func partitionName(topic string, partition int32) string {
	return topic + "/" + strconv.Itoa(int(partition))
}

// stateLocked returns the state of a partition, creating it. s.mu is held (or Open runs alone).
func (s *Source) stateLocked(topic string, partition int32) *partState {
	k := topicPartition{topic, partition}
	if ps := s.parts[k]; ps != nil {
		return ps
	}
	name := partitionName(topic, partition)
	pt := name[len(topic)+1:]
	ps := &partState{name: name, topic: topic, partition: partition, topicBytes: []byte(topic), partBytes: []byte(pt),
		read: -1, floor: -1, acked: -1, committed: -1, drain: -1}
	s.parts[k] = ps
	s.byName[ps.name] = ps
	return ps
}

// Read returns up to max_poll_records of the records polled, polling when none are left, and
// waits until there is at least one.
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if recs := s.take(); len(recs) > 0 {
			return recs, nil
		}
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if s.holding() {
			// Held records are handed out once an ack ends the wait, with or without news from
			// the brokers.
			pctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
		}
		retry, err := s.poll(ctx, pctx)
		cancel()
		if err != nil {
			return nil, err
		}
		if retry {
			// Only errors the client retries by itself: give it a moment.
			t := time.NewTimer(250 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	}
}

// chunk is what one poll returned for one partition, not yet handed out.
type chunk struct {
	tp   topicPartition
	recs []*kgo.Record
}

// poll takes everything the client has buffered into the queue, so the client fetches the next
// records while these are converted and delivered (PollRecords with a small limit would leave the
// rest of a fetch buffered, and the client fetches again only once it is drained). In a group,
// rebalances wait until the records are queued (BlockRebalanceOnPoll); a revoke then drops the
// queued records of its partitions.
func (s *Source) poll(ctx, pctx context.Context) (retry bool, perr error) {
	fs := s.cl.PollFetches(pctx)
	defer s.cl.AllowRebalance()
	if fs.IsClientClosed() {
		return false, errors.New("kafka source: the client is closed")
	}
	for _, fe := range fs.Errors() {
		switch err := fe.Err; {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			if ctx.Err() != nil {
				perr = ctx.Err()
			}
		case isPermanentFetchErr(err):
			return false, s.conn.classify("kafka source", fmt.Errorf("%s/%d: %w", fe.Topic, fe.Partition, err))
		default:
			retry = true
			// The client retries lost connections, leader moves and group errors by itself; a
			// transient error here is news, not a reason to stop.
			s.warn("kafka source: fetch error; the client retries", "topic", fe.Topic, "partition", fe.Partition, "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			s.queue = append(s.queue, chunk{tp: topicPartition{p.Topic, p.Partition}, recs: p.Records})
			retry = false
		}
	})
	return retry, perr
}

// dropQueuedLocked forgets the queued records of the partitions. s.mu is held.
func (s *Source) dropQueuedLocked(parts map[string][]int32) {
	s.queue = slices.DeleteFunc(s.queue, func(c chunk) bool { return slices.Contains(parts[c.tp.topic], c.tp.partition) })
}

// isPermanentFetchErr reports the fetch errors retrying cannot fix.
func isPermanentFetchErr(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.Is(err, kerr.GroupAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
}

// take hands out up to max_poll_records queued records as connector records, noting per
// partition what was handed out. Headers and offset texts of the whole batch share three
// allocations.
//
// With stateful stages (an OnAssigned hook), the records of a partition owned again are held in
// the queue while records read from it in an earlier assignment are still in flight (lost, or
// revoked after revoke_timeout), and the hooks hear of the assignment just before its first
// record is handed out: so a stage sees every record of the earlier assignment before it
// restores the partition's state, and restores it at the first record of the new one.
func (s *Source) take() []connector.Record {
	recs, announce := s.takeLocked()
	s.notify(false, announce)
	return recs
}

// held reports whether the records of a partition owned again wait for those of an earlier
// assignment. s.mu is held.
func (s *Source) heldLocked(ps *partState, stateful bool) bool {
	return stateful && ps.drain >= 0 && ps.floor < 0
}

func (s *Source) takeLocked() ([]connector.Record, []string) {
	stateful := s.stateful()
	s.mu.Lock()
	defer s.mu.Unlock()
	n, nh, maxOff := 0, 0, int64(0)
	for _, c := range s.queue {
		ps := s.stateLocked(c.tp.topic, c.tp.partition)
		if !ps.owned || s.heldLocked(ps, stateful) {
			continue
		}
		k := min(len(c.recs), s.maxPoll-n)
		for _, r := range c.recs[:k] {
			nh += len(r.Headers)
		}
		if k > 0 {
			maxOff = max(maxOff, c.recs[k-1].Offset)
		}
		if n += k; n == s.maxPoll {
			break
		}
	}
	if n == 0 {
		if !stateful {
			s.queue = nil
		} else {
			s.queue = slices.DeleteFunc(s.queue, func(c chunk) bool { return !s.stateLocked(c.tp.topic, c.tp.partition).owned })
		}
		return nil, nil
	}
	if s.headers {
		nh += 3 * n
	}
	recs := make([]connector.Record, 0, n)
	hdrs := make([]connector.Header, 0, nh)
	var digits []byte
	if s.headers {
		digits = make([]byte, 0, n*len(strconv.AppendInt(make([]byte, 0, 20), maxOff, 10)))
	}
	var announce []string
	var kept []chunk // held chunks, in order
	for len(s.queue) > 0 && len(recs) < n {
		c := &s.queue[0]
		ps := s.stateLocked(c.tp.topic, c.tp.partition)
		if s.heldLocked(ps, stateful) && ps.owned {
			kept = append(kept, *c)
			s.queue[0] = chunk{}
			s.queue = s.queue[1:]
			continue
		}
		k := min(len(c.recs), n-len(recs))
		part := c.recs[:k]
		if c.recs = c.recs[k:]; len(c.recs) == 0 {
			s.queue[0] = chunk{}
			s.queue = s.queue[1:]
		}
		if !ps.owned {
			continue // not ours (any more): its owner reads these from the group's offsets
		}
		if ps.floor < 0 {
			ps.floor = part[0].Offset
			if ps.announce {
				ps.announce = false
				announce = append(announce, ps.name)
			}
		}
		ps.read = part[len(part)-1].Offset
		prev, prevDigits := int64(-2), []byte(nil)
		for _, r := range part {
			h0 := len(hdrs)
			if s.headers {
				d0 := len(digits)
				if r.Offset == prev+1 {
					digits = appendNext(digits, prevDigits)
				} else {
					digits = strconv.AppendInt(digits, r.Offset, 10)
				}
				prev, prevDigits = r.Offset, digits[d0:]
				// The metadata headers first, written into their slots.
				hdrs = slices.Grow(hdrs, 3)[:h0+3]
				hdrs[h0].Key, hdrs[h0].Value = HeaderTopic, ps.topicBytes
				hdrs[h0+1].Key, hdrs[h0+1].Value = HeaderPartition, ps.partBytes
				hdrs[h0+2].Key, hdrs[h0+2].Value = HeaderOffset, digits[d0:len(digits):len(digits)]
			}
			for _, h := range r.Headers {
				if !connector.IsReservedHeader(h.Key) {
					hdrs = append(hdrs, connector.Header{Key: h.Key, Value: h.Value})
				}
			}
			recs = recs[:len(recs)+1]
			rec := &recs[len(recs)-1]
			rec.Key, rec.Value, rec.Time = r.Key, r.Value, r.Timestamp
			rec.Position.Partition, rec.Position.Offset = ps.name, r.Offset
			if len(hdrs) > h0 {
				rec.Headers = hdrs[h0:len(hdrs):len(hdrs)]
			}
			r.Recycle() // its key, value and headers are the fetch's bytes, not the record's
		}
	}
	if len(kept) > 0 {
		s.queue = append(kept, s.queue...)
	}
	return recs, announce
}

// appendNext appends to dst the decimal text of one more than the number whose text is prev
// (non-negative, without leading zeros): consecutive offsets cost a copy, not a formatting.
func appendNext(dst, prev []byte) []byte {
	d0 := len(dst)
	dst = append(dst, prev...)
	for i := len(dst) - 1; i >= d0; i-- {
		if dst[i] != '9' {
			dst[i]++
			return dst
		}
		dst[i] = '0'
	}
	// All nines: 999 + 1 = 1000.
	dst = append(dst, '0')
	dst[d0] = '1'
	return dst
}

// recordPool lends franz-go the slices it decodes fetched records into, by size class, and takes
// them back once every record of a slice was converted and recycled: a source reading millions
// of records a second then does not allocate (and zero, and collect) a slice of records for every
// fetched batch.
type recordPool struct{ classes [24]sync.Pool }

func (p *recordPool) class(n int) int { return bits.Len(uint(max(n, 1) - 1)) }

// GetRecords returns a slice with capacity of at least n.
func (p *recordPool) GetRecords(n int) []kgo.Record {
	c := p.class(n)
	if c >= len(p.classes) {
		return make([]kgo.Record, 0, n)
	}
	if v, ok := p.classes[c].Get().(*[]kgo.Record); ok {
		return (*v)[:0]
	}
	return make([]kgo.Record, 0, 1<<c)
}

// PutRecords takes a slice back; franz-go has zeroed its records.
func (p *recordPool) PutRecords(recs []kgo.Record) {
	c := p.class(cap(recs))
	if c < len(p.classes) && cap(recs) == 1<<c {
		p.classes[c].Put(&recs)
	}
}

// holding reports whether queued records wait for an earlier assignment's acknowledgements.
func (s *Source) holding() bool {
	stateful := s.stateful()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.queue {
		if ps := s.parts[c.tp]; ps != nil && ps.owned && s.heldLocked(ps, stateful) {
			return true
		}
	}
	return false
}

// warn logs at most one warning every few seconds, counting the others.
func (s *Source) warn(msg string, args ...any) {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	if time.Since(s.warnedAt) < 5*time.Second {
		s.suppressed++
		return
	}
	if s.suppressed > 0 {
		args = append(args, "suppressed_since_last", s.suppressed)
	}
	s.warnedAt, s.suppressed = time.Now(), 0
	s.log.Warn(msg, args...)
}

// Ack commits, in a group, the offset after each acknowledged position of a partition this member
// owns. Without a group there is nothing to commit: the checkpoint store holds the positions.
func (s *Source) Ack(ctx context.Context, positions []connector.Position) error {
	if s.group == "" || s.cl == nil {
		return nil
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	var offsets map[string]map[int32]kgo.EpochOffset
	for _, p := range positions {
		ps := s.byName[p.Partition]
		if ps != nil && ps.drain >= 0 && p.Offset >= ps.drain && (!ps.owned || ps.floor < 0) {
			// The records of an earlier assignment are all delivered: those of a current
			// one may be handed out (take). None was handed out yet, so this ack is of the
			// earlier assignment.
			ps.drain = -1
		}
		// A partition read in an earlier assignment and owned again: its acknowledgement is
		// committed only once it is at or after what this assignment started from.
		if ps == nil || !ps.owned || ps.floor < 0 || p.Offset < ps.floor {
			continue
		}
		ps.acked = max(ps.acked, p.Offset)
		if p.Offset+1 > ps.committed {
			offsets = addOffset(offsets, ps, p.Offset+1)
		}
	}
	close(s.ackSig)
	s.ackSig = make(chan struct{})
	s.mu.Unlock()
	return s.commit(ctx, offsets)
}

func addOffset(m map[string]map[int32]kgo.EpochOffset, ps *partState, next int64) map[string]map[int32]kgo.EpochOffset {
	if m == nil {
		m = map[string]map[int32]kgo.EpochOffset{}
	}
	if m[ps.topic] == nil {
		m[ps.topic] = map[int32]kgo.EpochOffset{}
	}
	m[ps.topic][ps.partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
	return m
}

// commit commits offsets synchronously and records them as committed. s.commitMu is held.
func (s *Source) commit(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	var errs []error
	s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			// Nothing was committed (the request failed: a broker down, not in a group): none
			// of the offsets may count as committed, or Committed would let the state log's
			// committed versions be deleted.
			errs = append(errs, err)
			clear(offsets)
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err))
					delete(offsets[t.Topic], p.Partition)
				}
			}
		}
	})
	if len(errs) > 0 && len(offsets) == 0 {
		return fmt.Errorf("kafka source: commit offsets: %w", errors.Join(errs...))
	}
	s.mu.Lock()
	for t, ps := range offsets {
		for p, o := range ps {
			if st := s.parts[topicPartition{t, p}]; st != nil && o.Offset > st.committed {
				st.committed = o.Offset
			}
		}
	}
	s.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("kafka source: commit offsets: %w", errors.Join(errs...))
	}
	return nil
}

// onAssigned starts a new assignment of the partitions: nothing handed out or acknowledged yet.
func (s *Source) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropQueuedLocked(assigned) // anything queued predates this assignment's offsets
	var names []string
	for t, parts := range assigned {
		for _, p := range parts {
			ps := s.stateLocked(t, p)
			ps.owned, ps.read, ps.floor, ps.acked, ps.committed = true, -1, -1, -1, -1
			ps.announce = true // to the OnAssigned hooks, with its first record (take)
			names = append(names, ps.name)
		}
	}
	if len(assigned) > 0 {
		s.log.Info("partitions assigned", "group", s.group, "partitions", describe(assigned))
	}
}

// onOffsetsFetched notes the partitions the group has no committed offset for, and the committed
// offsets of the others.
func (s *Source) onOffsetsFetched(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	note := func(topic string, p int32, off int64) {
		k := topicPartition{topic, p}
		if off < 0 {
			s.noCommit[k] = true
			return
		}
		delete(s.noCommit, k)
		s.stateLocked(topic, p).committed = off
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			note(t.Topic, p.Partition, p.Offset)
		}
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				note(t.Topic, p.Partition, p.Offset)
			}
		}
	}
	return nil
}

// adjustOffsets starts a partition the group has no committed offset for after its local
// checkpoint, when there is one (rather than at start).
func (s *Source) adjustOffsets(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, parts := range offsets {
		for p := range parts {
			k := topicPartition{t, p}
			if !s.noCommit[k] {
				continue
			}
			if o, ok := s.resume[s.stateLocked(t, p).name]; ok {
				parts[p] = kgo.NewOffset().At(o + 1).WithEpoch(-1)
				s.log.Info("partition without a committed offset resumes after the local checkpoint", "partition", s.stateLocked(t, p).name, "offset", o+1)
			}
		}
	}
	return offsets, nil
}

// onRevoked lets partitions go: it waits, at most revoke_timeout, until every record read from
// them is acknowledged, commits that, and disowns them, so no commit for them starts afterwards.
func (s *Source) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if len(revoked) == 0 {
		return
	}
	s.mu.Lock()
	s.dropQueuedLocked(revoked)
	s.mu.Unlock()
	if waiting := s.awaitAcks(ctx, revoked); waiting != nil {
		s.log.Warn("revoke_timeout passed before the records read from revoked partitions were delivered; their new owner reads them again",
			"group", s.group, "partitions", waiting, "revoke_timeout", s.revokeTO)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	var offsets map[string]map[int32]kgo.EpochOffset
	var released []string
	for t, parts := range revoked {
		for _, p := range parts {
			ps := s.parts[topicPartition{t, p}]
			if ps == nil || !ps.owned {
				continue
			}
			if ps.acked >= 0 && ps.acked+1 > ps.committed {
				offsets = addOffset(offsets, ps, ps.acked+1)
			}
			s.disownLocked(ps)
			released = append(released, ps.name)
		}
	}
	s.mu.Unlock()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.revokeTO)
	defer cancel()
	if err := s.commit(cctx, offsets); err != nil {
		s.log.Warn("commit of revoked partitions failed; their new owner reads their last records again", "group", s.group, "err", err)
	}
	s.notify(true, released)
	s.log.Info("partitions revoked", "group", s.group, "partitions", describe(revoked))
}

// awaitAcks waits until every record handed out from the partitions is acknowledged, the
// source closes, or revoke_timeout passes. It returns the partitions still waiting, if any.
func (s *Source) awaitAcks(ctx context.Context, parts map[string][]int32) []string {
	timer := time.NewTimer(s.revokeTO)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var waiting []string
		for t, ps := range parts {
			for _, p := range ps {
				if st := s.parts[topicPartition{t, p}]; st != nil && st.owned && st.read > st.acked {
					waiting = append(waiting, fmt.Sprintf("%s (read %d, delivered %d)", st.name, st.read, st.acked))
				}
			}
		}
		sig, closing := s.ackSig, s.closing
		s.mu.Unlock()
		if len(waiting) == 0 || closing {
			return nil
		}
		select {
		case <-sig:
		case <-timer.C:
			return waiting
		case <-ctx.Done():
			return waiting
		}
	}
}

// onLost disowns partitions the group took away without a revoke (session expired, fenced):
// committing them could overwrite their new owner's commits.
func (s *Source) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	s.dropQueuedLocked(lost)
	var released []string
	for t, parts := range lost {
		for _, p := range parts {
			if ps := s.parts[topicPartition{t, p}]; ps != nil {
				if ps.owned {
					released = append(released, ps.name)
				}
				s.disownLocked(ps)
			}
		}
	}
	s.mu.Unlock()
	// Stateful stages drop the partitions' state and the records still in flight, and write
	// nothing more of them to the state log: the next owner restores the state of the offsets
	// the group committed and reads those records again.
	s.notify(true, released)
	if len(lost) > 0 {
		s.log.Warn("partitions lost (the group expelled this member); records read from them and not committed are read again by their next owner",
			"group", s.group, "partitions", describe(lost))
	}
}

// disownLocked ends the partition's assignment; records handed out and not acknowledged make
// a later assignment of it wait (take). s.mu is held.
func (s *Source) disownLocked(ps *partState) {
	if ps.owned && ps.read > ps.acked {
		ps.drain = max(ps.drain, ps.read)
	}
	ps.owned = false
}

func describe(m map[string][]int32) string {
	var parts []string
	for t, ps := range m {
		for _, p := range ps {
			parts = append(parts, partitionName(t, p))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// Backlog reports, per partition this member reads, the records after the last durable position
// up to the partition's end. In a group, partitions this member no longer owns report 0.
func (s *Source) Backlog(ctx context.Context, after []connector.Position) ([]connector.Backlog, error) {
	if s.cl == nil {
		return nil, errors.New("kafka source: not open")
	}
	s.mu.Lock()
	type want struct {
		ps   *partState
		next int64
	}
	var owned []want
	var out []connector.Backlog
	topicSet := map[string]bool{}
	for _, ps := range s.parts {
		if !ps.owned {
			out = append(out, connector.Backlog{Partition: ps.name, Records: 0, Bytes: -1})
			continue
		}
		owned = append(owned, want{ps: ps, next: ps.committed})
		topicSet[ps.topic] = true
	}
	s.mu.Unlock()
	if len(owned) == 0 {
		return out, nil
	}
	positions := map[string]int64{}
	for _, p := range after {
		positions[p.Partition] = p.Offset + 1
	}
	topics := make([]string, 0, len(topicSet))
	for t := range topicSet {
		topics = append(topics, t)
	}
	ends, err := s.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("kafka source: backlog: %w", err)
	}
	var starts kadm.ListedOffsets
	for _, w := range owned {
		next := max(w.next, positions[w.ps.name])
		if next <= 0 && s.startAt == "latest" {
			continue // nothing durable yet and starting at the end: no backlog to speak of
		}
		if next <= 0 && starts == nil {
			if starts, err = s.adm.ListStartOffsets(ctx, topics...); err != nil {
				return nil, fmt.Errorf("kafka source: backlog: %w", err)
			}
		}
		if next <= 0 {
			if o, ok := starts.Lookup(w.ps.topic, w.ps.partition); ok && o.Err == nil {
				next = o.Offset
			}
		}
		end, ok := ends.Lookup(w.ps.topic, w.ps.partition)
		if !ok || end.Err != nil {
			continue
		}
		out = append(out, connector.Backlog{Partition: w.ps.name, Records: max(0, end.Offset-next), Bytes: -1})
	}
	return out, nil
}

// Close leaves the group, committing what was acknowledged and not yet committed. It is
// idempotent and safe after a failed Open.
func (s *Source) Close(context.Context) error {
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	if s.cl == nil {
		return nil
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cl.Close() // in a group: leaves it, through onRevoked
	return nil
}
