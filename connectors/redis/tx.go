package redis

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// connIdle is how long WriteTx's connection may go unused before the next WriteTx opens another
// instead, with a read of the positions, rather than risk a first write on a connection the
// server closed for idleness.
const connIdle = 10 * time.Second

// maxConflicts bounds the transactions one WriteTx runs that find a position they read changed by
// another writer before their EXEC; past it the write fails (the runtime retries it with backoff).
const maxConflicts = 64

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

// SharesPositions reports that several processes of one pipeline may write this sink at once
// (connector.SharedPositions): WriteTx reads the positions under WATCH and leaves out, in the
// transaction it commits, what any of them stored.
func (s *Sink) SharesPositions() bool { return true }

// storedPosition is how one position is kept in the positions hash, under its partition.
type storedPosition struct {
	Offset int64  `json:"offset"`
	Cursor []byte `json:"cursor,omitempty"`
}

// StoredPositions reads the positions hash. It takes no hold of it: other processes of the
// pipeline may write it meanwhile.
func (s *Sink) StoredPositions(ctx context.Context) ([]connector.Position, error) {
	if s.client == nil {
		return nil, errors.New("redis: read positions before open")
	}
	h, err := s.client.HGetAll(ctx, s.posKey).Result()
	if err != nil {
		if redis.HasErrorPrefix(err, "WRONGTYPE") {
			return nil, s.notAHash()
		}
		return nil, fmt.Errorf("redis: read positions from %q: %w", s.posKey, err)
	}
	out := make([]connector.Position, 0, len(h))
	for part, v := range h {
		var sp storedPosition
		if err := json.Unmarshal([]byte(v), &sp); err != nil {
			return nil, s.notAPosition(part, v)
		}
		out = append(out, connector.Position{Partition: part, Offset: sp.Offset, Cursor: sp.Cursor})
	}
	if err := s.sawPositions(out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

func (s *Sink) notAHash() error {
	return fmt.Errorf("redis: positions_key %q holds a value that is not a hash: %w", s.posKey, connector.ErrPermanent)
}

func (s *Sink) notAPosition(part, v string) error {
	return fmt.Errorf("redis: positions_key %q, partition %q: %q is not a stored position: %w", s.posKey, part, v, connector.ErrPermanent)
}

// sawPositions checks positions read from the hash against the highest this sink has seen
// stored, and remembers them. Positions never move back, whichever process writes them; one that
// did means the server lost writes it had acknowledged, or someone changed the hash.
func (s *Sink) sawPositions(ps []connector.Position) error {
	if s.seen == nil {
		s.seen = map[string]int64{}
	}
	for _, p := range ps {
		if seen, ok := s.seen[p.Partition]; ok && p.Offset < seen {
			return s.movedBack(p.Partition, strconv.FormatInt(p.Offset, 10), seen)
		}
		s.seen[p.Partition] = p.Offset
	}
	return nil
}

func (s *Sink) movedBack(part, holds string, seen int64) error {
	return fmt.Errorf("redis: positions_key %q moved back: partition %q holds %s where offset %d was stored before; "+
		"the server lost writes it had acknowledged (a restart without appendfsync always, a failover to a replica that "+
		"lagged) or the hash was changed by hand; a restart of pipeline %q resumes from what Redis holds: %w",
		s.posKey, part, holds, seen, s.env.Pipeline, connector.ErrPermanent)
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

// txPart is one partition a WriteTx names, with what the positions hash holds for it.
type txPart struct {
	name   string
	vkey   string // its version key
	given  int    // index in positions of the greatest position given for it, -1 for none
	stored bool
	offset int64 // the stored offset, when stored
}

// txOutcome is how one attempt of a WriteTx ended, when it did not fail.
type txOutcome int

const (
	txDone     txOutcome = iota // committed, or nothing was left to commit
	txConflict                  // another writer changed the positions hash first: nothing ran
	txRequeue                   // records refused while queueing were set aside: nothing ran
)

// WriteTx writes the records and the positions in one MULTI/EXEC, safe against other processes
// of the pipeline writing the same positions hash (connector.SharedPositions).
//
// The sink writes on a connection of its own, on which each transaction's pipeline ends with a
// WATCH of the version keys of its partitions (<positions_key>:version:<partition>) and an HMGET
// of their positions, after the EXEC. The next WriteTx starts from those: it leaves out the
// records at or before the positions read, and sends the others in a MULTI/EXEC with an HSET of
// the positions that move forward and an MSET of their version keys; one round trip in the steady
// state. Partitions not read that way are first read under WATCH (one more round trip). When
// another writer stored one of the watched partitions since, EXEC runs nothing and the attempt
// starts over from what its pipeline read after the EXEC, up to maxConflicts times, from the
// second conflict on after a short random pause and a fresh read. Writers of different
// partitions do not abort each other.
//
// Inside an EXEC Redis runs every queued command even when one fails, so a record refused at run
// time (WRONGTYPE) is reported in a *connector.BatchError while the others and the positions are
// stored. A command refused while queueing (an ACL denial) aborts the whole transaction; its
// record is set aside and the transaction sent again without it. When the connection fails, the
// outcome is unknown; the sink drops the connection, and the retry reads the positions under
// WATCH on a new one and leaves out what the lost transaction stored, if it ran.
func (s *Sink) WriteTx(ctx context.Context, records []connector.Record, positions []connector.Position) error {
	if s.client == nil {
		return errors.New("redis: write before open")
	}
	cl, ok := s.client.(*redis.Client)
	if !ok {
		return fmt.Errorf("redis: exactly-once delivery needs a single node (addr): %w", connector.ErrPermanent)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.b.reset(ctx)
	defer s.b.done()
	s.txParts(records, positions)
	if len(s.b.cmds) == 0 && len(s.b.failed) == 0 && s.givenSeen(positions) {
		return nil // a stale write: everything it holds is stored already
	}
	s.b.keepAll()
	conflicts := 0
	for attempt := 0; ; attempt++ {
		out, err := s.attempt(ctx, cl, records, positions, attempt > 0)
		if err != nil {
			s.dropConn()
			return err
		}
		switch out {
		case txDone:
			s.txs++
			s.b.failed = slices.DeleteFunc(s.b.failed, func(f connector.RecordError) bool { return s.skip(&records[f.Index]) })
			return s.b.result()
		case txRequeue:
			s.b.dropFailed()
		case txConflict:
			s.conflicts++
			if conflicts++; conflicts >= maxConflicts {
				return fmt.Errorf("redis: positions_key %q: %d transactions in a row found a position changed by another "+
					"writer of pipeline %q before they committed", s.posKey, conflicts, s.env.Pipeline)
			}
			if conflicts > 1 {
				// What the failed EXEC's pipeline read again ages during the pause: read afresh after it.
				clear(s.carried)
				s.rewatch = true
				if err := pause(ctx, conflicts); err != nil {
					return err
				}
			}
		}
	}
}

// dropConn closes WriteTx's connection after an error: it may be broken, or hold a WATCH
// and positions read before a transaction whose outcome is unknown.
func (s *Sink) dropConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
	clear(s.carried)
	s.rewatch = false
}

// pause waits a random time growing with the conflicts so far, up to 5ms, so that writers that
// keep overtaking each other spread out.
func pause(ctx context.Context, conflicts int) error {
	d := time.Duration(rand.Int64N(int64(min(conflicts, 20)) * int64(250*time.Microsecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// txParts lists the partitions of the positions and of the records, and queues the commands of
// the records after what this sink has seen stored: positions never move back, so those before
// are left out by every attempt.
func (s *Sink) txParts(records []connector.Record, positions []connector.Position) {
	s.parts = s.parts[:0]
	clear(s.partIdx)
	if s.partIdx == nil {
		s.partIdx = map[string]int{}
	}
	part := func(name string) int {
		if i, ok := s.partIdx[name]; ok {
			return i
		}
		s.partIdx[name] = len(s.parts)
		s.parts = append(s.parts, txPart{name: name, vkey: s.versionKey(name), given: -1})
		return len(s.parts) - 1
	}
	for j, p := range positions {
		tp := &s.parts[part(p.Partition)]
		if tp.given < 0 || p.Offset > positions[tp.given].Offset {
			tp.given = j
		}
	}
	s.recPart = s.recPart[:0]
	last, lastIdx := "", -1
	var seen int64
	var wasSeen bool
	for i := range records {
		r := &records[i]
		if lastIdx < 0 || r.Position.Partition != last { // once per run of a partition's records
			last, lastIdx = r.Position.Partition, part(r.Position.Partition)
			seen, wasSeen = s.seen[last]
		}
		s.recPart = append(s.recPart, lastIdx)
		if wasSeen && r.Position.Offset <= seen {
			continue
		}
		s.b.add(i, r)
	}
}

// versionKey names the key a transaction that moves the position of part sets, and that the
// transactions reading it WATCH: <positions_key>:version:<partition>, holding the last offset
// stored. Watching the positions hash itself would abort a transaction whenever another process
// stored any partition, also one this transaction does not name.
func (s *Sink) versionKey(part string) string {
	if k, ok := s.vkeys[part]; ok {
		return k
	}
	if s.vkeys == nil {
		s.vkeys = map[string]string{}
	}
	k := s.posKey + ":version:" + part
	s.vkeys[part] = k
	return k
}

// givenSeen reports whether every position given is at or before what this sink has seen stored.
func (s *Sink) givenSeen(positions []connector.Position) bool {
	for _, p := range positions {
		if seen, ok := s.seen[p.Partition]; !ok || p.Offset > seen {
			return false
		}
	}
	return true
}

// skip reports whether the record is at or before the position stored for its partition, as the
// last attempt read it.
func (s *Sink) skip(r *connector.Record) bool {
	tp := &s.parts[s.partIdx[r.Position.Partition]]
	return tp.stored && r.Position.Offset <= tp.offset
}

// attempt runs one try of a WriteTx on the sink's own connection. The positions of partitions
// not carried over from the last transaction are read first, under WATCH of their version keys
// (one round trip). Then one pipeline sends the MULTI/EXEC of the records after the stored
// positions and of the positions that move forward, followed by a WATCH of the batch's version
// keys and an HMGET of their positions, which the next transaction (or this one's retry, when
// another writer got in first) starts from.
func (s *Sink) attempt(ctx context.Context, cl *redis.Client, records []connector.Record, positions []connector.Position, used bool) (txOutcome, error) {
	if s.conn != nil && time.Since(s.connUsed) > connIdle {
		s.dropConn() // a server's idle timeout may have closed it
	}
	if s.conn == nil {
		// Closed, it is discarded rather than returned to the pool with a WATCH armed.
		s.conn = cl.EphemeralConn()
	}
	s.connUsed = time.Now()
	if s.carried == nil {
		s.carried = map[string]carriedPos{}
	}
	var missing []int
	for i := range s.parts {
		if _, ok := s.carried[s.parts[i].name]; !ok {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		pipe := s.conn.Pipeline()
		if s.rewatch {
			_ = pipe.Process(ctx, redis.NewStatusCmd(ctx, "UNWATCH"))
		}
		watch, read := s.watchRead(ctx, missing)
		_ = pipe.Process(ctx, watch)
		_ = pipe.Process(ctx, read)
		if _, err := pipe.Exec(ctx); err != nil {
			if redis.HasErrorPrefix(read.Err(), "WRONGTYPE") {
				return 0, s.notAHash()
			}
			return 0, fmt.Errorf("redis: read positions from %q: %w", s.posKey, err)
		}
		s.rewatch = false
		if err := s.readStored(missing, read.Val()); err != nil {
			return 0, err
		}
	}
	for i := range s.parts {
		tp := &s.parts[i]
		c := s.carried[tp.name]
		tp.stored, tp.offset = c.stored, c.offset
	}

	// The records after the stored positions; commands sent by an earlier attempt hold its
	// replies and are made afresh.
	s.b.cmds, s.b.owner = s.b.cmds[:0], s.b.owner[:0]
	for k, c := range s.b.all {
		i := s.b.allOwner[k]
		if tp := &s.parts[s.recPart[i]]; tp.stored && records[i].Position.Offset <= tp.offset {
			continue
		}
		if used {
			c = redis.NewCmd(ctx, c.Args()...)
		}
		s.b.cmds = append(s.b.cmds, c)
		s.b.owner = append(s.b.owner, i)
	}
	// The positions that move forward, and their version keys. The last command succeeds only if
	// EXEC ran: the HSET, or with no position to store, a read of the key.
	var last, versions *redis.Cmd
	s.enc = s.enc[:0]
	hset := append(s.hsetArgs[:0], "HSET", s.posKey)
	mset := append(s.msetArgs[:0], "MSET")
	for i := range s.parts {
		tp := &s.parts[i]
		if tp.given < 0 || tp.stored && positions[tp.given].Offset <= tp.offset {
			continue
		}
		start := len(s.enc)
		s.enc = appendPosition(s.enc, positions[tp.given])
		hset = append(hset, tp.name, s.enc[start:len(s.enc):len(s.enc)])
		mset = append(mset, tp.vkey, positions[tp.given].Offset)
	}
	s.hsetArgs, s.msetArgs = hset, mset
	switch {
	case len(hset) > 2:
		last, versions = redis.NewCmd(ctx, hset...), redis.NewCmd(ctx, mset...)
	case len(s.b.cmds) > 0:
		last = redis.NewCmd(ctx, "EXISTS", s.posKey)
	default:
		// Everything is stored already. The WATCH stays: the positions read under it can only
		// have moved forward since.
		return txDone, nil
	}

	multi, exec := redis.NewStatusCmd(ctx, "MULTI"), redis.NewSliceCmd(ctx, "EXEC")
	all := make([]int, len(s.parts))
	for i := range all {
		all[i] = i
	}
	watch, read := s.watchRead(ctx, all)
	pipe := s.conn.Pipeline()
	_ = pipe.Process(ctx, multi)
	_ = pipe.BatchProcess(ctx, s.b.cmds...)
	if versions != nil {
		_ = pipe.Process(ctx, versions)
	}
	_ = pipe.Process(ctx, last)
	_ = pipe.Process(ctx, exec)
	_ = pipe.Process(ctx, watch)
	_ = pipe.Process(ctx, read)
	_, _ = pipe.Exec(ctx)
	clear(s.carried)
	execErr := exec.Err()
	switch {
	case multi.Err() != nil:
		return 0, fmt.Errorf("redis: transaction: %w", multi.Err())
	case execErr == nil:
		// EXEC ran and stored the positions: the refusals are the records' own.
		replies := exec.Val()
		want := len(s.b.cmds) + 1
		if versions != nil {
			want++
		}
		if len(replies) != want {
			return 0, fmt.Errorf("redis: transaction: EXEC answered %d replies for %d commands", len(replies), want)
		}
		for k, c := range s.b.cmds {
			if err, ok := replies[k].(error); ok {
				c.SetErr(err)
			}
		}
		if err, ok := replies[want-1].(error); ok {
			if redis.HasErrorPrefix(err, "WRONGTYPE") {
				return 0, s.notAHash()
			}
			return 0, fmt.Errorf("redis: store positions in %q: %w", s.posKey, err)
		}
		_ = s.b.collect(true)
		for i := range s.parts {
			if tp := &s.parts[i]; tp.given >= 0 && (!tp.stored || positions[tp.given].Offset > tp.offset) {
				s.seen[tp.name] = positions[tp.given].Offset
			}
		}
		if err := s.carry(all, read); err != nil {
			return 0, err
		}
		return txDone, nil
	case errors.Is(execErr, redis.Nil):
		// Another writer stored one of these partitions first: nothing ran.
		if err := s.carry(all, read); err != nil {
			return 0, err
		}
		return txConflict, nil
	case redis.HasErrorPrefix(execErr, "EXECABORT") && s.b.dropQueueRefused():
		if err := s.carry(all, read); err != nil {
			return 0, err
		}
		return txRequeue, nil
	}
	return 0, fmt.Errorf("redis: transaction: %w", execErr)
}

// carriedPos is a position read under a WATCH that is still armed on the sink's connection.
type carriedPos struct {
	stored bool
	offset int64
}

// watchRead builds the WATCH of the version keys of the partitions parts[idx] and the HMGET of
// their positions.
func (s *Sink) watchRead(ctx context.Context, idx []int) (*redis.StatusCmd, *redis.SliceCmd) {
	wargs := make([]any, 0, 1+len(idx))
	wargs = append(wargs, "WATCH")
	args := make([]any, 0, 2+len(idx))
	args = append(args, "HMGET", s.posKey)
	for _, i := range idx {
		wargs = append(wargs, s.parts[i].vkey)
		args = append(args, s.parts[i].name)
	}
	return redis.NewStatusCmd(ctx, wargs...), redis.NewSliceCmd(ctx, args...)
}

// carry keeps what the WATCH and HMGET sent after an EXEC read, for the next attempt.
func (s *Sink) carry(idx []int, read *redis.SliceCmd) error {
	if err := read.Err(); err != nil {
		if redis.HasErrorPrefix(err, "WRONGTYPE") {
			return s.notAHash()
		}
		return fmt.Errorf("redis: read positions from %q: %w", s.posKey, err)
	}
	return s.readStored(idx, read.Val())
}

// readStored takes the HMGET reply of the partitions parts[idx] into s.carried, checking that no
// position moved back from what this sink has seen.
func (s *Sink) readStored(idx []int, vals []any) error {
	if len(vals) != len(idx) {
		return fmt.Errorf("redis: read positions from %q: %d values for %d partitions", s.posKey, len(vals), len(idx))
	}
	if s.seen == nil {
		s.seen = map[string]int64{}
	}
	for k, v := range vals {
		name := s.parts[idx[k]].name
		seen, wasSeen := s.seen[name]
		str, ok := v.(string)
		if !ok {
			if wasSeen {
				return s.movedBack(name, "nothing", seen)
			}
			s.carried[name] = carriedPos{}
			continue
		}
		var sp storedPosition
		if err := json.Unmarshal([]byte(str), &sp); err != nil {
			return s.notAPosition(name, str)
		}
		if wasSeen && sp.Offset < seen {
			return s.movedBack(name, strconv.FormatInt(sp.Offset, 10), seen)
		}
		s.carried[name] = carriedPos{stored: true, offset: sp.Offset}
		s.seen[name] = sp.Offset
	}
	return nil
}
