package iceberg_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/iceberg"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func seqRecords(part string, from, n int) []connector.Record {
	out := make([]connector.Record, n)
	for i := range out {
		out[i] = connector.Record{Value: fmt.Appendf(nil, `{"part":%q,"seq":%d}`, part, from+i), Position: connector.Position{Partition: part, Offset: int64(from + i)}}
	}
	return out
}

func pos(part string, off int) connector.Position {
	return connector.Position{Partition: part, Offset: int64(off)}
}

// TestExactlyOnceWriters: a commit that loses the race to another pipeline's commit is made
// again on top of it with the same files; one that loses to another instance of the same
// pipeline's sink leaves out the records that instance committed (writing its data files again
// without them, the first ones removed); a stale instance moves no position back and stores
// nothing twice; positions move without records; no data file is left behind unreferenced.
func TestExactlyOnceWriters(t *testing.T) { testExactlyOnceWriters(t, sqliteDest(t), nil) }

func TestExactlyOnceWritersRESTIntegration(t *testing.T) {
	testExactlyOnceWriters(t, restDest(t, testenv.Require(t, "ICEBERG_REST_URI")), nil)
}

// TestExactlyOnceWritersExpiring: the same with every sink expiring snapshots after each of its
// commits, down to the last one.
func TestExactlyOnceWritersExpiring(t *testing.T) {
	testExactlyOnceWriters(t, sqliteDest(t), map[string]any{"older_than": time.Millisecond, "retain_last": int64(1), "interval": time.Duration(0)})
}

func testExactlyOnceWriters(t *testing.T, d dest, expiry map[string]any) {
	name := uniqueTable(t, d)
	cfg := map[string]any{"catalog": d.catalog, "table": name, "schema": []any{col("part", "string", true), col("seq", "long", true)}}
	if expiry != nil {
		cfg["expire_snapshots"] = expiry
	}
	a := openSink(t, cfg, env("a"))
	b := openSink(t, cfg, env("b"))
	write := func(s *iceberg.Sink, recs []connector.Record, ps ...connector.Position) error {
		t.Helper()
		return s.WriteTx(ctx(t), recs, ps)
	}
	if err := write(a, seqRecords("p0", 0, 10), pos("p0", 9)); err != nil {
		t.Fatalf("a: %v", err)
	}
	if err := write(b, seqRecords("q", 100, 10), pos("q", 109)); err != nil { // b read the table before a's commit
		t.Fatalf("b after a committed: %v", err)
	}
	if _, conflicts, rewrites, _ := iceberg.CommitCounts(b); conflicts != 1 || rewrites != 0 {
		t.Errorf("b, behind another pipeline's commit: %d conflicts and %d rewrites, want 1 and 0", conflicts, rewrites)
	}
	if err := write(a, slices.Concat(seqRecords("p0", 10, 10), seqRecords("p1", 0, 5)), pos("p0", 19), pos("p1", 4)); err != nil {
		t.Fatalf("a after b committed: %v", err)
	}

	// A second instance of pipeline a's sink, its view taken before a commits p0 20..29; it then
	// writes p0 20..34: only 30..34 is new.
	a2 := openSink(t, cfg, env("a"))
	if err := write(a, seqRecords("p0", 20, 10), pos("p0", 29)); err != nil {
		t.Fatalf("a: %v", err)
	}
	if err := write(a2, seqRecords("p0", 20, 15), pos("p0", 34)); err != nil {
		t.Fatalf("a second instance of pipeline a, writing records the first committed: %v", err)
	}
	if attempts, conflicts, rewrites, _ := iceberg.CommitCounts(a2); attempts != 2 || conflicts != 1 || rewrites != 1 {
		t.Errorf("the second instance made %d commits, %d conflicts and %d rewrites; want 2, 1 and 1", attempts, conflicts, rewrites)
	}
	// Stale positions do not move back, and their records are not written again: a read p0 up
	// to 29, a2 wrote up to 34.
	if err := write(a, seqRecords("p0", 25, 10), pos("p0", 34)); err != nil {
		t.Fatalf("a, writing what a2 committed: %v", err)
	}
	if err := write(a2, seqRecords("p0", 3, 5), pos("p0", 7), pos("p1", 2)); err != nil {
		t.Fatalf("a2, writing old positions: %v", err)
	}
	// Positions move without records (all filtered out or dead-lettered).
	if err := write(a, nil, pos("p0", 35)); err != nil {
		t.Fatalf("positions only: %v", err)
	}
	// A record refused by the schema goes to the dead letters, the positions still move.
	bad := connector.Record{Value: []byte(`{"part":"p0","seq":"x"}`), Position: pos("p0", 36)}
	err := write(a2, append(seqRecords("p0", 37, 3), bad), pos("p0", 39))
	var be *connector.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 3 {
		t.Fatalf("write with a bad record = %v; want a BatchError for index 3", err)
	}

	for _, tc := range []struct {
		s    *iceberg.Sink
		want []connector.Position
	}{
		{a, []connector.Position{pos("p0", 39), pos("p1", 4)}},
		{a2, []connector.Position{pos("p0", 39), pos("p1", 4)}},
		{b, []connector.Position{pos("q", 109)}},
	} {
		got, err := tc.s.StoredPositions(ctx(t))
		if err != nil || !slices.EqualFunc(got, tc.want, samePosition) {
			t.Errorf("StoredPositions = %v, %v; want %v", got, err, tc.want)
		}
	}
	count := map[string]int{}
	for _, row := range readRows(t, d, name) {
		count[row]++
	}
	want := map[string]int{}
	for _, r := range slices.Concat(seqRecords("p0", 0, 35), seqRecords("p1", 0, 5), seqRecords("q", 100, 10), seqRecords("p0", 37, 3)) {
		want[string(r.Value)] = 1
	}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("the table holds %v\nwant %v", count, want)
	}
	if orphans := unreferencedFiles(t, d, name); len(orphans) > 0 {
		t.Errorf("data files no snapshot references: %v", orphans)
	}
}

// unreferencedFiles lists the Parquet files under the table's data directory that its current
// snapshot does not reference.
func unreferencedFiles(t *testing.T, d dest, name string) []string {
	t.Helper()
	tbl := loadTable(t, d, name)
	tasks, err := tbl.Scan().PlanFiles(ctx(t))
	if err != nil {
		t.Fatalf("plan files of %s: %v", name, err)
	}
	referenced := map[string]bool{}
	for _, task := range tasks {
		referenced[strings.TrimPrefix(task.File.FilePath(), "file://")] = true
	}
	root := filepath.Join(strings.TrimPrefix(tbl.Location(), "file://"), "data")
	var out []string
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(path, ".parquet") && !referenced[path] {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list the data files of %s: %v", name, err)
	}
	if len(referenced) == 0 {
		t.Fatalf("the current snapshot of %s references no data file", name)
	}
	return out
}

// TestLostCommitAnswerIntegration: the catalog takes a commit but its answer is lost (a 502 from a
// proxy). The sink finds its positions in the table and reports success; a retry of the same write
// stores nothing twice.
func TestLostCommitAnswerIntegration(t *testing.T) {
	uri := testenv.Require(t, "ICEBERG_REST_URI")
	d := restDest(t, uri)
	proxy := newCommitProxy(t, uri)
	name := uniqueTable(t, d)
	proxy.table = name[strings.LastIndexByte(name, '.')+1:]
	s := openSink(t, map[string]any{"catalog": map[string]any{"type": "rest", "uri": proxy.srv.URL}, "table": name,
		"schema": []any{col("part", "string", true), col("seq", "long", true)}}, env("lost"))
	if err := s.WriteTx(ctx(t), seqRecords("p", 0, 10), []connector.Position{pos("p", 9)}); err != nil {
		t.Fatalf("first write: %v", err)
	}
	proxy.mode.Store(proxyLoseAnswer)
	if err := s.WriteTx(ctx(t), seqRecords("p", 10, 10), []connector.Position{pos("p", 19)}); err != nil {
		t.Fatalf("write whose answer was lost = %v; want nil (the commit landed)", err)
	}
	if proxy.hits.Load() != 1 {
		t.Fatalf("the proxy broke %d commits, want 1", proxy.hits.Load())
	}
	// The runtime retries a write it saw fail: the same records again store nothing twice.
	if err := s.WriteTx(ctx(t), seqRecords("p", 10, 10), []connector.Position{pos("p", 19)}); err != nil {
		t.Fatalf("repeated write: %v", err)
	}
	rows := readRows(t, d, name)
	if len(rows) != 20 {
		t.Errorf("the table holds %d rows, want 20: %v", len(rows), rows)
	}
	if got, err := s.StoredPositions(ctx(t)); err != nil || !slices.EqualFunc(got, []connector.Position{pos("p", 19)}, samePosition) {
		t.Errorf("StoredPositions = %v, %v; want p@19", got, err)
	}
}

// TestSharedWritersContention: three instances of one pipeline's sink commit at a steady pace,
// as the processes of a consumer group do, each its own partition, and now and then one takes
// over a neighbour's partition from the neighbour's last commit while the neighbour still writes
// it. Every record is in the table once and the positions are the last of each partition. It
// logs the commits, conflicts and rewrites, once reading the table before a commit after a
// conflict (the sink's way) and once committing against the table last read. The load is set by
// SLUICE_ICEBERG_CONTENTION ("records=50000,interval=2s,commits=20" is a lake sink of the
// commodity platform); the default is small.
func TestSharedWritersContention(t *testing.T) { testSharedWritersContention(t, sqliteDest(t), nil) }

func TestSharedWritersContentionRESTIntegration(t *testing.T) {
	testSharedWritersContention(t, restDest(t, testenv.Require(t, "ICEBERG_REST_URI")), nil)
}

// TestSharedWritersContentionExpiring: the same with every sink expiring snapshots after each of
// its commits, down to the last two, so a sink often commits on a snapshot another one expired.
func TestSharedWritersContentionExpiring(t *testing.T) {
	testSharedWritersContention(t, sqliteDest(t), map[string]any{"older_than": time.Millisecond, "retain_last": int64(2), "interval": time.Duration(0)})
}

func testSharedWritersContention(t *testing.T, d dest, expiry map[string]any) {
	load := contentionLoad{records: 200, interval: 150 * time.Millisecond, commits: 12}
	if v := os.Getenv("SLUICE_ICEBERG_CONTENTION"); v != "" {
		load = parseContentionLoad(t, v)
	}
	for _, mode := range []string{"preload", "pinned"} {
		t.Run(mode, func(t *testing.T) {
			name := uniqueTable(t, d)
			cfg := map[string]any{"catalog": d.catalog, "table": name, "schema": []any{col("part", "string", true), col("seq", "long", true)}}
			if expiry != nil {
				cfg["expire_snapshots"] = expiry
			}
			const n = 3
			sinks := make([]*iceberg.Sink, n)
			for i := range sinks {
				sinks[i] = openSink(t, cfg, env("group"))
				if mode == "pinned" {
					iceberg.NoPreload(sinks[i])
				}
			}
			var committed [n]atomic.Int64 // per partition, the last batch its owner committed
			for i := range committed {
				committed[i].Store(-1)
			}
			part := func(i int) string { return fmt.Sprintf("own/%d", i) }
			batch := func(i, k int) []connector.Record { return seqRecords(part(i), k*load.records, load.records) }
			lat := make([][]time.Duration, n)
			errs := make(chan error, n)
			begin := time.Now()
			for i, s := range sinks {
				go func() {
					c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
					defer cancel()
					time.Sleep(time.Duration(i) * load.interval / n) // the processes' batches are not in step
					tick := time.NewTicker(load.interval)
					defer tick.Stop()
					for k := range load.commits {
						recs, ps := batch(i, k), []connector.Position{pos(part(i), (k+1)*load.records-1)}
						if j := (i + 1) % n; k%4 == 3 {
							// Take over the neighbour's partition from its last commit: one batch
							// before it (skipped) to one batch past it (which the neighbour writes too).
							c := int(committed[j].Load())
							from := max(c-1, 0)
							for b := from; b <= c+1 && b < load.commits; b++ {
								recs = append(recs, batch(j, b)...)
							}
							if last := min(c+1, load.commits-1); last >= from {
								ps = append(ps, pos(part(j), (last+1)*load.records-1))
							}
						}
						start := time.Now()
						if err := s.WriteTx(c, recs, ps); err != nil {
							errs <- fmt.Errorf("instance %d, batch %d: %w", i, k, err)
							return
						}
						lat[i] = append(lat[i], time.Since(start))
						committed[i].Store(int64(k))
						select {
						case <-tick.C:
						case <-c.Done():
						}
					}
					errs <- nil
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			elapsed := time.Since(begin)

			var all []time.Duration
			var attempts, conflicts, rewrites, preloads int
			for i, s := range sinks {
				a, c, r, p := iceberg.CommitCounts(s)
				attempts, conflicts, rewrites, preloads = attempts+a, conflicts+c, rewrites+r, preloads+p
				all = append(all, lat[i]...)
			}
			slices.Sort(all)
			writes := n * load.commits
			t.Logf("%s, %d instances, %d writes of %d records every %v (+ a neighbour's batches every 4th) in %v: %d commits tried, %d conflicts (%.2f a write), %d rewrites, %d reads before a commit; WriteTx p50 %v, p90 %v, max %v",
				mode, n, writes, load.records, load.interval, elapsed.Round(time.Millisecond), attempts, conflicts, float64(conflicts)/float64(writes), rewrites, preloads,
				all[len(all)/2].Round(time.Millisecond), all[len(all)*9/10].Round(time.Millisecond), all[len(all)-1].Round(time.Millisecond))

			fresh := openSink(t, cfg, env("group"))
			got, err := fresh.StoredPositions(ctx(t))
			var want []connector.Position
			for i := range n {
				want = append(want, pos(part(i), load.commits*load.records-1))
			}
			if err != nil || !slices.EqualFunc(got, want, samePosition) {
				t.Errorf("StoredPositions of a fresh instance = %v, %v; want %v", got, err, want)
			}
			count := map[string]int{}
			for _, row := range readRows(t, d, name) {
				count[row]++
			}
			missing, twice := 0, 0
			for i := range n {
				for _, r := range seqRecords(part(i), 0, load.commits*load.records) {
					switch count[string(r.Value)] {
					case 0:
						missing++
					case 1:
					default:
						twice++
					}
					delete(count, string(r.Value))
				}
			}
			if missing > 0 || twice > 0 || len(count) > 0 {
				t.Errorf("the table misses %d records, holds %d more than once and %d it should not", missing, twice, len(count))
			}
			if orphans := unreferencedFiles(t, d, name); len(orphans) > 0 {
				t.Errorf("%d data files no snapshot references, such as %s", len(orphans), orphans[0])
			}
		})
	}
}

type contentionLoad struct {
	records  int
	interval time.Duration
	commits  int
}

func parseContentionLoad(t *testing.T, v string) contentionLoad {
	var l contentionLoad
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "records":
			l.records, err = strconv.Atoi(val)
		case "interval":
			l.interval, err = time.ParseDuration(val)
		case "commits":
			l.commits, err = strconv.Atoi(val)
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			t.Fatalf("SLUICE_ICEBERG_CONTENTION=%q: %v (want records=N,interval=D,commits=N)", v, err)
		}
	}
	if l.records < 1 || l.interval <= 0 || l.commits < 4 {
		t.Fatalf("SLUICE_ICEBERG_CONTENTION=%q: records, interval and commits (at least 4) are all needed", v)
	}
	return l
}

// TestLoneWriterCost: a sink no other writer races makes one commit per write and reads the
// table no more than before; after a conflict it reads the table before its commits until a read
// finds no other writer's commit, then stops again.
func TestLoneWriterCost(t *testing.T) {
	d := sqliteDest(t)
	cfg := map[string]any{"catalog": d.catalog, "table": uniqueTable(t, d), "schema": []any{col("part", "string", true), col("seq", "long", true)}}
	a := openSink(t, cfg, env("a"))
	for k := range 5 {
		if err := a.WriteTx(ctx(t), seqRecords("p", 10*k, 10), []connector.Position{pos("p", 10*k+9)}); err != nil {
			t.Fatal(err)
		}
	}
	if attempts, conflicts, rewrites, preloads := iceberg.CommitCounts(a); attempts != 5 || conflicts != 0 || rewrites != 0 || preloads != 0 {
		t.Fatalf("5 writes alone: %d commits, %d conflicts, %d rewrites, %d reads before a commit; want 5, 0, 0, 0", attempts, conflicts, rewrites, preloads)
	}
	b := openSink(t, cfg, env("a"))
	if err := b.WriteTx(ctx(t), seqRecords("q", 0, 10), []connector.Position{pos("q", 9)}); err != nil {
		t.Fatal(err)
	}
	// The first write conflicts; the next reads the table first and finds no commit since its own;
	// the later ones read it no more.
	for k := 5; k < 8; k++ {
		if err := a.WriteTx(ctx(t), seqRecords("p", 10*k, 10), []connector.Position{pos("p", 10*k+9)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.WriteTx(ctx(t), seqRecords("p", 80, 10), []connector.Position{pos("p", 89)}); err != nil {
		t.Fatal(err)
	}
	if attempts, conflicts, _, preloads := iceberg.CommitCounts(a); attempts != 10 || conflicts != 1 || preloads != 1 {
		t.Fatalf("after another instance's commit: %d commits, %d conflicts, %d reads before a commit; want 10, 1, 1", attempts, conflicts, preloads)
	}
}
