// Package pause holds the waits the connectors share: a sleep that ends with its context, and an
// exponential backoff with jitter.
package pause

import (
	"context"
	"math/rand/v2"
	"time"
)

// Sleep waits d or until ctx ends, whichever comes first, and returns ctx's error in the second
// case. A d of zero or less returns at once, with ctx's error if it has ended.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backoff is the wait before retry number attempt (from 1): lo·2^(attempt-1), capped at hi, with
// jitter drawn from its upper half, [d/2, d]. It is 0 when the capped wait is not positive.
func Backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
