package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// eoState is the sink's side of exactly-once delivery. Several sinks of one pipeline, in one
// process or several, may write the same positions at once: each transaction locks the positions
// rows of its partitions, skips the records at or before them, and moves them forward only.
type eoState struct {
	// ready is set once the positions table is known to exist.
	ready bool
	// stored holds, by partition, the offsets stored when the last transaction locked them (the
	// partitions it inserted are absent): the records at or before them are another write's.
	stored map[string]int64
	// parts and fresh are scratch space: the partitions a transaction locks, sorted, and those
	// among them it inserted.
	parts, fresh []string
}

var _ connector.SharedPositions = (*Sink)(nil)

// CheckExactlyOnce reports that the sink can be written exactly once, in every mode and layout.
func (s *Sink) CheckExactlyOnce() error { return nil }

// SharesPositions reports that several processes of one pipeline may write this sink's
// positions at once (the processes of a consumer group), in every mode and layout.
func (s *Sink) SharesPositions() bool { return true }

// WriteTx writes the records and the positions in one transaction. It locks the positions rows
// of the batch's partitions first, leaves out the records at or before the offsets stored there
// (by any process), and stores per partition the greater of the stored and the given offset.
// It retries a transaction the server ended to resolve a deadlock a few times itself.
func (s *Sink) WriteTx(ctx context.Context, records []connector.Record, positions []connector.Position) error {
	return s.write(ctx, records, positions, true)
}

// StoredPositions creates the positions table when missing and returns the positions of this
// pipeline's sink. It takes no lock: each WriteTx locks the rows it moves.
func (s *Sink) StoredPositions(ctx context.Context) ([]connector.Position, error) {
	if s.conn == nil || s.conn.IsClosed() {
		if err := s.connect(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.createPositionsTable(ctx); err != nil {
		return nil, err
	}
	// A row holding the placeholder offset belongs to a transaction that has not committed; it
	// is not visible here, so every row read is a committed position.
	rows, err := s.conn.Query(ctx, `SELECT partition, "offset", cursor FROM `+s.sql.positions+` WHERE pipeline = $1 AND sink = $2 ORDER BY partition`,
		s.env.Pipeline, s.env.Component)
	if err != nil {
		return nil, s.readFailed(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (connector.Position, error) {
		var p connector.Position
		err := row.Scan(&p.Partition, &p.Offset, &p.Cursor)
		return p, err
	})
	if err != nil {
		return nil, s.readFailed(err)
	}
	// In byte order, whatever the database's collation sorted them by.
	slices.SortFunc(out, func(a, b connector.Position) int { return strings.Compare(a.Partition, b.Partition) })
	return out, nil
}

func (s *Sink) readFailed(err error) error {
	werr := fmt.Errorf("postgres sink: read positions from %s: %w", s.cfg.positions, err)
	if isPermanent(err) {
		return &permanentError{werr}
	}
	if s.conn.IsClosed() {
		s.conn = nil
	}
	return werr
}

func (s *Sink) createPositionsTable(ctx context.Context) error {
	if s.eo.ready {
		return nil
	}
	var exists bool
	if err := s.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.sql.positions).Scan(&exists); err != nil {
		return fmt.Errorf("postgres sink: positions table %s: %w", s.cfg.positions, err)
	}
	if exists {
		s.eo.ready = true
		return nil
	}
	_, err := s.conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.sql.positions+` (
	pipeline text NOT NULL,
	sink text NOT NULL,
	partition text NOT NULL,
	"offset" bigint NOT NULL,
	cursor bytea,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline, sink, partition)
)`)
	var pe *pgconn.PgError
	if err != nil && !(errors.As(err, &pe) && (pe.Code == "42P07" || pe.Code == "23505")) { // not created meanwhile elsewhere
		werr := fmt.Errorf("postgres sink: create positions table %s: %w", s.cfg.positions, err)
		if isPermanent(err) {
			return &permanentError{werr}
		}
		return werr
	}
	s.eo.ready = true
	return nil
}

// unstored is the offset a transaction gives the positions row it inserts to lock a partition
// with nothing stored yet. The row is updated (or, for a partition of records without a
// position, deleted) before the transaction commits, so no one ever reads it.
const unstored = math.MinInt64

// positionsStatements returns the statements of the positions: lock inserts the missing rows of
// the partitions $3 and locks them all, in the order of their names (so that two transactions
// never wait for each other), and returns their offsets; save moves them forward; drop deletes
// the rows lock inserted for partitions that got no position.
func positionsStatements(table string) (lock, save, drop string) {
	none := strconv.FormatInt(unstored, 10)
	lock = `INSERT INTO ` + table + ` AS t (pipeline, sink, partition, "offset", updated_at)
		SELECT $1, $2, u.p, ` + none + `, now() FROM unnest($3::text[]) AS u(p) ORDER BY u.p COLLATE "C"
		ON CONFLICT (pipeline, sink, partition) DO UPDATE SET "offset" = t."offset"
		RETURNING partition, "offset"`
	save = `UPDATE ` + table + ` AS t SET "offset" = u.o, cursor = u.c, updated_at = now()
		FROM unnest($3::text[], $4::bigint[], $5::bytea[]) AS u(p, o, c)
		WHERE t.pipeline = $1 AND t.sink = $2 AND t.partition = u.p AND (u.o > t."offset" OR t."offset" = ` + none + `)`
	drop = `DELETE FROM ` + table + ` WHERE pipeline = $1 AND sink = $2 AND partition = ANY($3) AND "offset" = ` + none
	return lock, save, drop
}

// lockPositions begins the transaction of a write and locks the positions rows of the partitions
// of the records and positions, in one round trip. It leaves out of the encoded batch the rows of
// records at or before the stored offsets, and notes the offsets in eo.stored.
func (s *Sink) lockPositions(ctx context.Context, records []connector.Record, positions []connector.Position) error {
	parts := s.eo.parts[:0]
	for _, p := range positions {
		parts = append(parts, p.Partition)
	}
	for i := range records {
		// Records come in runs of one partition: one entry per run, not per record.
		if i == 0 || records[i].Position.Partition != records[i-1].Position.Partition {
			parts = append(parts, records[i].Position.Partition)
		}
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	s.eo.parts = parts

	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	b.Queue(s.sql.lock, s.env.Pipeline, s.env.Component, parts)
	br := s.conn.SendBatch(ctx, b)
	_, err := br.Exec()
	if s.eo.stored == nil {
		s.eo.stored = map[string]int64{}
	}
	clear(s.eo.stored)
	s.eo.fresh = s.eo.fresh[:0]
	if err == nil {
		var rows pgx.Rows
		rows, err = br.Query()
		if err == nil {
			var part string
			var off int64
			_, err = pgx.ForEachRow(rows, []any{&part, &off}, func() error {
				if off == unstored {
					s.eo.fresh = append(s.eo.fresh, part)
				} else {
					s.eo.stored[part] = off
				}
				return nil
			})
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n := s.dropStored(records); n > 0 {
		s.log.Debug("skipping records already stored", "records", n)
	}
	return nil
}

// alreadyStored reports whether a record is at or before the offset stored for its partition
// when the last transaction locked it.
func (e *eoState) alreadyStored(r *connector.Record) bool {
	off, ok := e.stored[r.Position.Partition]
	return ok && r.Position.Offset <= off
}

// dropStored removes from the encoded batch the rows of records already stored, keeping the
// others in order, and returns how many it removed.
func (s *Sink) dropStored(records []connector.Record) int {
	if len(s.eo.stored) == 0 {
		return 0
	}
	w, at := 0, 0
	for i, rec := range s.idx {
		lo, hi := s.rows[i], s.rows[i+1]
		if s.eo.alreadyStored(&records[rec]) {
			continue
		}
		if at != lo {
			copy(s.buf[at:], s.buf[lo:hi])
		}
		s.rows[w], s.idx[w] = at, rec
		at += hi - lo
		w++
	}
	dropped := len(s.idx) - w
	s.rows[w] = at
	s.rows, s.idx, s.buf = s.rows[:w+1], s.idx[:w], s.buf[:at]
	return dropped
}

// savePositionsAndCommit moves the positions forward (never back) and commits, in one round
// trip. A statement that fails leaves the transaction aborted, its COMMIT not run.
func (s *Sink) savePositionsAndCommit(ctx context.Context, positions []connector.Position) error {
	b := &pgx.Batch{}
	if len(positions) > 0 {
		parts := make([]string, len(positions))
		offsets := make([]int64, len(positions))
		cursors := make([][]byte, len(positions))
		for i, p := range positions {
			parts[i], offsets[i], cursors[i] = p.Partition, p.Offset, p.Cursor
		}
		b.Queue(s.sql.save, s.env.Pipeline, s.env.Component, parts, offsets, cursors)
	}
	// Partitions of records that got no position keep having none.
	var orphans []string
	for _, p := range s.eo.fresh {
		if !slices.ContainsFunc(positions, func(q connector.Position) bool { return q.Partition == p }) {
			orphans = append(orphans, p)
		}
	}
	if len(orphans) > 0 {
		b.Queue(s.sql.drop, s.env.Pipeline, s.env.Component, orphans)
	}
	b.Queue("COMMIT")
	return s.conn.SendBatch(ctx, b).Close()
}

// lostRace reports whether the server ended a transaction to resolve a deadlock or a
// serialization conflict with another writer: trying again is the remedy.
func lostRace(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// raceRetries bounds the tries of a transaction that lost a race with another writer.
const raceRetries = 5

// raceBackoff waits before try n+1 of a transaction that lost a race.
func raceBackoff(ctx context.Context, n int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(n+1) * 20 * time.Millisecond):
		return nil
	}
}
