package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// The source's state log (connector.StateLogSource): in a consumer group, the aggregate stages
// of a pipeline keep each partition's state in a compacted topic, so that it follows the
// partition to the member the group gives it to. The topic is named
// sluice.GROUP.NAME.state, created compacted when missing with as many partitions as the
// source's first topic; the entries of source partition N go to its partition N modulo that
// count (another topic's partition, or a pattern's, by a hash of its name).

var (
	_ connector.StateLogSource    = (*Source)(nil)
	_ connector.PartitionReleaser = (*Source)(nil)
)

// OnAssigned registers f, called with the names of the partitions of each assignment, when the
// first record of the assignment is handed out (so after every record read from the partitions
// in an earlier assignment was acknowledged: see take).
func (s *Source) OnAssigned(f func(partitions []string)) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.assignedHooks = append(s.assignedHooks, f)
}

// OnReleased registers f, called with the names of partitions revoked (once their records were
// delivered, or revoke_timeout passed) or lost.
func (s *Source) OnReleased(f func(partitions []string)) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.releasedHooks = append(s.releasedHooks, f)
}

// stateful reports whether stages keep state of the partitions (an OnAssigned hook).
func (s *Source) stateful() bool {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	return len(s.assignedHooks) > 0
}

// notify calls hooks with names, unless there are none.
func (s *Source) notify(released bool, names []string) {
	if len(names) == 0 {
		return
	}
	s.hookMu.Lock()
	hooks := s.assignedHooks
	if released {
		hooks = s.releasedHooks
	}
	s.hookMu.Unlock()
	for _, f := range hooks {
		f(names)
	}
}

// Committed returns the last offset of a partition this member knows the group committed.
func (s *Source) Committed(partition string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.byName[partition]
	if ps == nil || ps.committed <= 0 {
		return 0, false
	}
	return ps.committed - 1, true
}

// StateLog opens the state log named name; without a group there is none (ok false).
func (s *Source) StateLog(ctx context.Context, name string) (connector.StateLog, bool, error) {
	if s.group == "" {
		return nil, false, nil
	}
	return &stateLog{src: s, topic: stateTopic(s.group, name)}, true, nil
}

// stateTopic is a valid topic name for the state log of group and name.
func stateTopic(group, name string) string {
	clean := func(v string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
				return r
			}
			return '_'
		}, v)
	}
	t := "sluice." + clean(group) + "." + clean(name) + ".state"
	if len(t) > 249 {
		h := fnv.New64a()
		h.Write([]byte(t))
		t = t[:232] + "." + strconv.FormatUint(h.Sum64(), 16)
	}
	return t
}

type stateLog struct {
	src   *Source
	topic string

	mu    sync.Mutex
	cl    *kgo.Client
	adm   *kadm.Client
	parts int32
}

// client connects and makes sure the topic exists, on first use.
func (l *stateLog) client(ctx context.Context) (*kgo.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cl != nil && l.parts > 0 {
		return l.cl, nil
	}
	if l.cl == nil {
		base, err := l.src.conn.clientOptions(l.src.log, &dialWatch{})
		if err != nil {
			return nil, fmt.Errorf("state log: %w", err)
		}
		cl, err := kgo.NewClient(append(base,
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(0),
		)...)
		if err != nil {
			return nil, fmt.Errorf("state log: %w", err)
		}
		l.cl, l.adm = cl, kadm.NewClient(cl)
	}
	n, err := l.ensureTopic(ctx)
	if err != nil {
		return nil, err
	}
	l.parts = n
	return l.cl, nil
}

// ensureTopic creates the topic when missing and returns its partition count.
func (l *stateLog) ensureTopic(ctx context.Context) (int32, error) {
	details, err := l.adm.ListTopics(ctx, l.topic)
	if err != nil {
		return 0, fmt.Errorf("state log: list topic %s: %w", l.topic, err)
	}
	if d, ok := details[l.topic]; ok && d.Err == nil {
		return int32(len(d.Partitions)), nil
	}
	parts := int32(1)
	if len(l.src.topics) > 0 {
		src, err := l.adm.ListTopics(ctx, l.src.topics[0])
		if err == nil {
			if d, ok := src[l.src.topics[0]]; ok && d.Err == nil && len(d.Partitions) > 0 {
				parts = int32(len(d.Partitions))
			}
		}
	}
	resp, err := l.adm.CreateTopic(ctx, parts, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, l.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, fmt.Errorf("state log: create topic %s: %w", l.topic, err)
	}
	// Wait until the new topic's partitions have leaders.
	deadline := time.Now().Add(30 * time.Second)
	for {
		details, err := l.adm.ListTopics(ctx, l.topic)
		if err == nil {
			if d, ok := details[l.topic]; ok && d.Err == nil && len(d.Partitions) > 0 {
				ready := true
				for _, p := range d.Partitions {
					ready = ready && p.Leader >= 0
				}
				if ready {
					return int32(len(d.Partitions)), nil
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("state log: topic %s has no leaders yet", l.topic)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// partitionOf maps a source partition ("topic/3") to a partition of the log.
func (l *stateLog) partitionOf(name string) int32 {
	if i := strings.LastIndexByte(name, '/'); i >= 0 && len(l.src.topics) > 0 && name[:i] == l.src.topics[0] {
		if n, err := strconv.Atoi(name[i+1:]); err == nil && n >= 0 {
			return int32(n) % l.parts
		}
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32() % uint32(l.parts))
}

func entryKey(e connector.StateEntry) []byte {
	k := make([]byte, 0, len(e.Partition)+1+len(e.Key))
	k = append(k, e.Partition...)
	k = append(k, 0)
	return append(k, e.Key...)
}

// Append produces the entries and waits until every one is acknowledged by all in-sync replicas.
func (l *stateLog) Append(ctx context.Context, entries []connector.StateEntry) error {
	cl, err := l.client(ctx)
	if err != nil {
		return err
	}
	recs := make([]*kgo.Record, len(entries))
	for i, e := range entries {
		recs[i] = &kgo.Record{Topic: l.topic, Partition: l.partitionOf(e.Partition), Key: entryKey(e), Value: e.Value}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("state log %s: %w", l.topic, err)
	}
	return nil
}

// Read returns the entries of a source partition, from the start of the log to its end when
// called.
func (l *stateLog) Read(ctx context.Context, partition string) ([]connector.StateEntry, error) {
	if _, err := l.client(ctx); err != nil {
		return nil, err
	}
	p := l.partitionOf(partition)
	ends, err := l.adm.ListEndOffsets(ctx, l.topic)
	if err != nil {
		return nil, fmt.Errorf("state log %s: end offsets: %w", l.topic, err)
	}
	end, ok := ends.Lookup(l.topic, p)
	if !ok || end.Err != nil {
		return nil, fmt.Errorf("state log %s: no end offset for partition %d", l.topic, p)
	}
	if end.Offset == 0 {
		return nil, nil
	}
	base, err := l.src.conn.clientOptions(l.src.log, &dialWatch{})
	if err != nil {
		return nil, err
	}
	rd, err := kgo.NewClient(append(base, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{l.topic: {p: kgo.NewOffset().AtStart()}}))...)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	prefix := append([]byte(partition), 0)
	var out []connector.StateEntry
	for {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return nil, fmt.Errorf("state log %s: read: %w", l.topic, errs[0].Err)
		}
		last := int64(-1)
		fs.EachRecord(func(r *kgo.Record) {
			last = max(last, r.Offset)
			if bytes.HasPrefix(r.Key, prefix) {
				out = append(out, connector.StateEntry{Partition: partition, Key: r.Key[len(prefix):], Value: r.Value})
			}
		})
		if last >= end.Offset-1 {
			return out, nil
		}
	}
}

func (l *stateLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cl != nil {
		l.cl.Close()
		l.cl = nil
	}
	return nil
}
