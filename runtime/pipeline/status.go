package pipeline

// State is where a pipeline is in its life. The engine reports starting, running, draining,
// stopped, finished and failed for one run; the supervisor, which restarts runs and pauses
// pipelines, adds paused and degraded.
type State string

// Pipeline states.
const (
	StateStarting State = "starting" // building stages, opening components
	StateRunning  State = "running"
	StatePaused   State = "paused"   // running, its components open, but the source is not read
	StateDegraded State = "degraded" // running with a stuck component, or waiting to restart after a transient failure
	StateDraining State = "draining" // stop requested: delivering what is in flight
	StateStopped  State = "stopped"  // stopped on request, everything in flight delivered
	StateFinished State = "finished" // bounded source exhausted, everything delivered
	StateFailed   State = "failed"   // stopped by an error that a restart does not cure; Reason holds it
)

// Status is what readiness and the admin API report of a pipeline.
type Status struct {
	State State `json:"state"`
	// Ready is true while the pipeline runs and nothing is stuck.
	Ready bool `json:"ready"`
	// Reason says why the pipeline is not ready: the error that stopped it, the sink that keeps
	// failing, the stage holding a batch or the restart it waits for. Empty when ready, except
	// for a paused pipeline, which is ready and says that it is paused.
	Reason string `json:"reason,omitempty"`
}
