package iceberg

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"
)

// expiryConfig is the sink's expire_snapshots setting.
type expiryConfig struct {
	OlderThan   time.Duration `config:"older_than"`
	RetainLast  int           `config:"retain_last"`
	Interval    time.Duration `config:"interval"`
	DeleteFiles bool          `config:"delete_files"`
}

// maybeExpire expires the table's old snapshots after a commit, once every interval of the
// sink's life (not right after open: a pipeline's processes would all do it at once). A failed
// expiry is logged and tried again an interval later; it never fails the write.
func (s *Sink) maybeExpire(ctx context.Context) {
	if s.expiry.OlderThan <= 0 || s.unsure || time.Since(s.lastExpiry) < s.expiry.Interval {
		return
	}
	s.lastExpiry = time.Now()
	removed, tagged, err := s.expire(ctx)
	if err != nil {
		s.env.Logger.Warn("iceberg snapshot expiry failed; trying again later", "table", s.name, "err", err, "in", s.expiry.Interval)
		return
	}
	if removed > 0 || tagged > 0 {
		s.env.Logger.Info("expired iceberg snapshots", "table", s.name, "removed", removed, "kept", len(s.tbl.Metadata().Snapshots()), "tags_moved", tagged)
	}
}

// expire keeps, for every pipeline whose positions the table holds, the snapshot holding them
// (a tag named after its summary key, moved to that pipeline's latest such snapshot), then
// expires the snapshots older than older_than beyond the last retain_last. It returns how many
// snapshots it removed and how many tags it moved.
func (s *Sink) expire(ctx context.Context) (removed, tagged int, err error) {
	tbl := s.tbl
	cur := tbl.CurrentSnapshot()
	if cur == nil {
		return 0, 0, nil
	}
	tags := map[string]int64{}
	for name, ref := range tbl.Metadata().Refs() {
		tags[name] = ref.SnapshotID
	}
	var reqs []table.Requirement
	var updates []table.Update
	carriers := positionCarriers(tbl)
	for _, key := range slices.Sorted(maps.Keys(carriers)) {
		id := carriers[key].SnapshotID
		old, ok := tags[key]
		if ok && old == id {
			continue
		}
		var was *int64
		if ok {
			was = &old
		}
		reqs = append(reqs, table.AssertRefSnapshotID(key, was))
		updates = append(updates, table.NewSetSnapshotRefUpdate(key, id, table.TagRef, 0, 0, 0))
	}
	if len(updates) > 0 {
		head := cur.SnapshotID
		reqs = append(reqs, table.AssertRefSnapshotID(table.MainBranch, &head))
		if _, _, err := s.cat.CommitTable(ctx, s.ident, reqs, updates); err != nil {
			return 0, 0, fmt.Errorf("tag the snapshots holding positions: %w", err)
		}
		if err := s.refresh(ctx); err != nil { // another writer may have committed since
			return 0, 0, err
		}
		tbl, tagged = s.tbl, len(updates)
	}
	before := len(tbl.Metadata().Snapshots())
	tx := tbl.NewTransaction()
	if err := tx.ExpireSnapshots(table.WithOlderThan(s.expiry.OlderThan), table.WithRetainLast(s.expiry.RetainLast),
		table.WithPostCommit(s.expiry.DeleteFiles)); err != nil {
		return 0, tagged, err
	}
	out, err := tx.Commit(ctx)
	if err != nil {
		return 0, tagged, fmt.Errorf("commit: %w", err)
	}
	// iceberg-go replays a commit that lost a race on top of the other writer's: adopt recomputes
	// the stored positions for the table as it is now.
	if err := s.adopt(out); err != nil {
		return 0, tagged, err
	}
	return before - len(out.Metadata().Snapshots()), tagged, nil
}

// positionCarriers returns, for each summary key holding positions, the snapshot whose positions
// count: the latest carrying it in the current snapshot's ancestry; when the ancestry has lost it
// (its older snapshots expired), the carrier of the highest sequence number among the table's
// snapshots (one a tag keeps, or one an outside expiry left).
func positionCarriers(tbl *table.Table) map[string]*table.Snapshot {
	meta := tbl.Metadata()
	out := map[string]*table.Snapshot{}
	seen := map[int64]bool{}
	for snap := tbl.CurrentSnapshot(); snap != nil && !seen[snap.SnapshotID]; {
		seen[snap.SnapshotID] = true
		for key := range positionKeys(snap) {
			if _, ok := out[key]; !ok {
				out[key] = snap
			}
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = meta.SnapshotByID(*snap.ParentSnapshotID)
	}
	inLineage := maps.Clone(out)
	snaps := meta.Snapshots()
	for i := range snaps {
		snap := &snaps[i]
		if seen[snap.SnapshotID] {
			continue
		}
		for key := range positionKeys(snap) {
			if _, ok := inLineage[key]; ok {
				continue
			}
			if have, ok := out[key]; !ok || snap.SequenceNumber > have.SequenceNumber {
				out[key] = snap
			}
		}
	}
	return out
}

// positionKeys yields the summary keys of snap that hold positions.
func positionKeys(snap *table.Snapshot) iter.Seq[string] {
	return func(yield func(string) bool) {
		if snap.Summary == nil {
			return
		}
		for key := range snap.Summary.Properties {
			if strings.HasPrefix(key, summaryPrefix) && !yield(key) {
				return
			}
		}
	}
}
