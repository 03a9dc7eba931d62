package supervisor

// Progress is how far one pipeline's bounded source is delivered (see engine.ProgressSource).
type Progress struct {
	Name string
	// Known is false when the source does not say how large it is (or the pipeline is not running).
	Known bool
	// Done and Total are in the source's unit (bytes of a file, records of a generator).
	Done, Total int64
}

// Progress reports, for every pipeline while Run runs, how far its source is delivered; nil
// before Run. Safe for concurrent use.
func (s *Supervisor) Progress() []Progress {
	s.mu.Lock()
	running := s.runCtx != nil // the checkpoint store is open
	pipes := append([]*managed(nil), s.pipes...)
	s.mu.Unlock()
	if !running {
		return nil
	}
	out := make([]Progress, len(pipes))
	for i, m := range pipes {
		m.mu.Lock()
		cur := m.cur
		m.mu.Unlock()
		out[i].Name = m.name
		if cur != nil {
			out[i].Done, out[i].Total, out[i].Known = cur.Progress()
		}
	}
	return out
}
