package pipeline

// State is where a running pipeline is in its life.
type State string

// Pipeline states.
const (
	StateStarting State = "starting" // building stages, opening components
	StateRunning  State = "running"
	StateDraining State = "draining" // stop requested: delivering what is in flight
	StateStopped  State = "stopped"  // stopped on request, everything in flight delivered
	StateFinished State = "finished" // bounded source exhausted, everything delivered
	StateFailed   State = "failed"   // stopped by an error; Reason holds it
)

// Status is what readiness and the admin API report of a pipeline.
type Status struct {
	State State `json:"state"`
	// Ready is true while the pipeline runs and nothing is stuck.
	Ready bool `json:"ready"`
	// Reason says why the pipeline is not ready: the error that stopped it, the sink that keeps
	// failing or the stage holding a batch. Empty when ready.
	Reason string `json:"reason,omitempty"`
}
