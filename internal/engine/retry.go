package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// maxOpenAttempts is how many times a component's Open is tried.
const maxOpenAttempts = 5

// backoff is the wait before retry number attempt: 100ms doubling, at most maxBackoff.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 9)
	return min(d, maxBackoff)
}

// maxBackoff bounds the wait between retries, so a pipeline resumes within seconds of its
// database coming back: with 30 s, a sink out for 30 s was retried 21 s after it returned.
const maxBackoff = 5 * time.Second

// sleep waits d or until ctx is done; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// openWithRetry calls open up to maxOpenAttempts times with backoff, stopping early on a
// permanent error or when ctx is done.
func openWithRetry(ctx context.Context, log *slog.Logger, open func(context.Context) error) error {
	var err error
	for attempt := 1; attempt <= maxOpenAttempts; attempt++ {
		if err = open(ctx); err == nil {
			return nil
		}
		if errors.Is(err, connector.ErrPermanent) || attempt == maxOpenAttempts {
			break
		}
		log.Warn("open failed; retrying", "err", err, "attempt", attempt)
		if !sleep(ctx, backoff(attempt)*2) {
			break
		}
	}
	return err
}
