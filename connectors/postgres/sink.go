package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Sink writes records into a Postgres table. The runtime calls Write (or WriteTx) from one
// goroutine at a time; the sink holds one connection, opened by Open and again after it is lost.
type Sink struct {
	cfg      *config
	declared []column // the configured columns; cfg.cols adds the table's undeclared ones with evolve
	env      connector.Env
	log      *slog.Logger
	sql      statements
	filler   filler
	cf       *columnsFiller // the filler of the columns layout
	tm       *pgtype.Map

	conn *pgx.Conn

	// The batch being written: encoded COPY rows in buf, row i from rows[i] to rows[i+1], coming
	// from record idx[i].
	ins  []input
	buf  []byte
	rows []int
	idx  []int

	// Parameters of a small upsert, and the types of its VALUES: the staging sequence number,
	// then the table's type of each column (set on connecting).
	params    [][]byte
	oids      []uint32
	formats   []int16
	valueOIDs []uint32

	eo eoState
}

var (
	_ connector.Sink              = (*Sink)(nil)
	_ connector.TransactionalSink = (*Sink)(nil)
)

// statements are the SQL texts of one sink, built once.
type statements struct {
	table     string    // the quoted table name
	copy      string    // COPY of the batch's rows (into the table, or the staging table for upsert)
	upsert    string    // INSERT ... SELECT ... ON CONFLICT from the staging table
	values    [2]string // upsert of a small batch: before and after its VALUES rows
	stage     string    // creates the staging table
	clear     string    // empties the staging table
	fields    int       // fields per COPY row
	positions string    // the quoted positions table
	lock      string    // inserts the missing positions rows of a batch and locks them all
	save      string    // moves the positions forward
	drop      string    // deletes the rows lock inserted for partitions that got no position
}

// stageTable is the temporary table a batch goes through in upsert mode.
const stageTable = "pg_temp.sluice_stage"

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

func (t ident) quoted() string {
	if t.Schema == "" {
		return quote(t.Name)
	}
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

func (t ident) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// NewSink builds a postgres sink from its configuration. It does no I/O.
func NewSink(cfg connector.Config, env connector.Env) (*Sink, error) {
	c, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: c, declared: c.cols, env: env, log: log, tm: pgtype.NewMap(), ins: make([]input, len(c.cols))}
	if c.Layout == layoutDeadLetter {
		s.filler = deadLetterFiller{}
	} else {
		s.cf = newColumnsFiller(c.cols, nil, false)
		s.filler = s.cf
	}
	s.sql = buildStatements(c)
	return s, nil
}

// useColumns makes the sink write the configured columns and, with evolve, the table's others
// that it can fill, and notes the records' fields that are none of the table's columns.
func (s *Sink) useColumns(info *tableInfo) {
	if !s.cfg.Evolve {
		return
	}
	s.cfg.cols = slices.Concat(s.declared, undeclared(s.declared, info))
	s.cf = newColumnsFiller(s.cfg.cols, info.order, true)
	s.filler = s.cf
	s.ins = make([]input, len(s.cfg.cols))
	s.sql = buildStatements(s.cfg)
}

// addColumns adds the records' new fields to the table as columns (in one ALTER TABLE of its
// own, before the rows' transaction, so that its lock lasts only as long as the change) and
// reads the table again; a column another process added meanwhile is kept with its type.
func (s *Sink) addColumns(ctx context.Context, cols []newColumn) error {
	adds := make([]string, len(cols))
	for i, c := range cols {
		adds[i] = "ADD COLUMN IF NOT EXISTS " + quote(c.name) + " " + c.typ.String()
	}
	if _, err := s.conn.Exec(ctx, "ALTER TABLE "+s.sql.table+" "+strings.Join(adds, ", ")); err != nil {
		return s.failed(fmt.Errorf("add columns: %w", err))
	}
	s.log.Info("added columns to table", "table", s.cfg.table.String(), "columns", strings.Join(adds, ", "))
	info, err := s.describe(ctx)
	if err == nil {
		err = s.useTable(ctx, info)
	}
	if err != nil {
		var pe *permanentError
		if errors.As(err, &pe) {
			return err
		}
		return s.failed(err)
	}
	return nil
}

func buildStatements(c *config) statements {
	st := statements{table: c.table.quoted(), fields: len(c.cols), positions: c.positions.quoted()}
	st.lock, st.save, st.drop = positionsStatements(st.positions)
	names := make([]string, len(c.cols))
	var keys, sets []string
	for i, col := range c.cols {
		names[i] = quote(col.name)
		if col.key {
			keys = append(keys, names[i])
		} else {
			sets = append(sets, names[i]+" = EXCLUDED."+names[i])
		}
	}
	list := strings.Join(names, ", ")
	if c.Mode != modeUpsert {
		st.copy = fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", st.table, list)
		return st
	}
	st.fields++
	st.copy = fmt.Sprintf("COPY %s (%s, %s) FROM STDIN (FORMAT binary)", stageTable, seqColumn, list)
	st.stage = fmt.Sprintf("CREATE TEMPORARY TABLE %s ON COMMIT DELETE ROWS AS SELECT 0::bigint AS %s, %s FROM %s WITH NO DATA",
		strings.TrimPrefix(stageTable, "pg_temp."), seqColumn, list, st.table)
	st.clear = "DELETE FROM " + stageTable
	keyList := strings.Join(keys, ", ")
	action := "DO NOTHING"
	if len(sets) > 0 {
		action = "DO UPDATE SET " + strings.Join(sets, ", ")
	}
	st.upsert = fmt.Sprintf("INSERT INTO %s (%s) SELECT DISTINCT ON (%s) %s FROM %s ORDER BY %s, %s DESC ON CONFLICT (%s) %s",
		st.table, list, keyList, list, stageTable, keyList, seqColumn, keyList, action)
	st.values = [2]string{
		fmt.Sprintf("INSERT INTO %s (%s) SELECT DISTINCT ON (%s) %s FROM (VALUES ", st.table, list, keyList, list),
		fmt.Sprintf(") AS v (%s, %s) ORDER BY %s, %s DESC ON CONFLICT (%s) %s", seqColumn, list, keyList, seqColumn, keyList, action),
	}
	return st
}

// Open connects and checks the table (creating it with create_table), so that a configuration
// that cannot work fails here, with a permanent error saying what to fix.
func (s *Sink) Open(ctx context.Context) error {
	return s.connect(ctx)
}

// Close closes the connection. It is idempotent.
func (s *Sink) Close(ctx context.Context) error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	return err
}

// Write makes the records durable as rows. Records that do not convert or that the database
// refuses come back in a *connector.BatchError; the others are written.
func (s *Sink) Write(ctx context.Context, records []connector.Record) error {
	return s.write(ctx, records, nil, false)
}

func (s *Sink) write(ctx context.Context, records []connector.Record, positions []connector.Position, tx bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	if s.conn == nil || s.conn.IsClosed() {
		if err := s.connect(ctx); err != nil {
			return err
		}
	}
	if tx {
		if err := s.createPositionsTable(ctx); err != nil {
			return err
		}
	}
	failed := s.encode(records)
	for round := 0; s.cf != nil && len(s.cf.found) > 0 && round < 3; round++ {
		if err := s.addColumns(ctx, slices.Clone(s.cf.found)); err != nil {
			return err
		}
		failed = s.encode(records)
	}
	if len(s.idx) == 0 && len(positions) == 0 && (!tx || len(records) == 0) {
		return batchError(failed)
	}
	var refused []connector.RecordError
	var err error
	for try := 0; ; try++ {
		refused, err = s.store(ctx, records, positions, tx)
		if err == nil || !tx || !lostRace(err) || s.conn == nil || try == raceRetries-1 {
			break
		}
		s.log.Debug("a transaction lost a race with another writer; trying again", "err", err)
		if werr := raceBackoff(ctx, try); werr != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	if tx {
		// A record that did not convert but is already stored was dead-lettered by its write.
		failed = slices.DeleteFunc(failed, func(f connector.RecordError) bool { return s.eo.alreadyStored(&records[f.Index]) })
	}
	if len(refused) > 0 {
		failed = append(failed, refused...)
		slices.SortFunc(failed, func(a, b connector.RecordError) int { return a.Index - b.Index })
	}
	return batchError(failed)
}

func batchError(failed []connector.RecordError) error {
	if len(failed) == 0 {
		return nil
	}
	return &connector.BatchError{Failed: failed}
}

// encode converts the records into binary COPY rows; those that do not convert are returned.
func (s *Sink) encode(records []connector.Record) []connector.RecordError {
	s.buf, s.rows, s.idx = s.buf[:0], s.rows[:0], s.idx[:0]
	if cap(s.buf) > 64<<20 {
		s.buf = nil
	}
	var failed []connector.RecordError
	upsert := s.cfg.Mode == modeUpsert
	evolve := s.cfg.Evolve && s.cf != nil
	if evolve {
		s.cf.reset()
	}
	for i := range records {
		r := &records[i]
		if err := s.filler.fill(r, s.ins); err != nil {
			failed = append(failed, connector.RecordError{Index: i, Err: err})
			continue
		}
		if evolve && len(s.cfg.cols) == 0 {
			s.cf.note(r.Value)
			failed = append(failed, connector.RecordError{Index: i, Err: errors.New("the table has no columns yet, and the value has no field that is not null to add one from")})
			continue
		}
		start := len(s.buf)
		s.buf = binary.BigEndian.AppendUint16(s.buf, uint16(s.sql.fields))
		if upsert {
			s.buf = binary.BigEndian.AppendUint32(s.buf, 8)
			s.buf = binary.BigEndian.AppendUint64(s.buf, uint64(len(s.idx)))
		}
		var err error
		for c := range s.cfg.cols {
			col := &s.cfg.cols[c]
			if col.key && s.ins[c].kind == inNull {
				err = fmt.Errorf("key column %q: %s is missing or null", col.name, col.from)
				break
			}
			if s.buf, err = col.typ.appendField(s.buf, &s.ins[c], s.tm); err != nil {
				err = fmt.Errorf("column %q (%s, from %s): %w", col.name, col.typ, col.from, err)
				break
			}
		}
		if err != nil {
			s.buf = s.buf[:start]
			failed = append(failed, connector.RecordError{Index: i, Err: err})
			continue
		}
		s.rows = append(s.rows, start)
		s.idx = append(s.idx, i)
		if evolve && len(s.cf.x.unread) > 0 {
			s.cf.note(r.Value)
		}
	}
	s.rows = append(s.rows, len(s.buf))
	return failed
}

// store writes the encoded rows (and positions, when tx) in one go; when the database refuses a
// row, it writes again, isolating the refused rows. It returns the refused records.
func (s *Sink) store(ctx context.Context, records []connector.Record, positions []connector.Position, tx bool) ([]connector.RecordError, error) {
	var err error
	upsert := s.cfg.Mode == modeUpsert
	switch {
	case !tx && !upsert:
		_, err = s.copyRows(ctx, 0, len(s.idx)) // one COPY commits on its own
	case !tx && len(s.idx) <= smallUpsert:
		err = s.upsertValues(ctx, 0, len(s.idx)) // so does one INSERT
	default:
		err = s.inTx(ctx, records, positions, tx, func() error {
			switch n := len(s.idx); {
			case n == 0:
				return nil
			case upsert && n <= smallUpsert:
				return s.upsertValues(ctx, 0, n)
			default:
				return s.writeRows(ctx, 0, n)
			}
		})
	}
	if err == nil {
		return nil, nil
	}
	if !isRowError(err) {
		return nil, s.failed(err)
	}
	s.log.Debug("postgres refused a row; isolating it", "table", s.cfg.table.String(), "err", err)
	first := err
	var refused []connector.RecordError
	err = s.inTx(ctx, records, positions, tx, func() error {
		if _, err := s.conn.Exec(ctx, "SET CONSTRAINTS ALL IMMEDIATE"); err != nil {
			return err
		}
		var err error
		refused, err = s.isolate(ctx, first)
		return err
	})
	if err != nil {
		if isRowError(err) { // refused at commit, after every row passed on its own
			return nil, permanentf("postgres sink: table %s: the transaction was refused at commit after its rows were accepted one by one: %w", s.cfg.table, err)
		}
		return nil, s.failed(err)
	}
	return refused, nil
}

// inTx runs f in a transaction and commits it. With tx, the transaction locks the positions rows
// of the batch's partitions first, leaving out of the batch the records already stored, and
// moves the positions forward before it commits.
func (s *Sink) inTx(ctx context.Context, records []connector.Record, positions []connector.Position, tx bool, f func() error) error {
	var err error
	if tx {
		err = s.lockPositions(ctx, records, positions)
	} else {
		_, err = s.conn.Exec(ctx, "BEGIN")
	}
	if err == nil {
		err = f()
	}
	if err == nil {
		if tx {
			err = s.savePositionsAndCommit(ctx, positions)
		} else {
			_, err = s.conn.Exec(ctx, "COMMIT")
		}
		if err == nil {
			return nil
		}
	}
	if !s.conn.IsClosed() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = s.conn.Exec(rctx, "ROLLBACK")
		cancel()
	}
	return err
}

// writeRows writes rows [lo, hi): COPY into the table, or for upsert into the staging table and
// from there into the table.
func (s *Sink) writeRows(ctx context.Context, lo, hi int) error {
	if _, err := s.copyRows(ctx, lo, hi); err != nil {
		return err
	}
	if s.cfg.Mode != modeUpsert {
		return nil
	}
	_, err := s.conn.Exec(ctx, s.sql.upsert)
	return err
}

// smallUpsert is the largest batch upserted with one INSERT ... VALUES, in one round trip, rather
// than through the staging table.
const smallUpsert = 64

// upsertValues upserts rows [lo, hi) with one INSERT whose VALUES are the encoded rows, passed as
// binary parameters as they are.
func (s *Sink) upsertValues(ctx context.Context, lo, hi int) error {
	var sql strings.Builder
	sql.WriteString(s.sql.values[0])
	s.params, s.oids, s.formats = s.params[:0], s.oids[:0], s.formats[:0]
	for r := lo; r < hi; r++ {
		if r > lo {
			sql.WriteString(", ")
		}
		sql.WriteByte('(')
		row := s.buf[s.rows[r]+2 : s.rows[r+1]]
		for f := range s.sql.fields {
			if f > 0 {
				sql.WriteString(", ")
			}
			sql.WriteByte('$')
			sql.WriteString(strconv.Itoa(len(s.params) + 1))
			l := int32(binary.BigEndian.Uint32(row))
			row = row[4:]
			if l < 0 {
				s.params = append(s.params, nil)
			} else {
				s.params = append(s.params, row[:l:l])
				row = row[l:]
			}
			s.oids = append(s.oids, s.valueOIDs[f])
			s.formats = append(s.formats, pgtype.BinaryFormatCode)
		}
		sql.WriteByte(')')
	}
	sql.WriteString(s.sql.values[1])
	_, err := s.conn.PgConn().ExecParams(ctx, sql.String(), s.params, s.oids, s.formats, nil).Close()
	return err
}

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
var copyTrailer = []byte{0xff, 0xff}

// copyRows sends rows [lo, hi) with one binary COPY.
func (s *Sink) copyRows(ctx context.Context, lo, hi int) (int64, error) {
	r := &copyStream{parts: [3][]byte{copyHeader, s.buf[s.rows[lo]:s.rows[hi]], copyTrailer}}
	tag, err := s.conn.PgConn().CopyFrom(ctx, r, s.sql.copy)
	return tag.RowsAffected(), err
}

// copyStream reads its parts one after the other.
type copyStream struct {
	parts [3][]byte
	i     int
}

func (c *copyStream) Read(p []byte) (int, error) {
	for c.i < len(c.parts) && len(c.parts[c.i]) == 0 {
		c.i++
	}
	if c.i == len(c.parts) {
		return 0, io.EOF
	}
	n := copy(p, c.parts[c.i])
	c.parts[c.i] = c.parts[c.i][n:]
	return n, nil
}

// span is a range of rows [lo, hi) to try together.
type span struct{ lo, hi int }

var copyLine = regexp.MustCompile(`^COPY [^\n]*, line (\d+)`)

// lineOf returns the row number a refused COPY names, 0 when none.
func lineOf(err error) int {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return 0
	}
	if m := copyLine.FindStringSubmatch(pe.Where); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// isolate writes the rows range by range, each inside a savepoint, splitting a refused range at
// the row the database named (or in halves) until each refused row stands alone. first is the
// refusal of the whole batch.
func (s *Sink) isolate(ctx context.Context, first error) ([]connector.RecordError, error) {
	var refused []connector.RecordError
	stack := split(span{0, len(s.idx)}, lineOf(first))
	for len(stack) > 0 {
		sp := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		err := s.trySpan(ctx, sp)
		if err == nil {
			continue
		}
		if !isRowError(err) {
			return nil, err
		}
		if sp.hi-sp.lo == 1 {
			refused = append(refused, connector.RecordError{Index: s.idx[sp.lo], Err: refusal(err)})
			continue
		}
		stack = append(stack, split(sp, lineOf(err))...)
	}
	return refused, nil
}

// split divides a refused range, last part first (the stack takes the first part next): around
// the row the database named when there is one, else in halves. A single row stays whole, to
// be tried alone; every part of a longer range is shorter than it.
func split(sp span, line int) []span {
	var parts []span
	switch {
	case sp.hi-sp.lo <= 1:
		parts = []span{sp}
	case line >= 1 && line <= sp.hi-sp.lo:
		k := sp.lo + line - 1
		parts = []span{{k + 1, sp.hi}, {k, k + 1}, {sp.lo, k}}
	default:
		mid := sp.lo + (sp.hi-sp.lo)/2
		parts = []span{{mid, sp.hi}, {sp.lo, mid}}
	}
	return slices.DeleteFunc(parts, func(p span) bool { return p.hi <= p.lo })
}

// trySpan writes a range of rows inside a savepoint, rolling back to it when they are refused.
func (s *Sink) trySpan(ctx context.Context, sp span) error {
	if _, err := s.conn.Exec(ctx, "SAVEPOINT sluice_rows"); err != nil {
		return err
	}
	err := s.writeRows(ctx, sp.lo, sp.hi)
	if err == nil && s.cfg.Mode == modeUpsert {
		_, err = s.conn.Exec(ctx, s.sql.clear)
	}
	if err != nil {
		if !isRowError(err) {
			return err
		}
		if _, rerr := s.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT sluice_rows"); rerr != nil {
			return rerr
		}
	}
	if _, rerr := s.conn.Exec(ctx, "RELEASE SAVEPOINT sluice_rows"); rerr != nil {
		return rerr
	}
	return err
}

// refusal is the dead-letter reason of a row the database refused: its message, its detail,
// and the column or constraint it names.
func refusal(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("postgres refused the row: %w", err)
	}
	msg := fmt.Sprintf("postgres refused the row: %s (SQLSTATE %s)", pe.Message, pe.Code)
	if pe.Detail != "" {
		msg += ": " + pe.Detail
	}
	if pe.ColumnName != "" && !strings.Contains(msg, pe.ColumnName) {
		msg += fmt.Sprintf(" [column %s]", pe.ColumnName)
	}
	return errors.New(msg)
}

// isRowError reports whether the database refused the data itself: a data exception (class 22),
// an integrity constraint (class 23), a row over a limit (54000) or an exception raised by a
// trigger (P0001). Such an error is the fault of some row of the batch.
func isRowError(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch {
	case strings.HasPrefix(pe.Code, "22"), strings.HasPrefix(pe.Code, "23"):
		return true
	}
	return pe.Code == "54000" || pe.Code == "P0001"
}

// isPermanent reports whether a server error says something only a change of configuration,
// schema or grants can fix.
func isPermanent(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch {
	case strings.HasPrefix(pe.Code, "42"), strings.HasPrefix(pe.Code, "28"), strings.HasPrefix(pe.Code, "0A"):
		return true
	}
	return pe.Code == "25006" || pe.Code == "3D000" || pe.Code == "3F000"
}

// failed turns a write error into what the runtime sees: permanent when only a change can fix it,
// else retried, after dropping a connection that may be broken. A transaction whose connection
// was lost while it committed may have committed: the retry's transaction finds its positions
// stored and leaves out its records.
func (s *Sink) failed(err error) error {
	werr := fmt.Errorf("postgres sink: write to %s: %w", s.cfg.table, err)
	if isPermanent(err) {
		return &permanentError{werr}
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || s.conn.IsClosed() {
		_ = s.conn.Close(context.Background())
		s.conn = nil
	}
	return werr
}

// permanentError is an error retrying cannot fix (connector.ErrPermanent), shown without the
// sentinel's text.
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, connector.ErrPermanent} }

func permanentf(format string, args ...any) error {
	return &permanentError{fmt.Errorf(format, args...)}
}
