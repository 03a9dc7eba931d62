package iceberg_test

import (
	"errors"
	"fmt"
	"github.com/sluicehq/sluice/connectors/iceberg"
	"github.com/sluicehq/sluice/internal/testenv"
	"slices"
	"strings"
	"testing"

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
// again on top of it; one that loses to another instance of the same pipeline's sink stops with
// a permanent error; a repeated write stores nothing twice; positions move without records.
func TestExactlyOnceWriters(t *testing.T) { testExactlyOnceWriters(t, sqliteDest(t)) }

func TestExactlyOnceWritersRESTIntegration(t *testing.T) {
	testExactlyOnceWriters(t, restDest(t, testenv.Require(t, "ICEBERG_REST_URI")))
}

func testExactlyOnceWriters(t *testing.T, d dest) {
	name := uniqueTable(t, d)
	cfg := map[string]any{"catalog": d.catalog, "table": name, "schema": []any{col("part", "string", true), col("seq", "long", true)}}
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
	if err := write(a, slices.Concat(seqRecords("p0", 10, 10), seqRecords("p1", 0, 5)), pos("p0", 19), pos("p1", 4)); err != nil {
		t.Fatalf("a after b committed: %v", err)
	}

	// A second instance of pipeline a's sink, and the first one committing before it.
	a2 := openSink(t, cfg, env("a"))
	if err := write(a, seqRecords("p0", 20, 10), pos("p0", 29)); err != nil {
		t.Fatalf("a: %v", err)
	}
	err := write(a2, seqRecords("p0", 20, 10), pos("p0", 29))
	if err == nil || !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), `another writer committed positions for pipeline "a" sink "lake"`) {
		t.Fatalf("a second writer of pipeline a = %v; want a permanent error naming the pipeline", err)
	}
	t.Logf("second writer: %v", err)

	// The same write again (a retry after an unknown outcome) stores nothing twice.
	if err := write(a, seqRecords("p0", 25, 5), pos("p0", 29)); err != nil {
		t.Fatalf("repeated write: %v", err)
	}
	// Positions move without records (all filtered out or dead-lettered).
	if err := write(a, nil, pos("p0", 35)); err != nil {
		t.Fatalf("positions only: %v", err)
	}
	// A record refused by the schema goes to the dead letters, the positions still move.
	bad := connector.Record{Value: []byte(`{"part":"p0","seq":"x"}`), Position: pos("p0", 36)}
	err = write(a, append(seqRecords("p0", 37, 3), bad), pos("p0", 39))
	var be *connector.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 3 {
		t.Fatalf("write with a bad record = %v; want a BatchError for index 3", err)
	}

	for _, tc := range []struct {
		s    *iceberg.Sink
		want []connector.Position
	}{
		{a, []connector.Position{pos("p0", 39), pos("p1", 4)}},
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
	for _, r := range slices.Concat(seqRecords("p0", 0, 30), seqRecords("p1", 0, 5), seqRecords("q", 100, 10), seqRecords("p0", 37, 3)) {
		want[string(r.Value)] = 1
	}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("the table holds %v\nwant %v", count, want)
	}
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
