package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// maxConflictRetries bounds how often one write re-reads the table and commits again after
// other writers committed first.
const maxConflictRetries = 20

// Sink appends records to an Iceberg table. The runtime calls Write or WriteTx from one goroutine
// at a time.
type Sink struct {
	plan        catalogPlan
	ident       table.Identifier
	name        string // the table as the manifest names it
	cols        []column
	partition   []partitionField // nil: not declared
	tableProp   ice.Properties
	key         string // the snapshot summary key of this pipeline's sink
	fromRecords bool   // evolve: add columns for the records' new top-level fields
	env         connector.Env

	cat    catalog.Catalog
	tbl    *table.Table
	schema *arrow.Schema // the table's, with field ids
	conv   *converter
	mem    memory.Allocator

	stored    map[string]connector.Position // what the table holds for this sink, as of tbl
	unsure    bool                          // a commit failed in a way that leaves its outcome unknown
	contended bool                          // a recent commit lost a race: read the table before committing
	noPreload bool                          // tests: never read the table before a commit
	stats     commitStats

	expiry     expiryConfig
	lastExpiry time.Time // the last expiry, or the open
}

// commitStats counts what WriteTx did, for tests and measurements.
type commitStats struct {
	attempts  int // commits tried
	conflicts int // commits refused because another writer committed first
	rewrites  int // data files written again without records another instance committed
	preloads  int // table reads before a commit, expecting other writers
}

var (
	_ connector.Sink              = (*Sink)(nil)
	_ connector.TransactionalSink = (*Sink)(nil)
	_ connector.SharedPositions   = (*Sink)(nil)
)

// NewSink builds an Iceberg sink from its configuration. It does no I/O: it checks the schema,
// the partition spec against it, the table name and the catalog settings.
func NewSink(cfg connector.Config, env connector.Env) (*Sink, error) {
	var c struct {
		Catalog    catalogConfig     `config:"catalog"`
		Table      string            `config:"table"`
		Schema     []columnConfig    `config:"schema"`
		Partition  []string          `config:"partition"`
		Properties map[string]string `config:"table_properties"`
		Evolve     bool              `config:"evolve"`
		Expiry     expiryConfig      `config:"expire_snapshots"`
	}
	if err := sinkSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	plan, err := checkCatalog(c.Catalog)
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(c.Table, '.')
	if i <= 0 || i == len(c.Table)-1 || strings.Contains(c.Table, "..") {
		return nil, &connector.ConfigError{Field: "table", Msg: fmt.Sprintf("%q is not namespace.table", c.Table), Hint: "market.prices"}
	}
	cols, err := parseColumns(c.Schema, c.Evolve)
	if err != nil {
		return nil, err
	}
	s := &Sink{
		plan:        plan,
		ident:       strings.Split(c.Table, "."),
		name:        c.Table,
		cols:        cols,
		tableProp:   ice.Properties(c.Properties),
		key:         summaryKey(env.Pipeline, env.Component),
		fromRecords: c.Evolve,
		env:         env,
		mem:         memory.DefaultAllocator,
		expiry:      c.Expiry,
	}
	switch {
	case c.Expiry.OlderThan < 0:
		return nil, &connector.ConfigError{Field: "expire_snapshots.older_than", Msg: "must not be negative", Hint: "0s turns expiry off"}
	case c.Expiry.RetainLast < 1:
		return nil, &connector.ConfigError{Field: "expire_snapshots.retain_last", Msg: "must be at least 1", Hint: "10"}
	case c.Expiry.Interval < 0:
		return nil, &connector.ConfigError{Field: "expire_snapshots.interval", Msg: "must not be negative", Hint: "10m"}
	}
	if c.Partition != nil {
		if s.partition, err = parsePartition(c.Partition, cols); err != nil {
			return nil, err
		}
		if _, err := partitionSpec(s.partition, icebergSchema(cols)); err != nil {
			return nil, &connector.ConfigError{Field: "partition", Msg: err.Error()}
		}
	}
	return s, nil
}

var _ connector.HeaderBlindSink = (*Sink)(nil)

// IgnoresHeaders: columns come from the records' values only (connector.HeaderBlindSink).
func (s *Sink) IgnoresHeaders() bool { return true }

// CheckExactlyOnce reports that every configuration can be written exactly once.
func (s *Sink) CheckExactlyOnce() error { return nil }

// errorf prefixes an error with the sink and its table.
func (s *Sink) errorf(format string, args ...any) error {
	return fmt.Errorf("iceberg sink: table %s: "+format, append([]any{s.name}, args...)...)
}

// Open connects to the catalog, creates the namespace and the table when missing, and brings an
// existing table's schema up to the declared one (or refuses, naming the column).
func (s *Sink) Open(ctx context.Context) error {
	cat, err := s.plan.open(ctx)
	if err != nil {
		return fmt.Errorf("iceberg sink: catalog %s: %w", s.plan.display, err)
	}
	s.cat = cat
	s.lastExpiry = time.Now()
	ns := catalog.NamespaceFromIdent(s.ident)
	if err := cat.CreateNamespace(ctx, ns, nil); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		return s.errorf("create namespace %s: %w", strings.Join(ns, "."), err)
	}
	tbl, err := cat.LoadTable(ctx, s.ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		tbl, err = s.create(ctx)
	}
	if err != nil {
		return s.errorf("%w", err)
	}
	if tbl, err = s.evolve(ctx, tbl); err != nil {
		return err
	}
	return s.use(tbl)
}

// create makes the table with the declared schema, partition spec and properties.
func (s *Sink) create(ctx context.Context) (*table.Table, error) {
	sc := icebergSchema(s.cols)
	opts := []catalog.CreateTableOpt{catalog.WithProperties(s.tableProp)}
	if len(s.partition) > 0 {
		spec, err := partitionSpec(s.partition, sc)
		if err != nil {
			return nil, err
		}
		opts = append(opts, catalog.WithPartitionSpec(spec))
	}
	tbl, err := s.cat.CreateTable(ctx, s.ident, sc, opts...)
	if errors.Is(err, catalog.ErrTableAlreadyExists) { // created by another writer meanwhile
		return s.cat.LoadTable(ctx, s.ident)
	}
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	s.env.Logger.Info("created iceberg table", "table", s.name, "catalog", s.plan.display)
	return tbl, nil
}

// evolve checks an existing table against the declared schema and partitioning, and commits the
// schema changes Iceberg allows without rewriting data.
func (s *Sink) evolve(ctx context.Context, tbl *table.Table) (*table.Table, error) {
	permanent := func(err error) error {
		return fmt.Errorf("iceberg sink: table %s: %w (%w)", s.name, err, connector.ErrPermanent)
	}
	if s.partition != nil {
		if same, have := samePartitioning(tbl.Spec(), tbl.Schema(), s.partition); !same {
			return nil, permanent(&connector.ConfigError{Field: "partition",
				Msg:  fmt.Sprintf("the table is partitioned by %s, not by the declared %s", have, declared(s.partition)),
				Hint: "declare the table's partitioning (or leave partition out), or evolve the table's partition spec with an Iceberg tool"})
		}
	}
	ch, err := diffSchema(tbl.Schema(), s.cols, s.fromRecords)
	if err != nil {
		return nil, permanent(err)
	}
	if ch.empty() {
		return tbl, nil
	}
	tx := tbl.NewTransaction()
	up := tx.UpdateSchema(true, false)
	var what []string
	for _, c := range ch.add {
		up.AddColumn([]string{c.name}, c.typ, c.doc, false, nil)
		what = append(what, "add "+c.name+" "+c.typ.String())
	}
	for _, c := range ch.widen {
		up.UpdateColumn([]string{c.name}, table.ColumnUpdate{FieldType: ice.Optional[ice.Type]{Valid: true, Val: c.typ}})
		what = append(what, "widen "+c.name+" to "+c.typ.String())
	}
	for _, c := range ch.relax {
		up.UpdateColumn([]string{c.name}, table.ColumnUpdate{Required: ice.Optional[bool]{Valid: true, Val: false}})
		what = append(what, "make "+c.name+" optional")
	}
	if err := up.Commit(); err != nil {
		return nil, permanent(fmt.Errorf("schema update (%s): %w", strings.Join(what, ", "), err))
	}
	out, err := tx.Commit(ctx)
	if err != nil {
		return nil, s.errorf("commit schema update (%s): %w", strings.Join(what, ", "), err)
	}
	s.env.Logger.Info("evolved iceberg table schema", "table", s.name, "changes", strings.Join(what, ", "))
	return out, nil
}

func declared(fields []partitionField) string {
	var out []string
	for _, f := range fields {
		out = append(out, describeField(f.transform, f.source))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// use makes tbl the table the sink writes to: its Arrow schema and a converter for it.
func (s *Sink) use(tbl *table.Table) error {
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return s.errorf("arrow schema: %w", err)
	}
	cols := s.cols
	if s.fromRecords {
		cols = slices.Concat(s.cols, undeclared(tbl.Schema(), s.cols))
	}
	conv, err := newConverter(cols, sc, s.mem)
	if err != nil {
		return s.errorf("%w", err)
	}
	if s.fromRecords {
		var known []string
		for _, f := range tbl.Schema().Fields() {
			known = append(known, f.Name)
		}
		conv.evolving(known)
	}
	if s.conv != nil {
		s.conv.release()
	}
	s.tbl, s.schema, s.conv = tbl, sc, conv
	s.stored, err = storedPositions(tbl, s.key)
	if err != nil {
		return s.errorf("%w", err)
	}
	return nil
}

// Write appends the records as one commit. Records that do not fit the schema are reported in a
// *connector.BatchError after the others are committed.
func (s *Sink) Write(ctx context.Context, records []connector.Record) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	batch, failed, err := s.convert(ctx, records, nil)
	if err != nil {
		return err
	}
	if batch == nil {
		return batchError(failed)
	}
	files, err := s.writeFiles(ctx, batch)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := s.commit(ctx, files, nil, false)
		if err == nil {
			s.maybeExpire(ctx)
			return batchError(failed)
		}
		if !isConflict(err) {
			return s.errorf("commit: %w", err)
		}
		if err := s.retryAfterConflict(ctx, attempt, err); err != nil {
			return err
		}
	}
}

// maxEvolveRounds bounds how often one write adds columns and converts its records again.
const maxEvolveRounds = 3

// convert turns the records into a record batch of the table. With evolve, when some have
// top-level fields that are no column, it first adds those columns to the table (a commit of
// its own, before any data file carrying them) and converts the records again.
func (s *Sink) convert(ctx context.Context, records []connector.Record, skip func(int) bool) (arrow.RecordBatch, []connector.RecordError, error) {
	for round := 0; ; round++ {
		batch, failed := s.conv.convert(records, skip)
		if len(s.conv.found) == 0 || round == maxEvolveRounds {
			return batch, failed, nil
		}
		if batch != nil {
			batch.Release()
		}
		if err := s.addColumns(ctx, slices.Clone(s.conv.found)); err != nil {
			return nil, nil, err
		}
	}
}

// addColumns adds optional columns to the table, those another writer has not added meanwhile,
// and makes the result the table the sink writes to. A commit that loses the race to another
// writer's is made again on the table as it is then.
func (s *Sink) addColumns(ctx context.Context, cols []newColumn) error {
	for attempt := 0; ; attempt++ {
		sc := s.tbl.Schema()
		var what []string
		tx := s.tbl.NewTransaction()
		up := tx.UpdateSchema(true, false)
		for _, c := range cols {
			if _, ok := sc.FindFieldByName(c.name); ok {
				continue
			}
			typ := typeOfKind(c.kind)
			up.AddColumn([]string{c.name}, typ, "", false, nil)
			what = append(what, c.name+" "+typ.String())
		}
		if len(what) == 0 {
			return s.use(s.tbl)
		}
		if err := up.Commit(); err != nil {
			return s.errorf("add columns %s: %w (%w)", strings.Join(what, ", "), err, connector.ErrPermanent)
		}
		tbl, err := tx.Commit(ctx)
		if err == nil {
			s.env.Logger.Info("added columns to iceberg table", "table", s.name, "columns", strings.Join(what, ", "))
			return s.use(tbl)
		}
		if !isConflict(err) {
			s.unsure = true // the commit may have landed; the next write reads the table again
			return s.errorf("commit added columns %s: %w", strings.Join(what, ", "), err)
		}
		if err := s.retryAfterConflict(ctx, attempt, err); err != nil {
			return err
		}
	}
}

// isConflict reports whether a commit failed because the table moved since it was read, which
// leaves nothing committed. The REST catalog answers 409 (table.ErrCommitFailed); the SQL catalog
// checks the commit's requirements itself and returns their "requirement failed" error unwrapped.
func isConflict(err error) bool {
	return errors.Is(err, table.ErrCommitFailed) || errors.Is(err, errStaleView) || strings.Contains(err.Error(), "requirement failed:")
}

// errStaleView marks a commit staged on a snapshot whose files another writer's expiry deleted.
var errStaleView = errors.New("the table changed since it was read (an expiry removed the snapshot read)")

// retryAfterConflict waits a little and reloads the table after a conflicting commit, or gives up
// after maxConflictRetries attempts. The wait grows with the attempts and is jittered, so writers
// that keep colliding spread out.
func (s *Sink) retryAfterConflict(ctx context.Context, attempt int, err error) error {
	if attempt >= maxConflictRetries {
		return s.errorf("commit: still conflicting with other writers after %d attempts: %w", attempt+1, err)
	}
	t := time.NewTimer(conflictBackoff(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	return s.refresh(ctx)
}

// conflictBackoff is the wait before the commit after conflict number attempt (from 0): from
// 2.5-5 ms doubling up to 0.5-1 s, half of it random.
func conflictBackoff(attempt int) time.Duration {
	d := min(5*time.Millisecond<<min(attempt, 8), time.Second)
	return d/2 + rand.N(d/2+1)
}

func (s *Sink) ready(ctx context.Context) error {
	if s.conv == nil {
		return errors.New("iceberg sink: write before open")
	}
	return ctx.Err()
}

func batchError(failed []connector.RecordError) error {
	if len(failed) == 0 {
		return nil
	}
	return &connector.BatchError{Failed: failed}
}

// writeFiles writes the batch as Parquet data files of the table (one or more per partition)
// and releases it.
func (s *Sink) writeFiles(ctx context.Context, batch arrow.RecordBatch) ([]ice.DataFile, error) {
	one := func(yield func(arrow.RecordBatch, error) bool) { yield(batch, nil) }
	var files []ice.DataFile
	for df, err := range table.WriteRecords(ctx, s.tbl, s.schema, iter.Seq2[arrow.RecordBatch, error](one)) {
		if err != nil {
			return nil, s.errorf("write data files: %w", err)
		}
		files = append(files, df)
	}
	return files, nil
}

// StoredPositions returns the positions of the latest snapshot this pipeline's sink committed,
// read afresh from the catalog.
func (s *Sink) StoredPositions(ctx context.Context) ([]connector.Position, error) {
	if s.cat == nil {
		return nil, errors.New("iceberg sink: StoredPositions before open")
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	return sortedPositions(s.stored), nil
}

// refresh reloads the table and what it holds for this sink.
func (s *Sink) refresh(ctx context.Context) error {
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return s.errorf("load: %w", err)
	}
	return s.adopt(tbl)
}

// adopt makes tbl, as the catalog has it now, the table the sink writes to, with what it holds
// for this sink: the stored positions always belong to the table a pinned commit asserts.
func (s *Sink) adopt(tbl *table.Table) error {
	if tbl.Schema().ID != s.tbl.Schema().ID {
		if err := s.use(tbl); err != nil {
			return err
		}
		s.unsure = false
		return nil
	}
	stored, err := storedPositions(tbl, s.key)
	if err != nil {
		return s.errorf("%w", err)
	}
	s.tbl, s.stored, s.unsure = tbl, stored, false
	return nil
}

// SharesPositions reports that several instances of one pipeline's sink may write the table at
// once (connector.SharedPositions): a commit is pinned to the snapshot whose positions decided
// what it skips, and one that loses the race is made again on the table as it is then.
func (s *Sink) SharesPositions() bool { return true }

// txWrite is one WriteTx's records as converted against the positions of the table the sink
// last read: the data files holding them, the records refused, and the records the files hold.
type txWrite struct {
	records []connector.Record
	files   []ice.DataFile
	failed  []connector.RecordError
	kept    []int // indexes of the records in files
}

// prepare converts the records the table does not hold yet (after the offset stored for their
// partition) and writes them as data files.
func (s *Sink) prepare(ctx context.Context, w *txWrite) error {
	w.files, w.failed, w.kept = nil, nil, w.kept[:0]
	batch, failed, err := s.convert(ctx, w.records, func(i int) bool { return s.holds(w.records[i].Position) })
	if err != nil {
		return err
	}
	w.failed = failed
	if batch == nil {
		return nil
	}
	// Adding columns (convert) may have read the table again: the last conversion skipped by
	// what s.stored holds now, so the records kept are those it does not cover and not refused.
	refused := make(map[int]bool, len(failed))
	for _, f := range failed {
		refused[f.Index] = true
	}
	for i, r := range w.records {
		if !refused[i] && !s.holds(r.Position) {
			w.kept = append(w.kept, i)
		}
	}
	w.files, err = s.writeFiles(ctx, batch)
	return err
}

// holds reports whether the positions the sink last read cover p: a record at or before the
// offset stored for its partition is in the table already.
func (s *Sink) holds(p connector.Position) bool {
	q, ok := s.stored[p.Partition]
	return ok && p.Offset <= q.Offset
}

// covered returns how many of the records in w's files the positions the sink last read cover.
func (s *Sink) covered(w *txWrite) int {
	n := 0
	for _, i := range w.kept {
		if s.holds(w.records[i].Position) {
			n++
		}
	}
	return n
}

// abandon removes data files no commit references (every commit that carried them was refused
// as a conflict, which commits nothing). A file that cannot be removed is an orphan no reader
// sees; it is logged and left.
func (s *Sink) abandon(ctx context.Context, files []ice.DataFile, why string) {
	if len(files) == 0 {
		return
	}
	fs, err := s.tbl.FS(ctx)
	removed := 0
	for _, f := range files {
		if err == nil {
			err = fs.Remove(f.FilePath())
		}
		if err != nil {
			s.env.Logger.Warn("could not remove an uncommitted data file; it is an orphan no snapshot references",
				"table", s.name, "file", f.FilePath(), "error", err)
			err = nil
			continue
		}
		removed++
	}
	s.env.Logger.Debug("removed uncommitted data files", "table", s.name, "files", removed, "reason", why)
}

// WriteTx appends the records and stores the positions in the same commit's snapshot summary.
// Every record at or before the offset the table holds for its partition when the commit lands
// is left out, whichever instance of this pipeline's sink stored it, and each partition's
// position becomes the greater of the stored and the given one (connector.SharedPositions).
//
// The commit is pinned to the snapshot the sink read (AssertRefSnapshotID), whose positions
// decided what was skipped. When another writer committed first, the sink reads the table again:
// if the positions now stored cover none of the records in its data files, it commits the same
// files on top; if they cover some (another instance wrote them meanwhile), it removes those
// files, converts and writes the records again without the covered ones, and commits that. Up to
// maxConflictRetries conflicts per write, with a growing, jittered wait between them. After a
// conflict, later writes read the table just before their commit, which costs one load but
// saves the failed commit while several instances write.
func (s *Sink) WriteTx(ctx context.Context, records []connector.Record, positions []connector.Position) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	if s.unsure {
		if err := s.refresh(ctx); err != nil {
			return err
		}
	}
	w := &txWrite{records: records}
	if err := s.prepare(ctx, w); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if attempt == 0 && s.contended && !s.noPreload {
			head := snapshotID(s.tbl)
			if err := s.refresh(ctx); err != nil {
				s.abandon(ctx, w.files, "the table could not be read before the commit")
				return err
			}
			s.stats.preloads++
			s.contended = snapshotID(s.tbl) != head // nobody else committed: stop reading ahead
		}
		if n := s.covered(w); n > 0 {
			s.stats.rewrites++
			s.abandon(ctx, w.files, fmt.Sprintf("another instance committed %d of their %d records", n, len(w.kept)))
			if err := s.prepare(ctx, w); err != nil {
				return err
			}
		}
		next, moved := mergePositions(s.stored, positions)
		if len(w.files) == 0 && !moved {
			return batchError(w.failed)
		}
		value, err := encodePositions(next)
		if err != nil {
			s.abandon(ctx, w.files, "the positions could not be encoded")
			return s.errorf("%w", err)
		}
		s.stats.attempts++
		err = s.commit(ctx, w.files, ice.Properties{s.key: value}, true)
		if err == nil {
			s.stored = next
			s.maybeExpire(ctx) // after stored: an expiry may adopt a newer table, with its positions
			return batchError(w.failed)
		}
		if !isConflict(err) {
			return s.unknownOutcome(ctx, err, positions, w)
		}
		// Another writer committed first; nothing of this commit was. Read the table again and
		// commit on top of it (the next round drops what it now holds).
		s.stats.conflicts++
		s.env.Logger.Debug("iceberg commit conflict", "table", s.name, "attempt", attempt+1, "files", len(w.files))
		s.contended = true
		if err := s.retryAfterConflict(ctx, attempt, err); err != nil {
			s.abandon(ctx, w.files, "the write gave up after conflicts")
			return err
		}
	}
}

// snapshotID is the table's current snapshot, -1 for none.
func snapshotID(tbl *table.Table) int64 {
	if snap := tbl.CurrentSnapshot(); snap != nil {
		return snap.SnapshotID
	}
	return -1
}

// unknownOutcome follows a commit that failed in a way that leaves open whether the catalog took
// it (a timeout, a 5xx, a dropped connection); its data files are kept, as a snapshot may
// reference them. It re-reads the table: if the positions stored now cover every position and
// record of the write, the write is in the table (this commit landed, or another instance
// committed the same records) and it succeeded. Otherwise the error is returned, and a retry
// skips whatever the table holds by then. If the table cannot be read, the sink stays unsure and
// the next WriteTx reads it first.
func (s *Sink) unknownOutcome(ctx context.Context, err error, positions []connector.Position, w *txWrite) error {
	s.unsure = true
	if rerr := s.refresh(ctx); rerr == nil && (len(positions) > 0 || len(w.kept) > 0) && s.covered(w) == len(w.kept) {
		all := true
		for _, p := range positions {
			if !s.holds(p) {
				all = false
				break
			}
		}
		if all {
			s.env.Logger.Warn("iceberg commit reported an error but its positions are in the table", "table", s.name, "error", err)
			return batchError(w.failed)
		}
	}
	return s.errorf("commit: %w", err)
}

// commit appends files (none: an empty append, moving positions alone) with the summary props.
// With pin, the commit requires the table's current snapshot to be the one the sink last read,
// instead of letting iceberg-go replay it on top of whatever was committed meanwhile.
func (s *Sink) commit(ctx context.Context, files []ice.DataFile, props ice.Properties, pin bool) error {
	tx := s.tbl.NewTransaction()
	if pin {
		if err := tx.AssertRefSnapshotID(""); err != nil {
			return err
		}
	}
	var err error
	if len(files) > 0 {
		err = tx.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck())
	} else {
		err = tx.AddFiles(ctx, nil, props, false)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// The snapshot the sink read last is gone with its manifests: another writer's
			// expiry deleted them. Like a conflict: read the table again and commit on top.
			return fmt.Errorf("stage append: %w: %w", errStaleView, err)
		}
		return fmt.Errorf("stage append: %w", err)
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		return err
	}
	s.tbl = tbl
	return nil
}

// Close releases the catalog connection. It is idempotent.
func (s *Sink) Close(context.Context) error {
	if s.conv != nil {
		s.conv.release()
		s.conv = nil
	}
	var err error
	if s.cat != nil {
		err = closeCatalog(s.cat)
		s.cat = nil
	}
	s.tbl = nil
	return err
}
