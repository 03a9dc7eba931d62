// Package checkpoint keeps the durable source positions of every pipeline in an embedded store
// (bbolt) under the data directory.
//
// Save returns only after the positions are on disk (bbolt fsyncs every committed transaction), so
// the engine can tell the source to commit upstream after Save returns: a position is durable
// before the source is acked.
package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// FileName is the store's file inside the data directory.
const FileName = "checkpoints.db"

// ErrLocked is returned by Open when another process holds the store.
var ErrLocked = errors.New("checkpoint store is in use by another process")

// ErrCorrupt is returned by Open when the store's file is damaged (truncated, overwritten): the
// positions it held cannot be read. Recreate sets such a file aside and starts an empty store.
var ErrCorrupt = errors.New("the checkpoint store is damaged")

// Store is the checkpoint store. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the store in dataDir. It fails with ErrLocked within a second
// when another process has the store open.
func Open(dataDir string) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint: create data dir: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("checkpoint: open %s: %w", path, ErrLocked)
		}
		if errors.Is(err, bolt.ErrInvalid) || errors.Is(err, bolt.ErrChecksum) || errors.Is(err, bolt.ErrVersionMismatch) {
			return nil, fmt.Errorf("checkpoint: open %s: %w: %w", path, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Recreate opens the store in dataDir like Open, except that a damaged store file (ErrCorrupt) is
// renamed to FileName+".corrupt", replacing an earlier one, and an empty store is created in its
// place: every pipeline's positions are lost, so its source starts from the beginning.
func Recreate(dataDir string) (*Store, error) {
	s, err := Open(dataDir)
	if !errors.Is(err, ErrCorrupt) {
		return s, err
	}
	path := filepath.Join(dataDir, FileName)
	if err := os.Rename(path, path+".corrupt"); err != nil {
		return nil, fmt.Errorf("checkpoint: set the damaged store aside: %w", err)
	}
	return Open(dataDir)
}

// Close closes the store. It is idempotent.
func (s *Store) Close() error {
	if s == nil || s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// Path returns the store's file path.
func (s *Store) Path() string { return s.db.Path() }

func bucketName(pipeline string) []byte { return []byte("pipeline/" + pipeline) }

// emptyPartitionKey stores the position of the unnamed partition of a single-partition source:
// the store's keys cannot be empty, and no partition name is a single NUL byte.
const emptyPartitionKey = "\x00"

func partitionKey(partition string) []byte {
	if partition == "" {
		return []byte(emptyPartitionKey)
	}
	return []byte(partition)
}

func partitionOf(key []byte) string {
	if string(key) == emptyPartitionKey {
		return ""
	}
	return string(key)
}

// Load returns the saved positions of a pipeline, one per partition, sorted by partition. A
// pipeline never saved has none.
func (s *Store) Load(pipeline string) ([]connector.Position, error) {
	var out []connector.Position
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(pipeline))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			p, err := decode(partitionOf(k), v)
			if err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load %q: %w", pipeline, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// Save stores the given positions of a pipeline (one per partition; other partitions keep their
// saved positions) and returns once they are durable.
func (s *Store) Save(pipeline string, positions []connector.Position) error {
	if len(positions) == 0 {
		return nil
	}
	return s.SaveWith(pipeline, positions, nil)
}

// DB is the store's bbolt database, for state kept beside the positions (aggregate stages).
func (s *Store) DB() *bolt.DB { return s.db }

// SaveWith is Save that also runs also, when not nil, in the same transaction: what it writes is
// durable with the positions, or not at all.
func (s *Store) SaveWith(pipeline string, positions []connector.Position, also func(tx *bolt.Tx) error) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if also != nil {
			if err := also(tx); err != nil {
				return err
			}
		}
		if len(positions) == 0 {
			return nil
		}
		b, err := tx.CreateBucketIfNotExists(bucketName(pipeline))
		if err != nil {
			return err
		}
		for _, p := range positions {
			if err := b.Put(partitionKey(p.Partition), encode(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint: save %q: %w", pipeline, err)
	}
	return nil
}

// Reset forgets every position of a pipeline, so its source starts from the beginning, and the
// state of its aggregate stages (buckets "aggregate/PIPELINE/..."), which reflects those
// positions.
func (s *Store) Reset(pipeline string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		var state [][]byte
		prefix := "aggregate/" + pipeline + "/"
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if strings.HasPrefix(string(name), prefix) {
				state = append(state, append([]byte(nil), name...))
			}
			return nil
		})
		for _, name := range state {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketName(pipeline)) == nil {
			return nil
		}
		return tx.DeleteBucket(bucketName(pipeline))
	})
}

// Value layout: version byte 1, int64 offset (little-endian), then the cursor bytes.
func encode(p connector.Position) []byte {
	v := make([]byte, 9+len(p.Cursor))
	v[0] = 1
	binary.LittleEndian.PutUint64(v[1:9], uint64(p.Offset))
	copy(v[9:], p.Cursor)
	return v
}

func decode(partition string, v []byte) (connector.Position, error) {
	if len(v) < 9 || v[0] != 1 {
		return connector.Position{}, fmt.Errorf("partition %q: unknown checkpoint encoding", partition)
	}
	p := connector.Position{Partition: partition, Offset: int64(binary.LittleEndian.Uint64(v[1:9]))}
	if len(v) > 9 {
		p.Cursor = append([]byte(nil), v[9:]...)
	}
	return p, nil
}
