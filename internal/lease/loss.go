package lease

import (
	"fmt"
	"sync"
)

// loss is the signal of a held lease's end, shared by both backends: lost is closed once, after
// lostErr says why.
type loss struct {
	lost     chan struct{}
	lostOnce sync.Once
	lostErr  error // set before lost is closed
}

func newLoss() loss { return loss{lost: make(chan struct{})} }

// Lost is closed once the lease is lost or released; Err then says why.
func (l *loss) Lost() <-chan struct{} { return l.lost }

// Err returns why the lease was lost, nil while it is held.
func (l *loss) Err() error {
	select {
	case <-l.lost:
		return l.lostErr
	default:
		return nil
	}
}

// markLost records, on the first call only, that the lease named name is lost because of err:
// it runs also (nil for nothing), then closes lost.
func (l *loss) markLost(name string, err error, also func()) {
	l.lostOnce.Do(func() {
		l.lostErr = fmt.Errorf("lease %q: %w: %w", name, ErrLost, err)
		if also != nil {
			also()
		}
		close(l.lost)
	})
}
