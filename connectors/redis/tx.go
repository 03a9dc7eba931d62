package redis

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// CheckExactlyOnce refuses the configurations that cannot be written exactly once: publish mode
// (a published message cannot be taken back) and a cluster (a transaction cannot span slots).
func (s *Sink) CheckExactlyOnce() error {
	switch {
	case s.cfg.Mode == modePublish:
		return &connector.ConfigError{Field: "mode", Msg: "publish cannot be exactly once: a published message is not stored and cannot be taken back",
			Hint: "use mode stream for exactly-once delivery, or delivery: at_least_once"}
	case s.cfg.isCluster():
		field := "cluster"
		if len(s.cfg.Addrs) > 1 {
			field = "addrs"
		}
		return &connector.ConfigError{Field: field, Msg: "a Redis Cluster cannot be written exactly once: a MULTI/EXEC transaction cannot span hash slots",
			Hint: "write to a single node (addr), or use delivery: at_least_once"}
	}
	return nil
}

// storedPosition is how one position is kept in the positions hash, under its partition.
type storedPosition struct {
	Offset int64  `json:"offset"`
	Cursor []byte `json:"cursor,omitempty"`
}

// StoredPositions reads the positions hash.
func (s *Sink) StoredPositions(ctx context.Context) ([]connector.Position, error) {
	m, err := s.readPositions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]connector.Position, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

func (s *Sink) readPositions(ctx context.Context) (map[string]connector.Position, error) {
	if s.client == nil {
		return nil, errors.New("redis: read positions before open")
	}
	h, err := s.client.HGetAll(ctx, s.posKey).Result()
	if err == nil {
		s.known = h
	}
	if err != nil {
		if redis.HasErrorPrefix(err, "WRONGTYPE") {
			return nil, fmt.Errorf("redis: positions_key %q holds a value that is not a hash: %w", s.posKey, connector.ErrPermanent)
		}
		return nil, fmt.Errorf("redis: read positions from %q: %w", s.posKey, err)
	}
	out := make(map[string]connector.Position, len(h))
	for part, v := range h {
		var sp storedPosition
		if err := json.Unmarshal([]byte(v), &sp); err != nil {
			return nil, fmt.Errorf("redis: positions_key %q, partition %q: %q is not a stored position: %w", s.posKey, part, v, connector.ErrPermanent)
		}
		out[part] = connector.Position{Partition: part, Offset: sp.Offset, Cursor: sp.Cursor}
	}
	return out, nil
}

// appendPosition encodes p as storedPosition's JSON.
func appendPosition(dst []byte, p connector.Position) []byte {
	dst = append(dst, `{"offset":`...)
	dst = strconv.AppendInt(dst, p.Offset, 10)
	if len(p.Cursor) > 0 {
		dst = append(dst, `,"cursor":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, p.Cursor)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// WriteTx writes the records and the positions in one MULTI/EXEC.
//
// Inside an EXEC Redis runs every queued command even when one fails, so a record refused at run
// time (WRONGTYPE) is reported in a *connector.BatchError while the others and the positions are
// stored. A command refused while queueing (an ACL denial) aborts the whole transaction; its
// record is set aside and the transaction sent again without it. When the connection fails, the
// outcome is unknown; the next WriteTx reads the stored positions and skips the records they
// cover, so a retry after a lost EXEC reply does not write twice.
func (s *Sink) WriteTx(ctx context.Context, records []connector.Record, positions []connector.Position) error {
	if s.client == nil {
		return errors.New("redis: write before open")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var stored map[string]connector.Position
	if s.uncertain {
		m, err := s.readPositions(ctx)
		if err != nil {
			return err
		}
		stored, s.uncertain = m, false
	}
	s.b.reset(ctx)
	defer s.b.done()
	for i := range records {
		if p, ok := stored[records[i].Position.Partition]; ok && records[i].Position.Offset <= p.Offset {
			continue // written by the transaction whose reply was lost
		}
		s.b.add(i, &records[i])
	}
	for {
		retry, err := s.execTx(ctx, positions)
		if err != nil {
			return err
		}
		if !retry {
			return s.b.result()
		}
	}
}

// execTx runs the queued commands and the positions in one transaction. It reports retry when
// the transaction was aborted for records refused while queueing, which it removed.
func (s *Sink) execTx(ctx context.Context, positions []connector.Position) (retry bool, err error) {
	// The last command, the positions' HSET (or, with none, a read of the key), succeeds only if
	// EXEC ran. The first reads the positions as the transaction finds them, to catch another
	// writer of the same pipeline and sink.
	last := redis.NewCmd(ctx, "EXISTS", s.posKey)
	var check *redis.Cmd
	if len(positions) > 0 {
		var enc []byte
		args := make([]any, 0, 2+2*len(positions))
		args = append(args, "HSET", s.posKey)
		for _, p := range positions {
			start := len(enc)
			enc = appendPosition(enc, p)
			args = append(args, p.Partition, enc[start:len(enc):len(enc)])
		}
		last = redis.NewCmd(ctx, args...)
		if s.known != nil {
			args := []any{"HMGET", s.posKey}
			for _, p := range positions {
				args = append(args, p.Partition)
			}
			check = redis.NewCmd(ctx, args...)
		}
	}
	pipe := s.client.TxPipeline()
	if check != nil {
		_ = pipe.Process(ctx, check)
	}
	_ = pipe.BatchProcess(ctx, s.b.cmds...)
	_ = pipe.Process(ctx, last)
	_, execErr := pipe.Exec(ctx)
	lastErr := last.Err()
	var rerr redis.Error
	switch {
	case execErr == nil || lastErr == nil:
		// EXEC ran and stored the positions: the refusals are the records' own.
		if execErr != nil {
			_ = s.b.collect(true)
		}
		return false, s.stored(check, positions, last.Args())
	case redis.HasErrorPrefix(lastErr, "WRONGTYPE"):
		return false, fmt.Errorf("redis: positions_key %q holds a value that is not a hash: %w", s.posKey, connector.ErrPermanent)
	case redis.HasErrorPrefix(execErr, "EXECABORT") && s.b.dropQueueRefused():
		return true, nil
	case errors.As(execErr, &rerr):
		return false, fmt.Errorf("redis: transaction: %w", execErr)
	}
	s.uncertain = true
	return false, fmt.Errorf("redis: transaction: %w", execErr)
}

// stored compares the positions the transaction found (check's reply) with those this sink
// stored last, and remembers the ones it stored now (the HSET's arguments).
func (s *Sink) stored(check *redis.Cmd, positions []connector.Position, hset []any) error {
	if len(positions) == 0 {
		return nil
	}
	var changed error
	if check != nil {
		found, _ := check.Slice()
		for i, p := range positions {
			var got, want any
			if i < len(found) {
				got = found[i]
			}
			if v, ok := s.known[p.Partition]; ok {
				want = v
			}
			if got != want && changed == nil {
				changed = fmt.Errorf("redis: positions_key %q changed under this sink: partition %q holds %v where this sink stored %v; "+
					"either another process is running pipeline %q, or the server lost writes it had acknowledged (a restart without "+
					"appendfsync always, a failover to a replica that lagged); a restart of the pipeline resumes from what Redis holds: %w",
					s.posKey, p.Partition, got, want, s.env.Pipeline, connector.ErrPermanent)
			}
		}
	}
	if s.known == nil {
		s.known = map[string]string{}
	}
	for i := 2; i+1 < len(hset); i += 2 {
		s.known[hset[i].(string)] = string(hset[i+1].([]byte))
	}
	return changed
}
