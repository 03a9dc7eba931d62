package wasmhost

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sluicehq/sluice/internal/schemamsg"
	"github.com/sluicehq/sluice/runtime/pipeline"
)

// MaxMemoryBytes is the largest per-instance memory limit a stage accepts: the 4 GiB address
// space of wasm32 (65536 pages of 64 KiB).
const MaxMemoryBytes = pipeline.MaxTransformMemory

// Problem is one setting of a StageConfig that NewStage would refuse, found without building
// anything.
type Problem struct {
	// Setting is "config", "memory", "instances", "mode" or "fuel".
	Setting string
	// Pointer is, for Setting "config", the JSON pointer of the offending value within the
	// config ("/max_price", "/fields/0"); "" means the config as a whole.
	Pointer string
	// Message says what is wrong, without naming the setting.
	Message string
	// Hint says how to fix it, when there is more to say than the message.
	Hint string
}

// Check reports every setting of cfg that NewStage would refuse with this module: a config that
// is not a JSON object or breaks the module's config_schema (one Problem per failing value), a
// memory limit above MaxMemoryBytes or below the module's own initial memory, more than
// MaxInstances instances, an unknown mode, metered mode (the default) for a module that cannot be
// metered, a negative fuel budget or one outside metered mode. Zero values mean the defaults and
// are fine. It is pure and safe to call concurrently.
func (m *Module) Check(cfg StageConfig) []Problem {
	var out []Problem
	if cfg.MemoryBytes > MaxMemoryBytes {
		out = append(out, Problem{Setting: "memory", Message: fmt.Sprintf("%d bytes is more than the %d bytes (4GiB) a wasm32 module can address", cfg.MemoryBytes, int64(MaxMemoryBytes)),
			Hint: fmt.Sprintf("give at most %d bytes (4GiB)", int64(MaxMemoryBytes))})
	} else if min := m.MinMemoryBytes(); cfg.MemoryBytes > 0 && (cfg.MemoryBytes+65535)/65536*65536 < min {
		out = append(out, Problem{Setting: "memory", Message: fmt.Sprintf("%d bytes is less than the %d bytes (%d pages of 64KiB) the module's memory starts with", cfg.MemoryBytes, min, m.minPages),
			Hint: fmt.Sprintf("give at least %s (%d bytes); Go modules need about 16MiB", mib(min), min)})
	}
	if cfg.Instances > MaxInstances {
		out = append(out, Problem{Setting: "instances", Message: fmt.Sprintf("%d is more than the %d instances a stage may have", cfg.Instances, MaxInstances)})
	}
	mode := cmp.Or(cfg.Mode, Mode(pipeline.DefaultTransformMode))
	switch {
	case !mode.valid():
		out = append(out, Problem{Setting: "mode", Message: fmt.Sprintf("%q: want metered, strict or trusted", cfg.Mode)})
	case mode == Metered && m.meterErr != nil:
		out = append(out, Problem{Setting: "mode", Message: m.meterErr.Error(),
			Hint: "mode strict interrupts it with the runtime's own checks (several times slower); trusted cannot interrupt it"})
	}
	switch {
	case cfg.Fuel < 0:
		out = append(out, Problem{Setting: "fuel", Message: fmt.Sprintf("%d: want a positive number of units per record", cfg.Fuel)})
	case cfg.Fuel > 0 && mode != Metered:
		out = append(out, Problem{Setting: "fuel", Message: fmt.Sprintf("a fuel budget needs mode metered, not %s", mode)})
	}
	return append(out, m.configProblems(cfg.Config)...)
}

// configProblems checks cfg (JSON text; empty means {}) against the module's config schema.
func (m *Module) configProblems(cfg []byte) []Problem {
	v, ps := parseConfig(cfg)
	if len(ps) > 0 {
		return ps
	}
	return m.schemaProblems(v)
}

// validateConfig is configProblems as NewStage's error, e.g. "config does not match the module's
// config_schema: /max_price: must be > 0".
func (m *Module) validateConfig(cfg []byte) error {
	v, ps := parseConfig(cfg)
	if len(ps) > 0 {
		return fmt.Errorf("config: %s", joinProblems(ps))
	}
	if ps := m.schemaProblems(v); len(ps) > 0 {
		return fmt.Errorf("config does not match the module's config_schema: %s", joinProblems(ps))
	}
	return nil
}

func joinProblems(ps []Problem) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Message
		if p.Pointer != "" {
			parts[i] = p.Pointer + ": " + p.Message
		}
	}
	return strings.Join(parts, "; ")
}

// parseConfig decodes cfg for the schema. It refuses what is not a JSON object, and numbers beyond
// the range of a double, which no guest could read as numbers.
func parseConfig(cfg []byte) (any, []Problem) {
	if len(bytes.TrimSpace(cfg)) == 0 {
		cfg = []byte("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(cfg))
	if err != nil {
		return nil, []Problem{{Setting: "config", Message: fmt.Sprintf("not JSON: %v", err)}}
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, []Problem{{Setting: "config", Message: "must be a JSON object"}}
	}
	return v, numberProblems(v, "", nil)
}

// schemaProblems validates v against the module's config schema, one Problem per failing value.
func (m *Module) schemaProblems(v any) []Problem {
	if m.schema == nil {
		return nil
	}
	err := m.schema.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Problem{{Setting: "config", Message: fmt.Sprintf("does not match the module's config_schema: %v", err)}}
	}
	var out []Problem
	for _, l := range schemamsg.Leaves(ve) {
		out = append(out, Problem{Setting: "config", Pointer: l.Pointer, Message: l.Message})
	}
	if len(out) == 0 {
		out = append(out, Problem{Setting: "config", Message: fmt.Sprintf("does not match the module's config_schema: %v", err)})
	}
	return out
}

// numberProblems finds the numbers of v (as jsonschema.UnmarshalJSON decodes it) that a double
// cannot hold, naming each by its JSON pointer.
func numberProblems(v any, ptr string, out []Problem) []Problem {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = numberProblems(x[k], ptr+"/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k), out)
		}
	case []any:
		for i, e := range x {
			out = numberProblems(e, ptr+"/"+strconv.Itoa(i), out)
		}
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			out = append(out, Problem{Setting: "config", Pointer: ptr, Message: fmt.Sprintf("%s is out of the range of a double (about ±1.8e308)", x)})
		}
	}
	return out
}

// mib writes n bytes in MiB, rounded up to a whole KiB, as the manifest accepts it ("2496KiB", "3MiB").
func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", (n+1023)>>10)
}
