package redis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

// expireScript runs a write and sets the key's expiry in one step, so that a refused write
// (WRONGTYPE) does not expire a key it did not write. ARGV: command, ttl in ms, its arguments.
const expireScript = "local r = redis.call(ARGV[1], KEYS[1], unpack(ARGV, 3)) redis.call('PEXPIRE', KEYS[1], ARGV[2]) return r"

// batch turns the records of one write into Redis commands, one per record, and sorts the
// replies into written and refused records. Its buffers are reused from write to write.
type batch struct {
	w      *writer
	ctx    context.Context
	arena  []byte // rendered keys, members and fields; the commands' arguments point into it
	args   []any
	cmds   []redis.Cmder
	owner  []int // record index of each command
	failed []connector.RecordError
	// all and allOwner hold every command of a WriteTx, of which each attempt sends some in cmds.
	all      []redis.Cmder
	allOwner []int
}

func (b *batch) reset(ctx context.Context) {
	b.ctx = ctx
	b.arena, b.args, b.cmds, b.owner, b.failed = b.arena[:0], b.args[:0], b.cmds[:0], b.owner[:0], b.failed[:0]
}

// done drops the references the commands hold to the records, which the runtime may release
// once the write returns, and buffers grown by an unusually large batch.
func (b *batch) done() {
	clear(b.args)
	clear(b.cmds)
	clear(b.all)
	b.all, b.allOwner = b.all[:0], b.allOwner[:0]
	b.ctx = nil
	if cap(b.arena) > 16<<20 {
		b.arena = nil
	}
	if cap(b.args) > 1<<20 {
		b.args, b.cmds, b.owner, b.all, b.allOwner = nil, nil, nil, nil, nil
	}
}

// keepAll moves the queued commands to all, for WriteTx's attempts to choose from.
func (b *batch) keepAll() {
	b.all, b.cmds = b.cmds, b.all[:0]
	b.allOwner, b.owner = b.owner, b.allOwner[:0]
}

// dropFailed removes from all the commands of records that failed, after an attempt set some
// aside (dropQueueRefused).
func (b *batch) dropFailed() {
	failed := make(map[int]bool, len(b.failed))
	for _, f := range b.failed {
		failed[f.Index] = true
	}
	all, owner := b.all[:0], b.allOwner[:0]
	for k, c := range b.all {
		if !failed[b.allOwner[k]] {
			all = append(all, c)
			owner = append(owner, b.allOwner[k])
		}
	}
	clear(b.all[len(all):])
	b.all, b.allOwner = all, owner
}

func (b *batch) fail(i int, err error) {
	b.failed = append(b.failed, connector.RecordError{Index: i, Err: err})
}

// render appends the template's rendering of r to the arena and returns it.
func (b *batch) render(t *template.Template, r *connector.Record) ([]byte, error) {
	start := len(b.arena)
	out, err := t.Append(b.arena, r)
	if err != nil {
		b.arena = out[:start]
		return nil, err
	}
	b.arena = out
	return out[start:len(out):len(out)], nil
}

// target is the record's key, stream or channel as a command argument.
func (b *batch) target(r *connector.Record) (any, error) {
	if s, ok := b.w.target.Static(); ok {
		return s, nil
	}
	k, err := b.render(b.w.target, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", modeTarget[b.w.mode], err)
	}
	if len(k) == 0 {
		return nil, fmt.Errorf("%s: renders to an empty name", modeTarget[b.w.mode])
	}
	return k, nil
}

// add queues the command of record i, or records why it has none.
func (b *batch) add(i int, r *connector.Record) {
	key, err := b.target(r)
	if err != nil {
		b.fail(i, err)
		return
	}
	start := len(b.args)
	w := b.w
	if w.scripted() {
		b.args = append(b.args, "EVAL", expireScript, 1, key, w.command, w.ttlMS)
	} else {
		b.args = append(b.args, w.command, key)
	}
	switch w.mode {
	case modeStream:
		err = b.streamArgs(r)
	case modeHash:
		err = b.objectArgs(r)
	case modeString:
		b.args = append(b.args, r.Value)
		if w.ttl > 0 {
			b.args = append(b.args, "PX", w.ttlMS)
		}
	case modeZset:
		err = b.zsetArgs(r)
	case modePublish:
		b.args = append(b.args, r.Value)
	}
	if err != nil {
		b.args = b.args[:start]
		b.fail(i, err)
		return
	}
	b.cmds = append(b.cmds, redis.NewCmd(b.ctx, b.args[start:len(b.args):len(b.args)]...))
	b.owner = append(b.owner, i)
}

func (b *batch) streamArgs(r *connector.Record) error {
	if b.w.maxLen > 0 {
		if b.w.approx {
			b.args = append(b.args, "MAXLEN", "~", b.w.maxLen)
		} else {
			b.args = append(b.args, "MAXLEN", b.w.maxLen)
		}
	}
	b.args = append(b.args, "*")
	if !b.w.objectVal {
		b.args = append(b.args, b.w.valueField, r.Value)
		return nil
	}
	return b.objectArgs(r)
}

// objectArgs appends the fields of the JSON object value as name, value pairs.
func (b *batch) objectArgs(r *connector.Record) error {
	arena, err := appendFields(b.arena, r.Value, func(name, val []byte) {
		b.args = append(b.args, name, val)
	})
	b.arena = arena
	return err
}

func (b *batch) zsetArgs(r *connector.Record) error {
	score, err := b.score(r)
	if err != nil {
		return err
	}
	b.args = append(b.args, score)
	if b.w.member == nil {
		b.args = append(b.args, r.Value)
		return nil
	}
	m, err := b.render(b.w.member, r)
	if err != nil {
		return fmt.Errorf("member: %w", err)
	}
	b.args = append(b.args, m)
	return nil
}

// score reads the zset score of the record.
func (b *batch) score(r *connector.Record) (float64, error) {
	var text string
	if b.w.scoreTmpl != nil {
		s, err := b.w.scoreTmpl.Render(r)
		if err != nil {
			return 0, fmt.Errorf("score: %w", err)
		}
		text = s
	} else {
		raw, ok, err := template.Lookup(r.Value, b.w.score)
		if err != nil {
			return 0, fmt.Errorf("score: %w", err)
		}
		if !ok {
			return 0, fmt.Errorf("score: field %s missing in value", strings.Join(b.w.score, "."))
		}
		text = string(raw)
		if len(raw) > 1 && raw[0] == '"' {
			text = string(raw[1 : len(raw)-1])
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	if err != nil || math.IsNaN(f) {
		return 0, fmt.Errorf("score: %.40q is not a number", text)
	}
	return f, nil
}

// collect sorts the replies after a failed Exec: a command refused for its record's own reason
// fails that record; any other error (connection, server state) is returned, failing the write.
// With inTx the transaction ran, so every refusal is the record's.
func (b *batch) collect(inTx bool) error {
	for k, c := range b.cmds {
		err := c.Err()
		if err == nil {
			continue
		}
		if !inTx && !recordError(err) {
			return err
		}
		b.fail(b.owner[k], fmt.Errorf("redis refused %s: %w", b.w.command, err))
	}
	return nil
}

// dropQueueRefused handles a transaction aborted because commands were refused while queueing
// (EXECABORT): the records of the commands refused for their own reason fail, and the other
// commands are queued afresh for another attempt. It reports whether any record was dropped.
func (b *batch) dropQueueRefused() bool {
	dropped := false
	cmds, owner := b.cmds[:0], b.owner[:0]
	for k, c := range b.cmds {
		err := c.Err()
		if err != nil && !redis.HasErrorPrefix(err, "EXECABORT") && recordError(err) {
			b.fail(b.owner[k], fmt.Errorf("redis refused %s: %w", b.w.command, err))
			dropped = true
			continue
		}
		cmds = append(cmds, redis.NewCmd(b.ctx, c.Args()...))
		owner = append(owner, b.owner[k])
	}
	b.cmds, b.owner = cmds, owner
	return dropped
}

// result is the write's outcome once the commands ran: nil, or the failed records.
func (b *batch) result() error {
	if len(b.failed) == 0 {
		return nil
	}
	sortFailed(b.failed)
	return &connector.BatchError{Failed: append([]connector.RecordError(nil), b.failed...)}
}
