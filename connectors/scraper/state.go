package scraper

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The crawl state is the source's position: what is left to fetch (the frontier), what was
// fetched and delivered this round (visited), what was fetched but not yet acknowledged (pending,
// by page sequence number), and a content hash per item (to emit only changed items on a
// re-crawl). It lives in a bbolt file under the component's data directory; every change is one
// transaction; the pages fetchers finish while one is being committed go into the next one together.
//
// A page moves frontier → pending (its items handed to the pipeline, its links added to the
// frontier, in one transaction) → visited (when Ack covers its sequence number, with its items'
// hashes). A page without items goes straight to visited. After a restart the pending pages go
// back to the frontier: their items are fetched and emitted again (at least once), and nothing
// fetched but undelivered is lost.

var (
	bFrontier = []byte("frontier") // url → entry
	bVisited  = []byte("visited")  // url → ""
	bPending  = []byte("pending")  // seq (8 bytes, big endian) → pendingPage
	bItems    = []byte("items")    // item key → hash (delivered)
	bMeta     = []byte("meta")
	kSeq      = []byte("seq")
	kRound    = []byte("round")
	kDoneAt   = []byte("round_done_at")
	kStartSig = []byte("start_signature")
)

type entry struct {
	URL   string `json:"url"`
	Depth int    `json:"depth"`
	Order uint64 `json:"order"` // frontier order: breadth first across restarts
}

type pendingPage struct {
	Entry entry             `json:"entry"`
	Items map[string]uint64 `json:"items"` // item key → hash
}

type store struct {
	db   *bolt.DB // nil: in memory only (no data directory)
	mu   sync.Mutex
	mem  memState
	path string
}

// memState mirrors the file, and is all there is without a data directory.
type memState struct {
	frontier map[string]entry
	visited  map[string]bool
	pending  map[uint64]pendingPage
	items    map[string]uint64
	seq      uint64
	order    uint64
	round    uint64
	doneAt   time.Time
	startSig string
}

func openStore(dir string) (*store, error) {
	s := &store{mem: memState{frontier: map[string]entry{}, visited: map[string]bool{}, pending: map[uint64]pendingPage{}, items: map[string]uint64{}}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s.path = filepath.Join(dir, "crawl.db")
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("crawl state %s is locked by another process", s.path)
		}
		return nil, fmt.Errorf("crawl state %s: %w", s.path, err)
	}
	s.db = db
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bFrontier, bVisited, bPending, bItems, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return s.load(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("crawl state %s: %w", s.path, err)
	}
	return s, nil
}

// load reads the file into memory; pending pages go back to the frontier.
func (s *store) load(tx *bolt.Tx) error {
	m := &s.mem
	if err := tx.Bucket(bFrontier).ForEach(func(k, v []byte) error {
		var e entry
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		m.frontier[string(k)] = e
		m.order = max(m.order, e.Order)
		return nil
	}); err != nil {
		return err
	}
	if err := tx.Bucket(bVisited).ForEach(func(k, _ []byte) error { m.visited[string(k)] = true; return nil }); err != nil {
		return err
	}
	if err := tx.Bucket(bItems).ForEach(func(k, v []byte) error {
		m.items[string(k)] = binary.BigEndian.Uint64(v)
		return nil
	}); err != nil {
		return err
	}
	meta := tx.Bucket(bMeta)
	if v := meta.Get(kSeq); v != nil {
		m.seq = binary.BigEndian.Uint64(v)
	}
	if v := meta.Get(kRound); v != nil {
		m.round = binary.BigEndian.Uint64(v)
	}
	if v := meta.Get(kDoneAt); v != nil {
		m.doneAt = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	}
	m.startSig = string(meta.Get(kStartSig))
	pend := tx.Bucket(bPending)
	var requeue []entry
	if err := pend.ForEach(func(_, v []byte) error {
		var p pendingPage
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		requeue = append(requeue, p.Entry)
		return nil
	}); err != nil {
		return err
	}
	for _, e := range requeue {
		m.frontier[e.URL] = e
		if err := putJSON(tx.Bucket(bFrontier), []byte(e.URL), e); err != nil {
			return err
		}
	}
	if err := tx.DeleteBucket(bPending); err != nil {
		return err
	}
	_, err := tx.CreateBucket(bPending)
	return err
}

func (s *store) close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// update applies file to the file in one transaction and then mem to memory.
func (s *store) update(file func(tx *bolt.Tx) error, mem func(m *memState)) error {
	if s.db != nil {
		if err := s.db.Update(file); err != nil {
			return fmt.Errorf("crawl state %s: %w", s.path, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mem(&s.mem)
	return nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
