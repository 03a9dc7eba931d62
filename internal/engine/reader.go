package engine

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// maxReadFailures is how many transient read errors in a row the reader retries.
const maxReadFailures = 5

// reader pulls batches from the source until EOF, a stop request, or a fatal error.
func (r *run) reader(ctx context.Context, out chan<- []connector.Record) {
	defer close(out)
	p := r.p
	in := p.m.RecordsIn.WithLabelValues(p.spec.Name, "source")
	failures := 0
	for {
		if gate := p.opts.BeforeRead; gate != nil && gate(ctx) != nil {
			return
		}
		recs, err := p.read(ctx)
		if len(recs) > 0 {
			in.Add(float64(len(recs)))
			select {
			case out <- recs:
			case <-r.workCtx.Done():
				return
			}
		}
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, io.EOF):
			r.sourceEnded.Store(true)
			return
		case ctx.Err() != nil:
			return
		default:
			failures++
			if errors.Is(err, connector.ErrPermanent) || failures > maxReadFailures {
				r.fatal(fmt.Errorf("source %s: read: %w", p.spec.Source.Type, err))
				return
			}
			p.log.Warn("source read failed; retrying", "err", err, "attempt", failures)
			if !sleep(ctx, backoff(failures)) {
				return
			}
		}
	}
}
