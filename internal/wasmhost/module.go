package wasmhost

import (
	"github.com/sluicehq/sluice/sdk/go/abi"

	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/internal/wasmhost/meter"
)

const (
	probeTimeout = 30 * time.Second
)

// Meta is what a module says about itself through tf_meta (ABI.md section 8), plus its digest.
type Meta struct {
	// Name and Version identify the transform ("validate_price", "1.0.0").
	Name    string `json:"name"`
	Version string `json:"version"`
	// ABI is "MAJOR.MINOR", equal to what tf_abi_version returns.
	ABI string `json:"abi"`
	// Kinds describe what the transform does (validate, filter, map, flatmap, route).
	Kinds []string `json:"kinds"`
	// Ports are the output port names; Ports[0] is always "main".
	Ports []string `json:"ports"`
	// ConfigSchema is the JSON Schema of the config object, or nil.
	ConfigSchema json.RawMessage `json:"config_schema,omitempty"`
	// StateVersion is an aggregate module's state layout version (ABI.md section 13.1).
	StateVersion int `json:"state_version,omitempty"`
	// Digest is the lowercase hex sha256 of the module file.
	Digest string `json:"digest"`
}

// IsAggregate reports whether the module is an aggregate module (meta kinds lists "aggregate").
func (m Meta) IsAggregate() bool { return slices.Contains(m.Kinds, abi.KindAggregate) }

// Module is a loaded, verified, compiled transform module. It is immutable and safe for
// concurrent use; stages built from it share its compiled code.
type Module struct {
	host     *Host
	bin      []byte
	meta     Meta
	schema   *jsonschema.Schema
	minPages uint32 // the initial size of the module's memory, in 64 KiB pages
	// metered is the module rewritten for metered mode (package meter), or nil with meterErr
	// saying why it cannot be.
	metered  []byte
	meterErr error
	canMerge bool // an aggregate module exports tf_agg_merge
}

// MinMemoryBytes is the initial size of the module's linear memory: a memory limit below it cannot
// instantiate the module.
func (m *Module) MinMemoryBytes() int64 { return int64(m.minPages) * 65536 }

// Meta returns the module's metadata (a copy).
func (m *Module) Meta() Meta {
	c := m.meta
	c.Kinds = slices.Clone(m.meta.Kinds)
	c.Ports = slices.Clone(m.meta.Ports)
	c.ConfigSchema = slices.Clone(m.meta.ConfigSchema)
	return c
}

var (
	i32, i64       = api.ValueTypeI32, api.ValueTypeI64
	requiredExport = []struct {
		name    string
		params  []api.ValueType
		results []api.ValueType
	}{
		{"tf_abi_version", nil, []api.ValueType{i32}},
		{"tf_meta", nil, []api.ValueType{i64}},
		{"tf_reserve", []api.ValueType{i32}, []api.ValueType{i32}},
		{"tf_init", []api.ValueType{i32}, []api.ValueType{i32}},
		{"tf_process", []api.ValueType{i32}, []api.ValueType{i64}},
		{"tf_last_error", nil, []api.ValueType{i64}},
	}
	allowedImports = map[string]map[string]string{
		"tf_host_v1": {"log": "i32,i32,i32->", "metric_add": "i32,i32,i64->"},
		"env":        {"abort": "i32,i32,i32,i32->"},
	}
	nameRe     = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	portRe     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	knownKinds = []string{"validate", "filter", "map", "flatmap", "route", abi.KindAggregate}
	// aggExports are the exports of aggregate modules (ABI.md section 13.1); tf_agg_merge is
	// optional.
	aggExports = []string{"tf_agg_step", "tf_agg_emit", "tf_agg_merge"}
)

func sig(params, results []api.ValueType) string {
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(api.ValueTypeName(p))
	}
	b.WriteString("->")
	for i, r := range results {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(api.ValueTypeName(r))
	}
	return b.String()
}

// checkShape verifies exports and imports against ABI.md sections 2 and 3.
func checkShape(cm wazero.CompiledModule, metered bool) error {
	exports := cm.ExportedFunctions()
	var missing, wrong []string
	for _, r := range requiredExport {
		d, ok := exports[r.name]
		if !ok {
			missing = append(missing, r.name)
			continue
		}
		if got, want := sig(d.ParamTypes(), d.ResultTypes()), sig(r.params, r.results); got != want {
			wrong = append(wrong, fmt.Sprintf("%s is (%s), want (%s)", r.name, got, want))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing exports %s (see sdk/abi/v1/ABI.md)", ErrNotTransform, strings.Join(missing, ", "))
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%w: wrong export signatures: %s", ErrNotTransform, strings.Join(wrong, "; "))
	}
	for _, name := range aggExports {
		if d, ok := exports[name]; ok {
			if got, want := sig(d.ParamTypes(), d.ResultTypes()), sig([]api.ValueType{i32}, []api.ValueType{i64}); got != want {
				return fmt.Errorf("%w: wrong export signatures: %s is (%s), want (%s)", ErrNotTransform, name, got, want)
			}
		}
	}
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("%w: no exported memory named \"memory\"", ErrNotTransform)
	}
	for _, d := range cm.ImportedFunctions() {
		mod, name, _ := d.Import()
		if mod == "wasi_snapshot_preview1" || (metered && mod == meter.ImportModule) {
			continue // a metered module imports what the rewrite added (it refuses modules using those names)
		}
		want, ok := allowedImports[mod][name]
		if !ok {
			return fmt.Errorf("%w: unsupported import %s.%s", ErrNotTransform, mod, name)
		}
		if got := sig(d.ParamTypes(), d.ResultTypes()); got != want {
			return fmt.Errorf("%w: import %s.%s is (%s), want (%s)", ErrNotTransform, mod, name, got, want)
		}
	}
	return nil
}

// load compiles and probes a module that is not loaded yet. The probe runs the module as the
// default mode does, metered, when the rewrite can handle it: a stage at the default memory limit
// then reuses that compilation, and a cold start compiles the module once, not twice (a Go module
// takes about a second). A module that cannot be metered is probed in strict mode.
func (h *Host) load(ctx context.Context, digest string, bin []byte) (*Module, error) {
	m := &Module{host: h, bin: bin}
	m.rewrite()
	probeBin, key, mode := bin, digest, Strict
	if m.metered != nil {
		probeBin, key, mode = m.metered, digest+"/metered", Metered
	}
	g, err := h.group(ctx, groupKey{pages: defaultPages, strict: mode == Strict})
	if err != nil {
		return nil, err
	}
	cm, err := g.compile(ctx, key, probeBin)
	if err != nil {
		return nil, fmt.Errorf("%w: compile: %v", ErrNotTransform, err)
	}
	if err := checkShape(cm, mode == Metered); err != nil {
		return nil, err
	}
	m.minPages = cm.ExportedMemories()["memory"].Min()
	probe := &Stage{name: "load", log: h.log, glog: newGuestLogger(h.log.With("module_digest", digest[:12])), m: m, group: g,
		cfg: StageConfig{Mode: mode}}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	in, err := probe.instantiate(pctx, cm)
	if err != nil {
		return nil, err
	}
	defer in.mod.Close(context.Background())
	if err := in.enter(); err != nil {
		return nil, err
	}
	raw, err := in.callPtrLen(pctx, "tf_meta", abi.MaxMetaBytes)
	in.exit()
	if err != nil {
		return nil, fmt.Errorf("%w: tf_meta: %v", ErrBadMeta, err)
	}
	if err := m.parseMeta(raw, in.abi); err != nil {
		return nil, err
	}
	if m.meta.IsAggregate() {
		if in.abi&0xffff < abi.MinorAggregate {
			return nil, fmt.Errorf("%w: kinds lists %q but the module reports ABI %s; aggregate modules report 1.1 (ABI.md section 13.1)", ErrBadMeta, abi.KindAggregate, m.meta.ABI)
		}
		for _, name := range aggExports[:2] {
			if in.fns[name] == nil {
				return nil, fmt.Errorf("%w: an aggregate module must export %s (ABI.md section 13.1)", ErrNotTransform, name)
			}
		}
		m.canMerge = in.fns["tf_agg_merge"] != nil
	}
	if m.meta.StateVersion < 0 {
		return nil, fmt.Errorf("%w: state_version %d must be 0 or more", ErrBadMeta, m.meta.StateVersion)
	}
	m.meta.Digest = digest
	return m, nil
}

// rewrite makes the module's metered form, or notes why there is none.
func (m *Module) rewrite() {
	out, _, err := meter.Rewrite(m.bin)
	if err != nil {
		m.meterErr = fmt.Errorf("the module cannot be metered: %w; run it in strict mode", err)
		return
	}
	m.metered = out
}

func (m *Module) parseMeta(raw []byte, version uint32) error {
	var meta Meta
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&meta); err != nil {
		return fmt.Errorf("%w: not a JSON object: %v", ErrBadMeta, err)
	}
	meta.Digest = ""
	if !nameRe.MatchString(meta.Name) {
		return fmt.Errorf("%w: name %q must match %s", ErrBadMeta, meta.Name, nameRe)
	}
	if meta.Version == "" {
		return fmt.Errorf("%w: version is required", ErrBadMeta)
	}
	if want := fmt.Sprintf("%d.%d", version>>16, version&0xffff); meta.ABI != want {
		return fmt.Errorf("%w: abi %q, but tf_abi_version says %s", ErrBadMeta, meta.ABI, want)
	}
	if len(meta.Kinds) == 0 {
		return fmt.Errorf("%w: kinds must list at least one of %s", ErrBadMeta, strings.Join(knownKinds, ", "))
	}
	for _, k := range meta.Kinds {
		if !slices.Contains(knownKinds, k) {
			return fmt.Errorf("%w: unknown kind %q (want %s)", ErrBadMeta, k, strings.Join(knownKinds, ", "))
		}
	}
	if len(meta.Ports) == 0 {
		meta.Ports = []string{abi.DefaultPort}
	}
	if meta.Ports[0] != abi.DefaultPort {
		return fmt.Errorf("%w: ports[0] must be %q, got %q", ErrBadMeta, abi.DefaultPort, meta.Ports[0])
	}
	if len(meta.Ports) > 64 {
		return fmt.Errorf("%w: %d ports, at most 64", ErrBadMeta, len(meta.Ports))
	}
	for i, p := range meta.Ports {
		if !portRe.MatchString(p) || slices.Index(meta.Ports, p) != i {
			return fmt.Errorf("%w: port %q must be unique and match %s", ErrBadMeta, p, portRe)
		}
	}
	if s := bytes.TrimSpace(meta.ConfigSchema); len(s) == 0 || string(s) == "null" {
		meta.ConfigSchema = nil
	} else {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(s))
		if err != nil {
			return fmt.Errorf("%w: config_schema: %v", ErrBadMeta, err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("config_schema.json", doc); err != nil {
			return fmt.Errorf("%w: config_schema: %v", ErrBadMeta, err)
		}
		sch, err := c.Compile("config_schema.json")
		if err != nil {
			return fmt.Errorf("%w: config_schema: %v", ErrBadMeta, err)
		}
		m.schema = sch
	}
	m.meta = meta
	return nil
}
