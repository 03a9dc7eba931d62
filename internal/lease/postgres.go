// Package lease makes a pipeline a singleton across replicas: of the processes configured with
// the same lease, one holds it and runs the pipeline, the others stand by; when the holder dies
// the lease moves to a standby within seconds, together with the pipeline's source positions.
//
// The lease is a Postgres session-level advisory lock, taken with pg_try_advisory_lock on a
// dedicated connection and held for as long as that connection lives. While it is held, the
// pipeline's source positions are written to the table sluice_lease_positions on that same
// connection, in statements that check the lock is still held: a replica that lost the lease
// cannot overwrite the positions of the one that took it (fencing). The new holder loads them
// and resumes where the old one committed.
package lease

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Table is the table, in the lease database's search path, that keeps the positions of leased
// pipelines: one row per lease and partition. Postgres creates it on first use.
const Table = "sluice_lease_positions"

// ErrLost is returned by the operations of a Held lease once the lease is lost: its connection
// died, a check found the lock gone, or a write found it not held.
var ErrLost = errors.New("lease lost")

// Key returns the advisory lock key of a lease name: the FNV-1a 64-bit hash of "sluice/lease/"
// and the name, with the sign bit cleared.
func Key(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("sluice/lease/" + name))
	return int64(h.Sum64() &^ (1 << 63))
}

// schemaKey guards the creation of Table: replicas of different leases may create it at once.
var schemaKey = Key("\x00schema")

// Postgres takes a lease held as a Postgres advisory lock. It is safe for concurrent use, but
// one Postgres serves one pipeline's run at a time.
type Postgres struct {
	cfg   *pgx.ConnConfig
	name  string
	key   int64
	retry time.Duration
}

// NewPostgres returns the lease named name in the database dsn reaches. retry is how often
// Acquire tries again and how often a held lease checks its lock (at least 100ms; 0 means 1s).
// It does no I/O; a dsn that does not parse is an error.
func NewPostgres(dsn, name string, retry time.Duration) (*Postgres, error) {
	if name == "" {
		return nil, errors.New("lease: a name is required")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("lease: postgres dsn does not parse (write postgres://USER:PASSWORD@HOST:PORT/DB or key=value pairs)")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "sluice lease " + name
	}
	switch {
	case retry == 0:
		retry = time.Second
	case retry < 100*time.Millisecond:
		retry = 100 * time.Millisecond
	}
	return &Postgres{cfg: cfg, name: name, key: Key(name), retry: retry}, nil
}

// Name returns the lease's name.
func (p *Postgres) Name() string { return p.name }

// Wait describes why Acquire is still waiting: another replica holds the lease (Err nil), or
// the lease database cannot be reached or refused a statement (Err says how).
type Wait struct {
	Err error
}

// Acquire returns once the lease is held, trying every retry interval on one connection (opened
// again after an error). waiting, when not nil, is called after every try that did not take the
// lease. It returns ctx's error when ctx is done first.
func (p *Postgres) Acquire(ctx context.Context, waiting func(Wait)) (*Held, error) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	for {
		got, err := p.try(ctx, &conn)
		if err == nil && got {
			h := newHeld(p, conn)
			conn = nil
			return h, nil
		}
		if err != nil && conn != nil {
			closeConn(conn)
			conn = nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if waiting != nil {
			waiting(Wait{Err: err})
		}
		t := time.NewTimer(p.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// try connects when *conn is nil and tries to take the lock; once taken, it makes sure the
// positions table exists.
func (p *Postgres) try(ctx context.Context, conn **pgx.Conn) (bool, error) {
	if *conn == nil {
		c, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return false, fmt.Errorf("lease %q: connect: %w", p.name, err)
		}
		*conn = c
		keepAlive(ctx, c)
	}
	qctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	var got bool
	if err := (*conn).QueryRow(qctx, "SELECT pg_try_advisory_lock($1)", p.key).Scan(&got); err != nil {
		return false, fmt.Errorf("lease %q: pg_try_advisory_lock: %w", p.name, err)
	}
	if !got {
		return false, nil
	}
	if err := createTable(qctx, *conn); err != nil {
		return false, fmt.Errorf("lease %q: create table %s: %w", p.name, Table, err)
	}
	return true, nil
}

// timeout bounds one statement on the lease's connection.
func (p *Postgres) timeout() time.Duration { return max(5*time.Second, 3*p.retry) }

// keepAlive asks the server to probe the connection, so that the lock of a holder whose host
// vanished (no FIN, no RST) is released in about 15 s rather than after the kernel's default
// two hours. The settings are best effort: over a Unix socket, or through a proxy that refuses
// them, the server's own settings stay.
func keepAlive(ctx context.Context, c *pgx.Conn) {
	for _, s := range []string{"SET tcp_keepalives_idle = 5", "SET tcp_keepalives_interval = 2", "SET tcp_keepalives_count = 3", "SET tcp_user_timeout = 15000"} {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _ = c.Exec(qctx, s)
		cancel()
	}
}

func createTable(ctx context.Context, c *pgx.Conn) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", schemaKey); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+Table+` (
  lease text NOT NULL,
  partition text NOT NULL,
  "offset" bigint NOT NULL,
  cursor bytea,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (lease, partition))`); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// heldClause is true while this session holds the advisory lock $N.
const heldClause = `EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
  AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = %s)`

// Held is a lease this process holds. Its methods are safe for concurrent use.
type Held struct {
	p *Postgres

	mu   sync.Mutex // serialises the connection's statements
	conn *pgx.Conn

	loss // Lost, Err

	stop     chan struct{}
	stopOnce sync.Once
	watched  chan struct{}
}

func newHeld(p *Postgres, conn *pgx.Conn) *Held {
	h := &Held{p: p, conn: conn, loss: newLoss(), stop: make(chan struct{}), watched: make(chan struct{})}
	go h.watch()
	return h
}

// markLost records that the lease is lost because of err and closes the connection, which
// releases the lock should the server still hold it. h.mu is held.
func (h *Held) markLost(err error) {
	h.loss.markLost(h.p.name, err, func() {
		if h.conn != nil {
			closeConn(h.conn)
			h.conn = nil
		}
	})
}

// watch checks every retry interval that the lock is still held.
func (h *Held) watch() {
	defer close(h.watched)
	t := time.NewTicker(h.p.retry)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.lost:
			return
		case <-t.C:
		}
		h.mu.Lock()
		if h.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), h.p.timeout())
			var held bool
			err := h.conn.QueryRow(ctx, "SELECT "+fmt.Sprintf(heldClause, "$1"), h.p.key).Scan(&held)
			cancel()
			switch {
			case err != nil:
				h.markLost(err)
			case !held:
				h.markLost(errors.New("the advisory lock is no longer held by this session"))
			}
		}
		h.mu.Unlock()
	}
}

// Load returns the positions saved under the lease, sorted by partition; found is false when
// none were ever saved.
func (h *Held) Load(ctx context.Context) (ps []connector.Position, found bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		return nil, false, h.lostErr
	}
	ctx, cancel := context.WithTimeout(ctx, h.p.timeout())
	defer cancel()
	rows, err := h.conn.Query(ctx, `SELECT partition, "offset", cursor FROM `+Table+` WHERE lease = $1 ORDER BY partition`, h.p.name)
	if err != nil {
		h.markLost(err)
		return nil, false, h.lostErr
	}
	for rows.Next() {
		var p connector.Position
		if err := rows.Scan(&p.Partition, &p.Offset, &p.Cursor); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("lease %q: read positions: %w", h.p.name, err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		h.markLost(err)
		return nil, false, h.lostErr
	}
	return ps, len(ps) > 0, nil
}

// Save stores positions under the lease (one per partition; other partitions keep theirs) if,
// and only if, this session still holds the lock: the check and the writes are one statement.
// It fails with an error matching ErrLost when the lease is lost, and the lease is then lost
// for good (a failed write leaves no way to know what the server holds).
func (h *Held) Save(ctx context.Context, ps []connector.Position) error {
	if len(ps) == 0 {
		return nil
	}
	parts, offs, curs := make([]string, len(ps)), make([]int64, len(ps)), make([][]byte, len(ps))
	for i, p := range ps {
		parts[i], offs[i], curs[i] = p.Partition, p.Offset, p.Cursor
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		return h.lostErr
	}
	ctx, cancel := context.WithTimeout(ctx, h.p.timeout())
	defer cancel()
	tag, err := h.conn.Exec(ctx, `INSERT INTO `+Table+` (lease, partition, "offset", cursor, updated_at)
SELECT $1, u.p, u.o, u.c, now() FROM unnest($2::text[], $3::bigint[], $4::bytea[]) AS u(p, o, c)
WHERE `+fmt.Sprintf(heldClause, "$5")+`
ON CONFLICT (lease, partition) DO UPDATE SET "offset" = EXCLUDED."offset", cursor = EXCLUDED.cursor, updated_at = EXCLUDED.updated_at`,
		h.p.name, parts, offs, curs, h.p.key)
	switch {
	case err != nil:
		h.markLost(err)
		return h.lostErr
	case tag.RowsAffected() != int64(len(ps)):
		h.markLost(fmt.Errorf("the advisory lock was not held when saving positions (%d of %d written)", tag.RowsAffected(), len(ps)))
		return h.lostErr
	}
	return nil
}

// Release gives the lease up: it stops the checks, unlocks and closes the connection. It is
// idempotent; after it Lost is closed.
func (h *Held) Release() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.watched
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = h.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", h.p.key)
		cancel()
	}
	h.markLost(errors.New("released"))
}
