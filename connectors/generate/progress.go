package generate

import "github.com/sluicehq/sluice/sdk/go/connector"

// Progress reports, with count set, the records up to the given position and the count; without
// it the source has no end (total -1). It only reads the immutable count, so it is safe to call
// while the source is read.
func (s *Source) Progress(after []connector.Position) (done, total int64) {
	if s.count == 0 {
		return 0, -1
	}
	for _, p := range after {
		if p.Partition == "generate" {
			done = p.Offset
		}
	}
	return min(done, s.count), s.count
}
