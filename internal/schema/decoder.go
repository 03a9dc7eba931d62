package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Decoder turns record values written with a registry schema into JSON. It is safe for concurrent
// use: schemas are fetched once per id, whichever goroutine asks first, and kept parsed (up to
// registry.cache_size of them).
type Decoder struct {
	format string
	reg    *registry // nil: format json without a registry
	popts  protobufOptions
	codecs cache[*decodeEntry]
}

type decodeEntry struct {
	info  Info
	codec codec // nil for format json
}

// NewDecoder builds a decoder from a decode: mapping validated against DecodeSpec. A bad setting
// is a *connector.ConfigError naming the field. It does no I/O.
func NewDecoder(cfg connector.Config) (*Decoder, error) {
	var c decodeConfig
	if err := DecodeSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	if err := c.Registry.check(c.Format != FormatJSON, c.Format); err != nil {
		return nil, err
	}
	d := &Decoder{format: c.Format, popts: c.Protobuf}
	d.codecs.size = max(c.Registry.CacheSize, 1)
	if c.Registry.URL != "" {
		r, err := newRegistry(c.Registry)
		if err != nil {
			return nil, err
		}
		d.reg = r
	}
	return d, nil
}

// Open loads the TLS files and checks that the registry answers. An unreachable registry is an
// error matching ErrUnavailable; refused credentials and unreadable TLS files wrap
// connector.ErrPermanent. Without a registry it does nothing.
func (d *Decoder) Open(ctx context.Context) error {
	if d.reg == nil {
		return nil
	}
	if err := d.reg.open(ctx); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// Decode appends the JSON form of payload to dst and says which schema it was written with. A
// payload that cannot be decoded is a *RecordError (dst is returned unchanged); an unreachable
// registry an error matching ErrUnavailable; refused credentials wrap connector.ErrPermanent.
func (d *Decoder) Decode(ctx context.Context, payload, dst []byte) ([]byte, Info, error) {
	if d.format == FormatJSON && (d.reg == nil || len(payload) == 0 || payload[0] != magicByte) {
		if !json.Valid(payload) {
			return dst, Info{}, &RecordError{Reason: "value is not JSON" + jsonHint(payload)}
		}
		return append(dst, payload...), Info{}, nil
	}
	id, rest, err := splitHeader(payload)
	if err != nil {
		return dst, Info{}, &RecordError{Reason: err.Error()}
	}
	e, err := d.codecs.get(ctx, id, func() (*decodeEntry, error) { return d.load(ctx, id) })
	if err != nil {
		return dst, Info{ID: id}, err
	}
	if e.codec == nil {
		if !json.Valid(rest) {
			return dst, e.info, &RecordError{Info: e.info, Reason: "value after the wire-format header is not JSON"}
		}
		return append(dst, rest...), e.info, nil
	}
	out, err := e.codec.decode(rest, dst)
	if err != nil {
		return dst, e.info, &RecordError{Info: e.info, Reason: err.Error()}
	}
	return out, e.info, nil
}

func jsonHint(b []byte) string {
	if len(b) > 0 && b[0] == magicByte {
		return " (it starts with the schema registry's magic byte 0: set decode.registry to read the wire format)"
	}
	return ""
}

// load fetches and compiles the schema of id.
func (d *Decoder) load(ctx context.Context, id int) (*decodeEntry, error) {
	if err := d.reg.open0(); err != nil {
		return nil, err
	}
	sv, err := d.reg.subjectOf(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	info := Info{ID: id, Subject: sv.Subject, Version: sv.Version}
	if d.format == FormatJSON {
		return &decodeEntry{info: info}, nil
	}
	f, err := d.reg.schemaByID(ctx, id)
	if errors.Is(err, errUnknownID) {
		return nil, &RecordError{Info: info, Reason: err.Error()}
	}
	if err != nil {
		if errors.Is(err, ErrUnavailable) || errors.Is(err, connector.ErrPermanent) || errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("decode: %w", err)
		}
		return nil, &RecordError{Info: info, Reason: err.Error()}
	}
	if got := f.schema.Type; got != schemaType(d.format) {
		return nil, &RecordError{Info: info, Reason: fmt.Sprintf("the registry holds a %s schema under this id, and decode.format is %s", got, d.format)}
	}
	c, err := newCodec(d.format, f.schema.Schema, f.refs, d.popts, encodeOptions{}, "")
	if err != nil {
		return nil, &RecordError{Info: info, Reason: "the registry's schema does not compile: " + err.Error()}
	}
	return &decodeEntry{info: info, codec: c}, nil
}

// Close releases the registry client's idle connections. It is idempotent and safe after a failed
// Open; the decoder may be opened again.
func (d *Decoder) Close() error {
	if d.reg != nil {
		d.reg.transport.CloseIdleConnections()
	}
	return nil
}
