package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

// redactingHandler removes secret values from log messages and string-valued attributes
// (errors included) before they reach the real handler, so a connector that logs a DSN or an
// error quoting its credentials does not leak them.
type redactingHandler struct {
	next    slog.Handler
	secrets []string
}

func newRedactingLogger(l *slog.Logger, secrets []string) *slog.Logger {
	if len(secrets) == 0 {
		return l
	}
	return slog.New(&redactingHandler{next: l.Handler(), secrets: secrets})
}

func (h *redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, pipeline.Redact(r.Message, h.secrets), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, pipeline.Redact(v.String(), h.secrets))
	case slog.KindGroup:
		g := v.Group()
		attrs := make([]any, len(g))
		for i, x := range g {
			attrs[i] = h.attr(x)
		}
		return slog.Group(a.Key, attrs...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, pipeline.Redact(x.Error(), h.secrets))
		case fmt.Stringer:
			return slog.String(a.Key, pipeline.Redact(x.String(), h.secrets))
		default:
			return slog.String(a.Key, pipeline.Redact(fmt.Sprint(x), h.secrets))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &redactingHandler{next: h.next.WithAttrs(clean), secrets: h.secrets}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{next: h.next.WithGroup(name), secrets: h.secrets}
}

// redactedError hides secrets in an error's message while keeping its chain for errors.Is/As.
type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string { return pipeline.Redact(e.err.Error(), e.secrets) }
func (e *redactedError) Unwrap() error { return e.err }

func redactErr(err error, secrets []string) error {
	if err == nil || len(secrets) == 0 {
		return err
	}
	return &redactedError{err: err, secrets: secrets}
}
