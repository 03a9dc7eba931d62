package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Exactly-once writes. The positions live in a file beside the data, PATH.positions, holding the
// length of the data file as of the last transaction and the positions stored by each (pipeline,
// sink) that wrote it. A transaction appends the records and syncs them, then replaces the
// positions file (write a temporary file, sync, rename, sync the directory): the rename is the
// commit. Reopened, the sink cuts the data file back to the committed length, so the records of a
// transaction whose positions were never committed are gone with them.

var _ connector.TransactionalSink = (*Sink)(nil)

// positionsSuffix names the positions file beside the data file.
const positionsSuffix = ".positions"

// positionsFile is the content of PATH.positions.
type positionsFile struct {
	Version int `json:"version"`
	// End is the length of the data file as of the last transaction.
	End int64 `json:"end"`
	// Sinks holds the positions stored by each pipeline and sink: Sinks[pipeline][sink].
	Sinks map[string]map[string][]storedPosition `json:"sinks"`
}

type storedPosition struct {
	Partition string `json:"partition"`
	Offset    int64  `json:"offset"`
	Cursor    []byte `json:"cursor,omitempty"`
}

func (s *Sink) positionsPath() string { return s.path + positionsSuffix }

// CheckExactlyOnce refuses fsync: false: a transaction syncs its records before it commits their
// positions, or a power loss could keep the positions and lose the records.
func (s *Sink) CheckExactlyOnce() error {
	if !s.fsync {
		return &connector.ConfigError{Field: "fsync", Msg: "exactly_once needs every write synced before its positions are stored", Hint: "remove fsync: false"}
	}
	return nil
}

// StoredPositions locks the file for this sink (a second sink writing the same file exactly once
// is refused), cuts it back to the length of the last transaction and returns the positions this
// pipeline's sink stored then.
func (s *Sink) StoredPositions(context.Context) ([]connector.Position, error) {
	if s.f == nil {
		return nil, errors.New("file sink: stored positions before open")
	}
	if !s.locked {
		if err := syscall.Flock(int(s.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return nil, fmt.Errorf("file sink: %s is being written exactly once by another sink (%v): %w", s.path, err, connector.ErrPermanent)
		}
		s.locked = true
	}
	pf, err := s.readPositions()
	if err != nil {
		return nil, err
	}
	if pf.End < 0 {
		// No positions file yet: what the file holds stays, and is committed as the start, so
		// that a crash in the first transaction leaves a positions file to cut the file back to.
		pf.End = s.end
		if err := s.commitPositions(pf); err != nil {
			return nil, err
		}
		s.tx = pf
		return nil, nil
	}
	s.tx = pf
	if pf.End > s.end {
		return nil, fmt.Errorf("file sink: %s holds %d bytes but its last transaction ended at %d: it was truncated or replaced; remove %s to write it again from scratch: %w",
			s.path, s.end, pf.End, s.positionsPath(), connector.ErrPermanent)
	}
	if pf.End < s.end {
		if err := s.f.Truncate(pf.End); err != nil {
			return nil, fmt.Errorf("file sink: cut an unfinished transaction: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return nil, fmt.Errorf("file sink: %w", err)
		}
		if _, err := s.f.Seek(pf.End, io.SeekStart); err != nil {
			return nil, fmt.Errorf("file sink: %w", err)
		}
		s.end = pf.End
	}
	var out []connector.Position
	for _, p := range pf.Sinks[s.pipeline][s.component] {
		out = append(out, connector.Position{Partition: p.Partition, Offset: p.Offset, Cursor: p.Cursor})
	}
	return out, nil
}

// readPositions reads the positions file; End is -1 when there is none.
func (s *Sink) readPositions() (*positionsFile, error) {
	b, err := os.ReadFile(s.positionsPath())
	if errors.Is(err, os.ErrNotExist) {
		return &positionsFile{Version: 1, End: -1, Sinks: map[string]map[string][]storedPosition{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	var pf positionsFile
	if err := json.Unmarshal(b, &pf); err != nil || pf.Version != 1 {
		return nil, fmt.Errorf("file sink: %s is not a positions file this sink wrote (%v): %w", s.positionsPath(), err, connector.ErrPermanent)
	}
	if pf.Sinks == nil {
		pf.Sinks = map[string]map[string][]storedPosition{}
	}
	return &pf, nil
}

// WriteTx appends the records and syncs them, then commits them with the positions by replacing
// the positions file. On failure the appended records are cut off again.
func (s *Sink) WriteTx(_ context.Context, records []connector.Record, positions []connector.Position) error {
	if s.tx == nil {
		return errors.New("file sink: WriteTx before StoredPositions")
	}
	start := s.end
	if len(records) > 0 {
		if err := s.write(records); err != nil {
			return err
		}
	}
	pf := *s.tx
	pf.End = s.end
	pf.Sinks = s.mergedPositions(positions)
	if err := s.commitPositions(&pf); err != nil {
		s.end = start
		return s.undo(err)
	}
	*s.tx = pf
	return nil
}

// mergedPositions returns the stored positions with this sink's replaced, partition by
// partition, by positions; the maps of s.tx are not changed.
func (s *Sink) mergedPositions(positions []connector.Position) map[string]map[string][]storedPosition {
	out := make(map[string]map[string][]storedPosition, len(s.tx.Sinks)+1)
	for pl, m := range s.tx.Sinks {
		out[pl] = make(map[string][]storedPosition, len(m))
		for c, ps := range m {
			out[pl][c] = ps
		}
	}
	if out[s.pipeline] == nil {
		out[s.pipeline] = map[string][]storedPosition{}
	}
	mine := append([]storedPosition(nil), out[s.pipeline][s.component]...)
	for _, p := range positions {
		sp := storedPosition{Partition: p.Partition, Offset: p.Offset, Cursor: p.Cursor}
		replaced := false
		for i := range mine {
			if mine[i].Partition == p.Partition {
				mine[i], replaced = sp, true
			}
		}
		if !replaced {
			mine = append(mine, sp)
		}
	}
	out[s.pipeline][s.component] = mine
	return out
}

// commitPositions replaces the positions file with pf, durably.
func (s *Sink) commitPositions(pf *positionsFile) error {
	b, err := json.Marshal(pf)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	tmp := s.positionsPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.positionsPath())
	}
	if err == nil {
		err = syncDir(filepath.Dir(s.path))
	}
	if err != nil {
		return fmt.Errorf("file sink: commit positions: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// forgetPositions removes the positions file before the first write outside a transaction: the
// data file then holds records no stored position describes, which a later exactly-once run must
// not cut off.
func (s *Sink) forgetPositions() error {
	s.forgot = true
	err := os.Remove(s.positionsPath())
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("file sink: %w", err)
}
