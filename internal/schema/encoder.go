package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/twmb/franz-go/pkg/sr"
)

// Encoder writes JSON record values with a registry schema. Open settles the schema; Encode is
// then safe for concurrent use.
type Encoder struct {
	cfg   encodeConfig
	reg   *registry
	state atomic.Pointer[encodeState]
}

type encodeState struct {
	info  Info
	codec codec
}

// NewEncoder builds an encoder from an encode: mapping validated against EncodeSpec. A bad setting
// is a *connector.ConfigError naming the field. It does no I/O.
func NewEncoder(cfg connector.Config) (*Encoder, error) {
	var c encodeConfig
	if err := EncodeSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	e := &Encoder{cfg: c}
	if c.Format == FormatJSON {
		if c.Registry.URL != "" {
			return nil, &connector.ConfigError{Field: "registry", Msg: "format json writes plain JSON and uses no registry",
				Hint: "use format json_schema to write JSON in the registry's wire format, validated against the subject's schema"}
		}
		e.state.Store(&encodeState{})
		return e, nil
	}
	if err := c.Registry.check(true, c.Format); err != nil {
		return nil, err
	}
	if c.Subject == "" {
		return nil, &connector.ConfigError{Field: "subject", Msg: "is required with format " + c.Format,
			Hint: "name the registry subject, e.g. <topic>-value"}
	}
	if c.Schema != "" && c.SchemaFile != "" {
		return nil, &connector.ConfigError{Field: "schema_file", Msg: "excludes schema"}
	}
	if c.AutoRegister && c.Schema == "" && c.SchemaFile == "" {
		return nil, &connector.ConfigError{Field: "auto_register", Msg: "needs schema or schema_file: the schema to register"}
	}
	if c.Message != "" && c.Format != FormatProtobuf {
		return nil, &connector.ConfigError{Field: "message", Msg: "applies to format protobuf only"}
	}
	if c.Schema != "" {
		if _, err := newCodec(c.Format, c.Schema, nil, protobufOptions{}, encodeOptions{}, c.Message); err != nil {
			return nil, &connector.ConfigError{Field: "schema", Msg: "does not compile: " + err.Error()}
		}
	}
	r, err := newRegistry(c.Registry)
	if err != nil {
		return nil, err
	}
	e.reg = r
	return e, nil
}

// Open settles the schema Encode writes with. With schema or schema_file and auto_register it
// registers the schema under the subject (the registry returns the existing id when it is there
// already); with a schema but without auto_register it looks the schema up under the subject;
// without a schema it takes the subject's latest version. A schema the registry refuses as
// incompatible (HTTP 409), an invalid schema, a subject or schema the registry does not have, and
// refused credentials wrap connector.ErrPermanent; an unreachable registry matches ErrUnavailable.
func (e *Encoder) Open(ctx context.Context) error {
	if e.reg == nil {
		return nil
	}
	st, err := e.open(ctx)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	e.state.Store(st)
	return nil
}

func (e *Encoder) open(ctx context.Context) (*encodeState, error) {
	c := &e.cfg
	if err := e.reg.open0(); err != nil {
		return nil, err
	}
	text := c.Schema
	if c.SchemaFile != "" {
		b, err := os.ReadFile(c.SchemaFile)
		if err != nil {
			return nil, fmt.Errorf("schema_file: %w: %w", err, connector.ErrPermanent)
		}
		text = string(b)
	}
	if c.Normalize {
		ctx = sr.WithParams(ctx, sr.Normalize)
	}
	typ := schemaType(c.Format)
	var info Info
	var refs []namedSchema
	switch {
	case text != "" && c.AutoRegister:
		id, err := e.reg.cl.RegisterSchema(ctx, c.Subject, sr.Schema{Schema: text, Type: typ}, -1, -1)
		if err != nil {
			return nil, e.refused("POST /subjects/"+c.Subject+"/versions", err)
		}
		info = Info{ID: id, Subject: c.Subject}
		if ss, err := e.reg.cl.LookupSchema(ctx, c.Subject, sr.Schema{Schema: text, Type: typ}); err == nil {
			info.Version = ss.Version
		}
	case text != "":
		ss, err := e.reg.cl.LookupSchema(ctx, c.Subject, sr.Schema{Schema: text, Type: typ})
		if statusOf(err) == http.StatusNotFound {
			return nil, fmt.Errorf("the schema is not registered under subject %s (%s); register it, or set auto_register: true: %w",
				c.Subject, registryReason(err), connector.ErrPermanent)
		}
		if err != nil {
			return nil, e.refused("POST /subjects/"+c.Subject, err)
		}
		info = Info{ID: ss.ID, Subject: c.Subject, Version: ss.Version}
	default:
		ss, err := e.reg.cl.SchemaByVersion(ctx, c.Subject, -1)
		if statusOf(err) == http.StatusNotFound {
			return nil, fmt.Errorf("subject %s has no schema in the registry (%s); register one, or give schema or schema_file with auto_register: true: %w",
				c.Subject, registryReason(err), connector.ErrPermanent)
		}
		if err != nil {
			return nil, e.refused("GET /subjects/"+c.Subject+"/versions/latest", err)
		}
		if ss.Type != typ {
			return nil, fmt.Errorf("subject %s holds a %s schema, and encode.format is %s: %w", c.Subject, ss.Type, c.Format, connector.ErrPermanent)
		}
		if refs, err = e.reg.collect(ctx, ss.References); err != nil {
			if errors.Is(err, ErrUnavailable) || errors.Is(err, connector.ErrPermanent) || errors.Is(err, context.Canceled) {
				return nil, err
			}
			return nil, fmt.Errorf("subject %s version %d: %w: %w", c.Subject, ss.Version, err, connector.ErrPermanent)
		}
		text = ss.Schema.Schema
		info = Info{ID: ss.ID, Subject: c.Subject, Version: ss.Version}
	}
	cd, err := newCodec(c.Format, text, refs, protobufOptions{}, encodeOptions{ignoreUnknown: c.IgnoreUnknown}, c.Message)
	if err != nil {
		return nil, fmt.Errorf("schema id %d (subject %s) does not compile: %v: %w", info.ID, c.Subject, err, connector.ErrPermanent)
	}
	return &encodeState{info: info, codec: cd}, nil
}

// refused classifies an error of registering or looking up the schema.
func (e *Encoder) refused(op string, err error) error {
	switch statusOf(err) {
	case http.StatusConflict:
		return fmt.Errorf("subject %s refuses the schema as incompatible: %s; make the change compatible with the subject's compatibility rule "+
			"(e.g. give new fields defaults), or change the rule or the subject: %w", e.cfg.Subject, registryReason(err), connector.ErrPermanent)
	case http.StatusUnprocessableEntity:
		return fmt.Errorf("the registry refuses the schema for subject %s as invalid: %s: %w", e.cfg.Subject, registryReason(err), connector.ErrPermanent)
	}
	if c := classify(op, err); c != err {
		return c
	}
	return fmt.Errorf("schema registry: %s: %w", op, err)
}

func registryReason(err error) string {
	var re *sr.ResponseError
	if asResponseError(err, &re) {
		return reason(re)
	}
	return err.Error()
}

// Info says which schema Encode writes with; it is the zero Info before Open and for format json.
func (e *Encoder) Info() Info {
	if st := e.state.Load(); st != nil {
		return st.info
	}
	return Info{}
}

// Encode appends jsonValue in the wire format of the encoder's schema to dst. A value that does not
// fit the schema is a *RecordError (dst is returned unchanged). Encode before a successful Open
// is an error.
func (e *Encoder) Encode(_ context.Context, jsonValue, dst []byte) ([]byte, Info, error) {
	st := e.state.Load()
	if st == nil {
		return dst, Info{}, fmt.Errorf("encode: the encoder is not open")
	}
	if st.codec == nil {
		if !json.Valid(jsonValue) {
			return dst, Info{}, &RecordError{Reason: "value is not JSON"}
		}
		return append(dst, jsonValue...), Info{}, nil
	}
	out, err := st.codec.encode(jsonValue, appendHeader(dst, st.info.ID))
	if err != nil {
		return dst, st.info, &RecordError{Info: st.info, Reason: err.Error()}
	}
	return out, st.info, nil
}

// Close releases the registry client's idle connections. It is idempotent and safe after a failed
// Open; the encoder may be opened again.
func (e *Encoder) Close() error {
	if e.reg != nil {
		e.reg.transport.CloseIdleConnections()
	}
	return nil
}
