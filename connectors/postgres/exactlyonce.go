package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// eoState is the sink's side of exactly-once delivery.
type eoState struct {
	// active is set by StoredPositions: the sink holds the advisory lock of its positions and
	// checks them after every reconnection.
	active bool
	// last holds the stored positions as of the last commit this sink knows of, by partition.
	last map[string]connector.Position
	// doubtful holds the positions of a transaction whose connection was lost before its commit
	// was confirmed: it may or may not have committed.
	doubtful []connector.Position
	// filter skips records at or before last: set when a doubtful transaction turned out to have
	// committed, until a write succeeds.
	filter bool
}

// CheckExactlyOnce reports that the sink can be written exactly once, in every mode and layout.
func (s *Sink) CheckExactlyOnce() error { return nil }

// WriteTx writes the records and the positions in one transaction.
func (s *Sink) WriteTx(ctx context.Context, records []connector.Record, positions []connector.Position) error {
	return s.write(ctx, records, positions, true)
}

// StoredPositions creates the positions table when missing, takes the advisory lock of this
// pipeline's sink, and returns its stored positions.
func (s *Sink) StoredPositions(ctx context.Context) ([]connector.Position, error) {
	if s.conn == nil || s.conn.IsClosed() {
		if err := s.connect(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.createPositionsTable(ctx); err != nil {
		return nil, err
	}
	stored, err := s.lockAndRead(ctx)
	if err != nil {
		return nil, err
	}
	s.eo.active, s.eo.last, s.eo.doubtful, s.eo.filter = true, stored, nil, false
	out := slices.Collect(maps.Values(stored))
	slices.SortFunc(out, func(a, b connector.Position) int {
		switch {
		case a.Partition < b.Partition:
			return -1
		case a.Partition > b.Partition:
			return 1
		}
		return 0
	})
	return out, nil
}

func (s *Sink) createPositionsTable(ctx context.Context) error {
	var exists bool
	if err := s.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.sql.positions).Scan(&exists); err != nil {
		return fmt.Errorf("postgres sink: positions table %s: %w", s.cfg.positions, err)
	}
	if exists {
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
	return nil
}

// lockKey is the advisory lock of this sink's positions: one (positions table, pipeline, sink).
func (s *Sink) lockKey() int64 {
	h := fnv.New64a()
	for _, part := range []string{"sluice positions", s.cfg.positions.String(), s.env.Pipeline, s.env.Component} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// lockWait is how long lockAndRead waits for a session that holds the lock to end.
const lockWait = 3 * time.Second

// lockAndRead takes the session advisory lock of this sink's positions and reads them.
func (s *Sink) lockAndRead(ctx context.Context) (map[string]connector.Position, error) {
	// A session that just ended may still hold the lock for a moment: the server releases it
	// when it has processed the disconnection, which a new connection can overtake. A holder
	// still there after lockWait is another process.
	var locked bool
	for deadline := time.Now().Add(lockWait); ; {
		if err := s.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", s.lockKey()).Scan(&locked); err != nil {
			return nil, fmt.Errorf("postgres sink: lock the positions: %w", err)
		}
		if locked || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !locked {
		return nil, fmt.Errorf("postgres sink: another session holds the exactly-once lock of pipeline %q, sink %q on %s: "+
			"another process runs this pipeline, or a previous one has not disconnected yet", s.env.Pipeline, s.env.Component, s.cfg.positions)
	}
	rows, err := s.conn.Query(ctx, `SELECT partition, "offset", cursor FROM `+s.sql.positions+` WHERE pipeline = $1 AND sink = $2`,
		s.env.Pipeline, s.env.Component)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: read positions from %s: %w", s.cfg.positions, err)
	}
	stored := map[string]connector.Position{}
	for rows.Next() {
		var p connector.Position
		if err := rows.Scan(&p.Partition, &p.Offset, &p.Cursor); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres sink: read positions from %s: %w", s.cfg.positions, err)
		}
		stored[p.Partition] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres sink: read positions from %s: %w", s.cfg.positions, err)
	}
	return stored, nil
}

// check makes sure StoredPositions ran (it takes the lock) before the first WriteTx.
func (e *eoState) check(ctx context.Context, s *Sink) error {
	if e.active {
		return nil
	}
	_, err := s.StoredPositions(ctx)
	return err
}

// reconnected takes the lock again on a new connection and compares the stored positions with
// what this sink last committed: after a doubtful commit, they tell whether it went through;
// otherwise they must not have moved, or another process wrote in the meantime.
func (e *eoState) reconnected(ctx context.Context, s *Sink) error {
	stored, err := s.lockAndRead(ctx)
	if err != nil {
		return err
	}
	if e.doubtful != nil {
		after := maps.Clone(e.last)
		for _, p := range e.doubtful {
			after[p.Partition] = p
		}
		doubtful := e.doubtful
		e.doubtful = nil
		switch {
		case samePositions(stored, after):
			s.log.Info("the transaction whose commit was not confirmed did commit; skipping what it stored", "positions", len(doubtful))
			e.last, e.filter = stored, true
			return nil
		case samePositions(stored, e.last):
			return nil // it did not commit
		}
	}
	if !samePositions(stored, e.last) {
		return permanentf("postgres sink: the positions of pipeline %q, sink %q in %s changed while this sink was disconnected: "+
			"another process wrote them; restart the pipeline so it resumes from them", s.env.Pipeline, s.env.Component, s.cfg.positions)
	}
	return nil
}

func samePositions(a, b map[string]connector.Position) bool {
	return maps.EqualFunc(a, b, func(x, y connector.Position) bool {
		return x.Offset == y.Offset && string(x.Cursor) == string(y.Cursor)
	})
}

// stored reports whether a record is at or before the stored position of its partition, while
// the sink skips what a doubtful commit stored.
func (e *eoState) stored(r *connector.Record) bool {
	if !e.filter {
		return false
	}
	p, ok := e.last[r.Position.Partition]
	return ok && r.Position.Offset <= p.Offset
}

// committed records the positions of a committed transaction.
func (e *eoState) committed(positions []connector.Position) {
	for _, p := range positions {
		e.last[p.Partition] = p
	}
	e.filter = false
}

// doubt records the positions of a transaction whose commit was not confirmed.
func (e *eoState) doubt(positions []connector.Position) {
	if e.active {
		e.doubtful = slices.Clone(positions)
	}
}

// savePositions upserts the positions in the transaction of the rows.
func (s *Sink) savePositions(ctx context.Context, t pgx.Tx, positions []connector.Position) error {
	if len(positions) == 0 {
		return nil
	}
	parts := make([]string, len(positions))
	offsets := make([]int64, len(positions))
	cursors := make([][]byte, len(positions))
	for i, p := range positions {
		parts[i], offsets[i], cursors[i] = p.Partition, p.Offset, p.Cursor
	}
	_, err := t.Exec(ctx, `INSERT INTO `+s.sql.positions+` (pipeline, sink, partition, "offset", cursor, updated_at)
		SELECT $1, $2, u.p, u.o, u.c, now() FROM unnest($3::text[], $4::bigint[], $5::bytea[]) AS u(p, o, c)
		ON CONFLICT (pipeline, sink, partition) DO UPDATE SET "offset" = EXCLUDED."offset", cursor = EXCLUDED.cursor, updated_at = EXCLUDED.updated_at`,
		s.env.Pipeline, s.env.Component, parts, offsets, cursors)
	return err
}
