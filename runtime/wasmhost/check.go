package wasmhost

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

// MaxMemoryBytes is the largest per-instance memory limit a stage accepts: the 4 GiB address
// space of wasm32 (65536 pages of 64 KiB).
const MaxMemoryBytes = pipeline.MaxTransformMemory

// Problem is one setting of a StageConfig that NewStage would refuse, found without building
// anything.
type Problem struct {
	// Setting is "config", "memory", "instances" or "mode".
	Setting string
	// Pointer is, for Setting "config", the JSON pointer of the offending value within the
	// config ("/max_price", "/fields/0"); "" means the config as a whole.
	Pointer string
	// Message says what is wrong, without naming the setting.
	Message string
}

// Check reports every setting of cfg that NewStage would refuse with this module: a config that
// is not a JSON object or breaks the module's config_schema (one Problem per failing value), a
// memory limit above MaxMemoryBytes, more than MaxInstances instances, an unknown mode. Zero
// values mean the defaults and are fine. It is pure and safe to call concurrently.
func (m *Module) Check(cfg StageConfig) []Problem {
	var out []Problem
	if cfg.MemoryBytes > MaxMemoryBytes {
		out = append(out, Problem{Setting: "memory", Message: fmt.Sprintf("%d bytes is more than the %d bytes (4GiB) a wasm32 module can address", cfg.MemoryBytes, int64(MaxMemoryBytes))})
	}
	if cfg.Instances > MaxInstances {
		out = append(out, Problem{Setting: "instances", Message: fmt.Sprintf("%d is more than the %d instances a stage may have", cfg.Instances, MaxInstances)})
	}
	if cfg.Mode != "" && cfg.Mode != Strict && cfg.Mode != Trusted {
		out = append(out, Problem{Setting: "mode", Message: fmt.Sprintf("%q: want strict or trusted", cfg.Mode)})
	}
	return append(out, m.configProblems(cfg.Config)...)
}

// configProblems checks cfg (JSON text; empty means {}) against the module's config schema.
func (m *Module) configProblems(cfg []byte) []Problem {
	if len(bytes.TrimSpace(cfg)) == 0 {
		cfg = []byte("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(cfg))
	if err != nil {
		return []Problem{{Setting: "config", Message: fmt.Sprintf("not JSON: %v", err)}}
	}
	if _, ok := v.(map[string]any); !ok {
		return []Problem{{Setting: "config", Message: "must be a JSON object"}}
	}
	if m.schema == nil {
		return nil
	}
	err = m.schema.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Problem{{Setting: "config", Message: fmt.Sprintf("does not match the module's config_schema: %v", err)}}
	}
	var out []Problem
	for _, u := range ve.BasicOutput().Errors {
		if u.Error == nil {
			continue
		}
		out = append(out, Problem{Setting: "config", Pointer: strings.TrimSuffix(u.InstanceLocation, "/"), Message: u.Error.String()})
	}
	if len(out) == 0 {
		out = append(out, Problem{Setting: "config", Message: fmt.Sprintf("does not match the module's config_schema: %v", err)})
	}
	return out
}
