// Package pluginhost runs connector plugins: it discovers the pinned plugin binaries of a
// directory, asks each for its connector specs, adds them to a catalog (runtime/catalog) as
// "plugin:NAME", and builds Source and Sink proxies that drive a plugin process over gRPC
// (hashicorp/go-plugin, protocol in sdk/go/protocol).
//
// A proxy owns one plugin process. Every call has a deadline; a plugin that crashes or stops
// answering is killed and started again with exponential backoff, and a source proxy reopens the
// new process strictly after the last positions the runtime acknowledged, so nothing is lost
// (records after them may be delivered twice). A plugin failure is returned as an error, never a
// panic or an exit of the host process.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
)

// Prefix is put before a plugin connector's name in the catalog and in manifests
// (`type: plugin:csv`).
const Prefix = "plugin:"

// Reserved configuration fields every plugin connector accepts in addition to its own.
const (
	// FieldSHA256 pins the plugin binary: the host refuses to start a binary whose sha256 (hex)
	// differs.
	FieldSHA256 = "sha256"
	// FieldEnv lists the environment the plugin process gets: "NAME" copies the host's variable
	// (an error when it is unset), "NAME=value" sets it. Nothing else from the host's
	// environment reaches the plugin.
	FieldEnv = "env"
)

// Options configure a Host. The zero value of every field selects its default.
type Options struct {
	// Logger receives the host's and the plugins' logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives restart counts and call latencies. Default: none.
	Metrics Metrics
	// CallTimeout is the deadline of every call into a plugin, beyond the read wait for Read.
	// A plugin that misses it is killed and restarted. Default 30s.
	CallTimeout time.Duration
	// StartTimeout bounds starting a plugin process and its handshake. Default 10s.
	StartTimeout time.Duration
	// ReadWait is how long a plugin may wait for the first record of a batch before answering
	// with an empty batch (the proxy then asks again). Default 1s.
	ReadWait time.Duration
	// ReadCreditRecords and ReadCreditBytes are the credit granted with every Read: the plugin
	// answers with at most this many records and bytes. Defaults 8192 records and 16 MiB.
	ReadCreditRecords int
	ReadCreditBytes   int64
	// WriteChunkBytes splits a Write batch into messages of at most about this many bytes.
	// Default 16 MiB (messages are capped at 64 MiB).
	WriteChunkBytes int
	// RestartBackoff is the first delay before restarting a failed plugin; it doubles with every
	// consecutive failure up to MaxRestartBackoff. Defaults 100ms and 30s.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// MaxRestarts is how many consecutive restarts a call attempts before it returns the
	// failure to its caller (the next call tries again). Default 5.
	MaxRestarts int
	// Pins are sha256 sums (hex) of plugin binaries trusted to run, typically the `sha256` pins
	// of the manifests about to be loaded: Discover runs a binary whose sum is among them.
	Pins []string
	// AllowUnpinned lets Discover run binaries that nothing pins. By default it does not.
	AllowUnpinned bool
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.CallTimeout, 30*time.Second)
	def(&o.StartTimeout, 10*time.Second)
	def(&o.ReadWait, time.Second)
	def(&o.RestartBackoff, 100*time.Millisecond)
	def(&o.MaxRestartBackoff, 30*time.Second)
	if o.ReadCreditRecords <= 0 {
		o.ReadCreditRecords = 8192
	}
	if o.ReadCreditBytes <= 0 {
		o.ReadCreditBytes = 16 << 20
	}
	if o.ReadCreditBytes > protocol.MaxMessageBytes/2 {
		o.ReadCreditBytes = protocol.MaxMessageBytes / 2
	}
	if o.WriteChunkBytes <= 0 || o.WriteChunkBytes > protocol.MaxMessageBytes/2 {
		o.WriteChunkBytes = 16 << 20
	}
	if o.MaxRestarts <= 0 {
		o.MaxRestarts = 5
	}
	return o
}

// Plugin describes one discovered plugin binary.
type Plugin struct {
	// Name is the binary's file name.
	Name string
	// Path is the binary's absolute path.
	Path string
	// SHA256 is the hex sha256 of the binary when it was discovered.
	SHA256 string
	// Version and SDKVersion are what the plugin reported.
	Version    string
	SDKVersion string
	// Protocol is the negotiated protocol version.
	Protocol int
	// Features are the optional protocol features the plugin implements (protocol.Feature*).
	Features []string
	// Specs are the plugin's connectors, with their own names (without Prefix).
	Specs []connector.Spec
}

// Host starts and supervises plugin processes. It is safe for concurrent use. Close kills every
// process it started.
type Host struct {
	opts Options
	pins []string // Options.Pins, lower case

	mu      sync.Mutex
	clients map[*goplugin.Client]*running
	types   map[typeKey]*Plugin // the registered connectors' plugins
	closed  bool
}

// New returns a Host. It starts nothing.
func New(opts Options) *Host {
	h := &Host{opts: opts.withDefaults(), clients: map[*goplugin.Client]*running{}}
	for _, p := range opts.Pins {
		h.pins = append(h.pins, strings.ToLower(strings.TrimSpace(p)))
	}
	return h
}

// Close kills every plugin process still running. Proxies built by the host fail afterwards.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	cs := h.clients
	h.clients = map[*goplugin.Client]*running{}
	stops := make(map[*goplugin.Client]running, len(cs))
	for c, r := range cs {
		stops[c] = *r
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for c, r := range stops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.stop(r.name, c, r.pid)
			if r.data != nil {
				r.data.Close()
			}
		}()
	}
	wg.Wait()
}

// Register adds every connector of the plugins to cat as Prefix+name, with the reserved fields
// FieldSHA256 and FieldEnv added to its spec. A name already in the catalog is an error for that
// connector; the others are still added.
func (h *Host) Register(cat *catalog.Catalog, plugins []*Plugin) error {
	var errs []error
	for _, p := range plugins {
		for _, s := range p.Specs {
			spec := s
			spec.Name = Prefix + s.Name
			spec.Fields = append(append([]connector.Field(nil), s.Fields...), ReservedFields()...)
			p, connName := p, s.Name
			var comp connector.Component
			if s.Kind == connector.KindSource {
				comp = connector.SourceComponent(spec, func(cfg connector.Config, env connector.Env) (connector.Source, error) {
					src, err := h.NewSource(p, connName, cfg, env)
					if err != nil {
						return nil, err
					}
					return src, nil
				})
			} else {
				comp = connector.SinkComponent(spec, func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
					snk, err := h.NewSink(p, connName, cfg, env)
					if err != nil {
						return nil, err
					}
					return snk, nil
				})
			}
			if err := cat.Add(comp); err != nil {
				errs = append(errs, fmt.Errorf("plugin %s: %w", p.Name, err))
				continue
			}
			h.mu.Lock()
			if h.types == nil {
				h.types = map[typeKey]*Plugin{}
			}
			h.types[typeKey{s.Kind, spec.Name}] = p
			h.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// typeKey names a registered connector: its kind and its catalog name (Prefix+name).
type typeKey struct {
	kind connector.Kind
	name string
}

// CheckConfig checks what the host itself reads of a connector's config, the reserved fields:
// the sha256 pin must match the binary discovery ran, and the variables env copies must be set.
// It returns a *connector.ConfigError naming the field, or nil; nil too for a type the host did
// not register. It starts nothing, so manifest loading can report these problems together with
// the manifest's others.
func (h *Host) CheckConfig(kind connector.Kind, typ string, cfg connector.Config) error {
	h.mu.Lock()
	p := h.types[typeKey{kind, typ}]
	h.mu.Unlock()
	if p == nil {
		return nil
	}
	pin, _, _, err := configParts(cfg)
	if err != nil {
		return err
	}
	return checkPin(p, pin)
}

// ReservedFields are the fields the host adds to every plugin connector's spec.
func ReservedFields() []connector.Field {
	return []connector.Field{
		{Name: FieldSHA256, Type: connector.TypeString, Description: "Pins the plugin binary: its sha256 in hex. The host refuses to start a binary that differs."},
		{Name: FieldEnv, Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString},
			Description: "Environment of the plugin process: NAME copies the host's variable (an error when unset), NAME=value sets it. Nothing else reaches the plugin.",
			Example:     []any{"API_TOKEN", "TZ=UTC"}},
	}
}

// DiscoverAndRegister discovers the plugins in dir with a new Host and adds their connectors to
// cat. Call it once at start-up, before manifests are loaded; Close the Host on shutdown.
// The error joins the failures of single binaries; the plugins that worked are registered anyway.
func DiscoverAndRegister(ctx context.Context, cat *catalog.Catalog, dir string, opts Options) (*Host, []*Plugin, error) {
	h := New(opts)
	plugins, derr := h.Discover(ctx, dir)
	rerr := h.Register(cat, plugins)
	return h, plugins, errors.Join(derr, rerr)
}

// goes to the plugin.
func configParts(cfg connector.Config) (pin string, env []string, rest connector.Config, err error) {
	rest = connector.Config{}
	for k, v := range cfg {
		switch k {
		case FieldSHA256:
			pin = strings.ToLower(strings.TrimSpace(cfg.String(k)))
		case FieldEnv:
			for _, e := range cfg.List(k) {
				s, ok := e.(string)
				if !ok {
					return "", nil, nil, &connector.ConfigError{Field: FieldEnv, Msg: "want a list of strings"}
				}
				if name, _, ok := strings.Cut(s, "="); ok {
					if name == "" {
						return "", nil, nil, &connector.ConfigError{Field: FieldEnv, Msg: fmt.Sprintf("%q has no name", s)}
					}
					env = append(env, s)
					continue
				}
				val, ok := os.LookupEnv(s)
				if !ok {
					return "", nil, nil, &connector.ConfigError{Field: FieldEnv, Msg: fmt.Sprintf("environment variable %s is not set", s)}
				}
				env = append(env, s+"="+val)
			}
		default:
			rest[k] = v
		}
	}
	if pin != "" {
		if b, derr := hex.DecodeString(pin); derr != nil || len(b) != sha256.Size {
			return "", nil, nil, &connector.ConfigError{Field: FieldSHA256, Msg: "want 64 hex digits"}
		}
	}
	return pin, env, rest, nil
}
