package wasmhost

import (
	"fmt"
	"time"
)

// noteOverrun records a trusted-mode call that ran past its deadline, once per call.
func (s *Stage) noteOverrun(in *instance, call uint64, running time.Duration) {
	if in.reported.Swap(call) == call {
		return
	}
	s.stats.overruns.Add(1)
	s.mu.Lock()
	s.overrun = fmt.Errorf("transform %q: a trusted-mode guest call overran its %s deadline; it cannot be interrupted, so run the module in strict mode", s.name, s.cfg.Timeout)
	s.mu.Unlock()
	s.log.Error("trusted-mode guest call overran its deadline; it cannot be interrupted", "deadline", s.cfg.Timeout, "running_for", running.Round(time.Millisecond))
}

// watchdog reports trusted-mode calls that overrun their deadline while they run; calls that
// overran are also reported when they return. It cannot stop them, and it cannot run at all while
// a garbage collection waits for a running trusted call (see runtime/RATIONALE.md).
func (s *Stage) watchdog() {
	tick := min(max(s.cfg.Timeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.mu.Lock()
			var late []*instance
			for in := range s.all {
				if st := in.started.Load(); st != 0 && now.UnixNano()-st > int64(s.cfg.Timeout) {
					late = append(late, in)
				}
			}
			s.mu.Unlock()
			for _, in := range late {
				if st := in.started.Load(); st != 0 {
					s.noteOverrun(in, in.calls.Load(), time.Duration(now.UnixNano()-st))
				}
			}
		}
	}
}
