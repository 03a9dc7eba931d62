package file

import (
	"os"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Progress reports the bytes of the file up to the given position and the file's size; a
// followed file has no end (total -1). It only reads immutable fields and stats the file, so it is
// safe to call while the source is read.
func (s *Source) Progress(after []connector.Position) (done, total int64) {
	if s.follow {
		return 0, -1
	}
	st, err := os.Stat(s.path)
	if err != nil {
		return 0, -1
	}
	for _, p := range after {
		if p.Partition == s.path {
			done = p.Offset
		}
	}
	return min(done, st.Size()), st.Size()
}
