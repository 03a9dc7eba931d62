package engine

import "github.com/sluicehq/sluice/sdk/go/connector"

// ProgressSource is an optional interface of bounded sources that know how far along they are:
// the file source (bytes), the generate source with a count (records). The engine asks it with
// the positions last checkpointed, so the answer counts only what every sink has.
type ProgressSource interface {
	// Progress returns how much of the source is delivered once everything up to after is, and
	// how much there is in all, in the same unit; total is negative when the source has no end
	// it knows (a followed file, an endless generator). It must be safe to call while the source
	// is read, and cheap (it is called a few times a second).
	Progress(after []connector.Position) (done, total int64)
}

// Progress reports how far the pipeline's source is delivered, when it implements
// ProgressSource and knows its end (ok); call it only while the pipeline runs, as it reads the
// checkpoint store.
func (p *Pipeline) Progress() (done, total int64, ok bool) {
	ps, is := p.source.(ProgressSource)
	if !is || p.opts.Checkpoints == nil {
		return 0, -1, false
	}
	after, err := p.opts.Checkpoints.Load(p.spec.Name)
	if err != nil {
		return 0, -1, false
	}
	done, total = ps.Progress(after)
	return done, total, total >= 0
}
