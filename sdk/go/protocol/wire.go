package protocol

import (
	"errors"
	"fmt"
	"io"

	"github.com/sluicehq/sluice/sdk/go/connector"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// position converts one position to its message.
func position(p connector.Position) *pb.Position {
	return &pb.Position{Partition: p.Partition, Offset: p.Offset, Cursor: p.Cursor}
}

// Positions converts positions to messages.
func Positions(ps []connector.Position) []*pb.Position {
	out := make([]*pb.Position, len(ps))
	for i, p := range ps {
		out[i] = position(p)
	}
	return out
}

// fromPosition converts a message to a position; nil gives the zero position.
func fromPosition(p *pb.Position) connector.Position {
	if p == nil {
		return connector.Position{}
	}
	return connector.Position{Partition: p.Partition, Offset: p.Offset, Cursor: p.Cursor}
}

// FromPositions converts messages to positions.
func FromPositions(ps []*pb.Position) []connector.Position {
	if len(ps) == 0 {
		return nil
	}
	out := make([]connector.Position, len(ps))
	for i, p := range ps {
		out[i] = fromPosition(p)
	}
	return out
}

// Error converts an error to its message, keeping the classes the runtime acts on: io.EOF,
// connector.ErrPermanent and *connector.ConfigError. A nil error gives nil.
func Error(err error) *pb.Error {
	if err == nil {
		return nil
	}
	var ce *connector.ConfigError
	switch {
	case errors.Is(err, io.EOF):
		return &pb.Error{Kind: pb.ErrorKind_ERROR_KIND_EOF, Message: err.Error()}
	case errors.As(err, &ce):
		return &pb.Error{Kind: pb.ErrorKind_ERROR_KIND_CONFIG, Message: ce.Msg, Field: ce.Field}
	case errors.Is(err, connector.ErrPermanent):
		return &pb.Error{Kind: pb.ErrorKind_ERROR_KIND_PERMANENT, Message: err.Error()}
	}
	return &pb.Error{Message: err.Error()}
}

// FromError converts a message back to an error: io.EOF itself, a *connector.ConfigError, an
// error matching connector.ErrPermanent with errors.Is, or a plain error. Nil gives nil.
func FromError(e *pb.Error) error {
	if e == nil {
		return nil
	}
	switch e.Kind {
	case pb.ErrorKind_ERROR_KIND_EOF:
		return io.EOF
	case pb.ErrorKind_ERROR_KIND_CONFIG:
		return &connector.ConfigError{Field: e.Field, Msg: e.Message}
	case pb.ErrorKind_ERROR_KIND_PERMANENT:
		return &RemoteError{Msg: e.Message, Permanent: true}
	}
	return &RemoteError{Msg: e.Message}
}

// RemoteError is an error returned by the connector inside a plugin process.
type RemoteError struct {
	Msg string
	// Permanent is true when the plugin's error wrapped connector.ErrPermanent.
	Permanent bool
}

func (e *RemoteError) Error() string { return e.Msg }

// Is makes errors.Is(err, connector.ErrPermanent) hold for permanent remote errors.
func (e *RemoteError) Is(target error) bool { return e.Permanent && target == connector.ErrPermanent }

// BatchError converts the per-record failures of a write response to a *connector.BatchError,
// adding offset to every index (the position of this chunk in the caller's batch).
func BatchError(failed []*pb.RecordError, offset int) *connector.BatchError {
	be := &connector.BatchError{Failed: make([]connector.RecordError, len(failed))}
	for i, f := range failed {
		be.Failed[i] = connector.RecordError{Index: int(f.Index) + offset, Err: errors.New(f.Message)}
	}
	return be
}

// RecordErrors converts a *connector.BatchError to per-record failure messages.
func RecordErrors(be *connector.BatchError) []*pb.RecordError {
	out := make([]*pb.RecordError, len(be.Failed))
	for i, f := range be.Failed {
		msg := "failed"
		if f.Err != nil {
			msg = f.Err.Error()
		}
		out[i] = &pb.RecordError{Index: int32(f.Index), Message: msg}
	}
	return out
}

// Env converts a connector environment (without its logger) to its message.
func Env(env connector.Env) *pb.Env {
	return &pb.Env{Pipeline: env.Pipeline, Component: env.Component, DataDir: env.DataDir}
}

// CheckIndexes verifies that every failed index lies within a batch of n records.
func CheckIndexes(be *connector.BatchError, n int) error {
	for _, f := range be.Failed {
		if f.Index < 0 || f.Index >= n {
			return fmt.Errorf("batch error names index %d of a batch of %d", f.Index, n)
		}
	}
	return nil
}
