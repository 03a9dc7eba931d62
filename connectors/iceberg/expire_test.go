package iceberg_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/iceberg"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestSnapshotExpiryKeepsPositions: a sink expiring after every commit (older_than 1ms,
// retain_last 1) leaves the table with its current snapshot and the one holding another
// pipeline's positions, kept under a tag; both pipelines find their positions afterwards (the
// other one's no longer in the current snapshot's ancestry); every row is still there for
// iceberg-go and PyIceberg; the manifest lists of the expired snapshots are deleted.
func TestSnapshotExpiryKeepsPositions(t *testing.T) { testSnapshotExpiry(t, sqliteDest(t)) }

func TestSnapshotExpiryKeepsPositionsRESTIntegration(t *testing.T) {
	testSnapshotExpiry(t, restDest(t, testenv.Require(t, "ICEBERG_REST_URI")))
}

func testSnapshotExpiry(t *testing.T, d dest) {
	name := uniqueTable(t, d)
	cfg := func(expiry map[string]any) map[string]any {
		c := map[string]any{"catalog": d.catalog, "table": name, "schema": []any{col("part", "string", true), col("seq", "long", true)}}
		if expiry != nil {
			c["expire_snapshots"] = expiry
		}
		return c
	}
	aggressive := map[string]any{"older_than": time.Millisecond, "retain_last": int64(1), "interval": time.Duration(0)}
	b := openSink(t, cfg(nil), env("b")) // the default: no expiry within this test
	if err := b.WriteTx(ctx(t), seqRecords("q", 100, 10), []connector.Position{pos("q", 109)}); err != nil {
		t.Fatalf("b: %v", err)
	}
	a := openSink(t, cfg(aggressive), env("a"))
	for k := range 6 {
		if err := a.WriteTx(ctx(t), seqRecords("p0", 10*k, 10), []connector.Position{pos("p0", 10*k+9)}); err != nil {
			t.Fatalf("a, write %d: %v", k, err)
		}
	}

	tbl := loadTable(t, d, name)
	meta := tbl.Metadata()
	var ids []int64
	for _, s := range meta.Snapshots() {
		ids = append(ids, s.SnapshotID)
	}
	tags := map[string]int64{}
	for ref, r := range meta.Refs() {
		tags[ref] = r.SnapshotID
	}
	cur := tbl.CurrentSnapshot().SnapshotID
	if len(ids) != 2 || !slices.Contains(ids, cur) {
		t.Errorf("after 7 commits with expiry: snapshots %v (current %d), want 2: the current one and the one holding b's positions", ids, cur)
	}
	if tags["sluice.positions.a.lake"] != cur || !slices.Contains(ids, tags["sluice.positions.b.lake"]) || tags["sluice.positions.b.lake"] == cur {
		t.Errorf("refs %v; want the tag of a's positions on the current snapshot %d and b's on its own snapshot", tags, cur)
	}

	// New instances of both pipelines' sinks find their positions: b's through the tagged
	// snapshot, as the current snapshot's ancestry no longer reaches it.
	for _, tc := range []struct {
		pipeline string
		want     []connector.Position
	}{
		{"a", []connector.Position{pos("p0", 59)}},
		{"b", []connector.Position{pos("q", 109)}},
	} {
		s := openSink(t, cfg(nil), env(tc.pipeline))
		got, err := s.StoredPositions(ctx(t))
		if err != nil || !slices.EqualFunc(got, tc.want, samePosition) {
			t.Errorf("pipeline %s after expiry: StoredPositions = %v, %v; want %v", tc.pipeline, got, err, tc.want)
		}
	}
	// A write overlapping what a committed leaves those records out: a's own positions survived.
	if err := a.WriteTx(ctx(t), seqRecords("p0", 55, 10), []connector.Position{pos("p0", 64)}); err != nil {
		t.Fatalf("a, overlapping write: %v", err)
	}

	count := map[string]int{}
	for _, row := range readRows(t, d, name) {
		count[row]++
	}
	want := map[string]int{}
	for _, r := range slices.Concat(seqRecords("p0", 0, 65), seqRecords("q", 100, 10)) {
		want[string(r.Value)] = 1
	}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("iceberg-go reads %v\nwant %v", count, want)
	}
	py := readWithPyIceberg(t, d, name, "seq")
	if len(py.Rows) != 75 {
		t.Errorf("PyIceberg reads %d rows, want 75", len(py.Rows))
	}
	if loc := loadTable(t, d, name).Location(); strings.HasPrefix(loc, "file://") {
		lists, _ := filepath.Glob(filepath.Join(strings.TrimPrefix(loc, "file://"), "metadata", "snap-*.avro"))
		kept := len(loadTable(t, d, name).Metadata().Snapshots())
		if len(lists) != kept {
			t.Errorf("%d manifest lists under the table's metadata, want one per kept snapshot (%d)", len(lists), kept)
		}
	}
}

// TestSnapshotExpiryOff: older_than 0s keeps every snapshot; bad settings are refused with the
// field named.
func TestSnapshotExpiryOff(t *testing.T) {
	d := sqliteDest(t)
	name := uniqueTable(t, d)
	cfg := map[string]any{"catalog": d.catalog, "table": name, "schema": []any{col("part", "string", true), col("seq", "long", true)},
		"expire_snapshots": map[string]any{"older_than": time.Duration(0), "retain_last": int64(1), "interval": time.Duration(0)}}
	a := openSink(t, cfg, env("a"))
	for k := range 4 {
		if err := a.WriteTx(ctx(t), seqRecords("p0", 10*k, 10), []connector.Position{pos("p0", 10*k+9)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(loadTable(t, d, name).Metadata().Snapshots()); n != 4 {
		t.Errorf("expiry off: %d snapshots after 4 commits, want 4", n)
	}
	for field, v := range map[string]map[string]any{
		"expire_snapshots.older_than":  {"older_than": -time.Second},
		"expire_snapshots.retain_last": {"retain_last": int64(0)},
		"expire_snapshots.interval":    {"interval": -time.Second},
	} {
		c := map[string]any{"catalog": d.catalog, "table": name, "schema": cfg["schema"], "expire_snapshots": v}
		_, err := iceberg.NewSink(specConfig(t, c), env("a"))
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("expire_snapshots %v: NewSink = %v, want a ConfigError for %s", v, err, field)
		}
	}
}
