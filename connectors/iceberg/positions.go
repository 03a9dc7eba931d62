package iceberg

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// summaryPrefix starts the snapshot summary keys holding source positions.
const summaryPrefix = "sluice.positions."

// summaryKey is the snapshot summary key of one pipeline's sink.
func summaryKey(pipeline, sink string) string { return summaryPrefix + pipeline + "." + sink }

// storedPosition is one position as the snapshot summary holds it.
type storedPosition struct {
	Partition string `json:"partition"`
	Offset    int64  `json:"offset"`
	Cursor    []byte `json:"cursor,omitempty"`
}

// encodePositions writes positions as the summary value: a JSON list sorted by partition.
func encodePositions(m map[string]connector.Position) (string, error) {
	list := make([]storedPosition, 0, len(m))
	for _, p := range sortedPositions(m) {
		list = append(list, storedPosition{Partition: p.Partition, Offset: p.Offset, Cursor: p.Cursor})
	}
	b, err := json.Marshal(list)
	if err != nil {
		return "", fmt.Errorf("encode positions: %w", err)
	}
	return string(b), nil
}

func decodePositions(s string) (map[string]connector.Position, error) {
	var list []storedPosition
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, err
	}
	m := make(map[string]connector.Position, len(list))
	for _, p := range list {
		m[p.Partition] = connector.Position{Partition: p.Partition, Offset: p.Offset, Cursor: p.Cursor}
	}
	return m, nil
}

// storedPositions returns the positions of the snapshot holding key's (positionCarriers); none
// when no snapshot holds them.
func storedPositions(tbl *table.Table, key string) (map[string]connector.Position, error) {
	snap, ok := positionCarriers(tbl)[key]
	if !ok {
		return map[string]connector.Position{}, nil
	}
	m, err := decodePositions(snap.Summary.Properties[key])
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: summary %s: %w", snap.SnapshotID, key, err)
	}
	return m, nil
}

// mergePositions returns stored updated with positions: per partition the greater offset (a
// position never moves back), partitions not given as stored; and whether anything moved.
func mergePositions(stored map[string]connector.Position, positions []connector.Position) (map[string]connector.Position, bool) {
	next := make(map[string]connector.Position, len(stored)+len(positions))
	for k, v := range stored {
		next[k] = v
	}
	moved := false
	for _, p := range positions {
		if old, ok := next[p.Partition]; ok && (p.Offset < old.Offset || (p.Offset == old.Offset && string(p.Cursor) == string(old.Cursor))) {
			continue
		}
		next[p.Partition] = p
		moved = true
	}
	return next, moved
}

func sortedPositions(m map[string]connector.Position) []connector.Position {
	out := make([]connector.Position, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b connector.Position) int { return strings.Compare(a.Partition, b.Partition) })
	return out
}
