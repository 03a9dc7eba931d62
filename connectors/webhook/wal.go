package webhook

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// wal is the write-ahead store of ack: durable: records keyed by their sequence number, which is
// their position's Offset. One writer goroutine appends what the handlers hand it, many requests
// per fsynced transaction (group commit), and removes what the engine acked in the same
// transactions.
type wal struct {
	db     *bolt.DB
	reqs   chan *walReq
	ackSig chan struct{}
	acked  atomic.Int64
	quit   chan struct{}
	done   chan struct{}
	// committed receives each transaction's records, in sequence order, once they are durable.
	committed func([]connector.Record)

	// The writer's own state.
	next    int64 // sequence number of the next record
	deleted int64 // every record up to it is removed
}

type walReq struct {
	recs []connector.Record
	done chan error
}

var walBucket = []byte("records")

// walFile is the store's file name in the component's data directory.
const walFile = "webhook.db"

// errClosed answers the requests the store takes no more.
var errClosed = errors.New("the source is closing")

// openWAL opens (or creates) the store in dir, drops what the checkpoint at resume covers, and
// returns the records after it, to be delivered again.
func openWAL(dir string, resume int64, committed func([]connector.Record)) (*wal, []connector.Record, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("webhook source: %w", err)
	}
	path := filepath.Join(dir, walFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, nil, fmt.Errorf("webhook source: open %s: %w", path, err)
	}
	w := &wal{db: db, reqs: make(chan *walReq), ackSig: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}), committed: committed}
	var replay []connector.Record
	last := resume
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(walBucket)
		if err != nil {
			return err
		}
		if err := deleteUpTo(b, resume); err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			seq := int64(binary.BigEndian.Uint64(k))
			r, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("record %d: %w", seq, err)
			}
			r.Position = connector.Position{Offset: seq}
			replay = append(replay, r)
			last = max(last, seq)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("webhook source: %s: %w", path, err)
	}
	w.next, w.deleted = last+1, resume
	w.acked.Store(resume)
	go w.writer()
	return w, replay, nil
}

// append makes recs durable, setting their positions; it returns once they are fsynced.
func (w *wal) append(recs []connector.Record) error {
	r := &walReq{recs: recs, done: make(chan error, 1)}
	select {
	case w.reqs <- r:
	case <-w.quit:
		return errClosed
	}
	return <-r.done
}

// ack lets the writer remove every record up to seq.
func (w *wal) ack(seq int64) {
	for {
		cur := w.acked.Load()
		if seq <= cur || w.acked.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case w.ackSig <- struct{}{}:
	default:
	}
}

// maxGroup bounds the requests of one transaction.
const maxGroup = 512

// deleteDelay is how long acked records may wait for an append transaction to remove them before
// one of their own does: under load, removals ride along with appends and cost no fsync.
const deleteDelay = 250 * time.Millisecond

func (w *wal) writer() {
	defer close(w.done)
	var idle <-chan time.Time
	for {
		var group []*walReq
		select {
		case r := <-w.reqs:
			group = append(group, r)
		collect:
			for len(group) < maxGroup {
				select {
				case r := <-w.reqs:
					group = append(group, r)
				default:
					break collect
				}
			}
		case <-w.ackSig:
			if idle == nil {
				idle = time.After(deleteDelay)
			}
			continue
		case <-idle:
			idle = nil
		case <-w.quit:
			return
		}
		ackTo := w.acked.Load()
		if len(group) == 0 && ackTo <= w.deleted {
			continue
		}
		next := w.next
		err := w.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(walBucket)
			seq := next
			var key [8]byte
			for _, r := range group {
				for i := range r.recs {
					binary.BigEndian.PutUint64(key[:], uint64(seq))
					if err := b.Put(key[:], encodeRecord(&r.recs[i])); err != nil {
						return err
					}
					r.recs[i].Position = connector.Position{Offset: seq}
					seq++
				}
			}
			next = seq
			return deleteUpTo(b, ackTo)
		})
		if err == nil {
			w.next, w.deleted = next, max(w.deleted, ackTo)
			for _, r := range group {
				w.committed(r.recs)
			}
		} else {
			err = fmt.Errorf("webhook source: write-ahead store: %w", err)
		}
		for _, r := range group {
			r.done <- err
		}
	}
}

func deleteUpTo(b *bolt.Bucket, seq int64) error {
	c := b.Cursor()
	for k, _ := c.First(); k != nil && int64(binary.BigEndian.Uint64(k)) <= seq; k, _ = c.First() {
		if err := b.Delete(append([]byte(nil), k...)); err != nil {
			return err
		}
	}
	return nil
}

// close stops the writer (a request it has not started is answered errClosed) and closes the
// file.
func (w *wal) close() error {
	close(w.quit)
	<-w.done
	return w.db.Close()
}

// encodeRecord lays out a record: its time (Unix nanoseconds, 8 bytes), its headers (a count, then
// each key and value with its length, as uvarints) and its value (the rest).
func encodeRecord(r *connector.Record) []byte {
	n := 8 + binary.MaxVarintLen64 + len(r.Value)
	for _, h := range r.Headers {
		n += 2*binary.MaxVarintLen64 + len(h.Key) + len(h.Value)
	}
	b := make([]byte, 8, n)
	binary.BigEndian.PutUint64(b, uint64(r.Time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = binary.AppendUvarint(b, uint64(len(h.Value)))
		b = append(b, h.Value...)
	}
	return append(b, r.Value...)
}

// decodeRecord reads what encodeRecord wrote, copying it out of the store's memory.
func decodeRecord(v []byte) (connector.Record, error) {
	var r connector.Record
	bad := errors.New("truncated record")
	if len(v) < 8 {
		return r, bad
	}
	r.Time = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	v = v[8:]
	nh, n := binary.Uvarint(v)
	if n <= 0 {
		return r, bad
	}
	v = v[n:]
	field := func() ([]byte, bool) {
		l, n := binary.Uvarint(v)
		if n <= 0 || uint64(len(v)-n) < l {
			return nil, false
		}
		out := append([]byte(nil), v[n:n+int(l)]...)
		v = v[n+int(l):]
		return out, true
	}
	for range nh {
		k, ok1 := field()
		val, ok2 := field()
		if !ok1 || !ok2 {
			return r, bad
		}
		r.Headers = append(r.Headers, connector.Header{Key: string(k), Value: val})
	}
	r.Value = append([]byte(nil), v...)
	return r, nil
}
