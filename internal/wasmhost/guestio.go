package wasmhost

import (
	"github.com/sluicehq/sluice/sdk/go/abi"

	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Guest log limits (ABI.md section 4.1).
const (
	logBurst       = 100
	logPerSecond   = 10
	maxGuestMetric = 32
)

var metricName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// guestLogger writes guest lines to slog with a token bucket per stage. Safe for concurrent use.
// Lines over the limit are counted; the count is logged before the next line that passes, or at
// the end of a call (at most once a second, so a module that logs too much on every call does not
// turn each call into a host log line), or when the stage closes.
type guestLogger struct {
	log        *slog.Logger
	mu         sync.Mutex
	tokens     float64
	last       time.Time
	dropped    int64
	lastReport time.Time
	pending    atomic.Bool // dropped > 0, read without the lock at the end of every call
}

func newGuestLogger(l *slog.Logger) *guestLogger {
	return &guestLogger{log: l, tokens: logBurst, last: time.Now()}
}

func (g *guestLogger) emit(level slog.Level, msg []byte, source string) {
	g.mu.Lock()
	now := time.Now()
	g.tokens += now.Sub(g.last).Seconds() * logPerSecond
	if g.tokens > logBurst {
		g.tokens = logBurst
	}
	g.last = now
	if g.tokens < 1 {
		g.dropped++
		g.pending.Store(true)
		g.mu.Unlock()
		return
	}
	g.tokens--
	dropped := g.takeDropped(now)
	g.mu.Unlock()
	g.reportDropped(dropped)
	g.log.Log(context.Background(), level, cleanText(msg, abi.MaxLogLine), "from", source)
}

// takeDropped returns and resets the dropped count; g.mu is held.
func (g *guestLogger) takeDropped(now time.Time) int64 {
	d := g.dropped
	if d > 0 {
		g.dropped = 0
		g.pending.Store(false)
		g.lastReport = now
	}
	return d
}

func (g *guestLogger) reportDropped(n int64) {
	if n > 0 {
		g.log.Warn("guest log lines dropped by the rate limit", "dropped", n)
	}
}

// endCall logs the lines dropped so far, unless it did less than a second ago (or final: the
// stage is closing).
func (g *guestLogger) endCall(final bool) {
	if !g.pending.Load() {
		return
	}
	g.mu.Lock()
	now := time.Now()
	var n int64
	if final || now.Sub(g.lastReport) >= time.Second {
		n = g.takeDropped(now)
	}
	g.mu.Unlock()
	g.reportDropped(n)
}

// lineWriter turns a guest's stdout or stderr into log lines. It is used by one instance, whose
// calls are serialized, so it needs no lock.
type lineWriter struct {
	g      *guestLogger
	level  slog.Level
	source string
	buf    []byte
	oom    *bool
	first  *string // first line written since the current call started (stderr only)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := indexByte(p, '\n')
		if i < 0 {
			room := abi.MaxLogLine - len(w.buf)
			if room > len(p) {
				room = len(p)
			}
			w.buf = append(w.buf, p[:room]...)
			if len(w.buf) >= abi.MaxLogLine {
				w.flush()
			}
			p = p[room:]
			continue
		}
		w.buf = append(w.buf, p[:i]...)
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	if w.oom != nil && strings.Contains(string(w.buf), "out of memory") {
		*w.oom = true
	}
	if w.first != nil && *w.first == "" {
		*w.first = cleanText(w.buf, 200)
	}
	if len(w.buf) > abi.MaxLogLine {
		w.buf = w.buf[:abi.MaxLogLine]
	}
	w.g.emit(w.level, w.buf, w.source)
	w.buf = w.buf[:0]
}

func indexByte(p []byte, c byte) int {
	for i, b := range p {
		if b == c {
			return i
		}
	}
	return -1
}

// callEnvKey carries the *instance a guest call runs on, for the host functions.
type callEnvKey struct{}

func instanceFrom(ctx context.Context) *instance {
	in, _ := ctx.Value(callEnvKey{}).(*instance)
	return in
}

func guestLevel(l uint32) slog.Level {
	switch int32(l) {
	case 0:
		return slog.LevelDebug
	case 1:
		return slog.LevelInfo
	case 2:
		return slog.LevelWarn
	}
	if int32(l) < 0 {
		return slog.LevelDebug
	}
	return slog.LevelError
}

// readGuest returns a view of guest memory or panics, which traps the calling guest.
func readGuest(m api.Module, ptr, n uint32, what string) []byte {
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Errorf("%s: range [%d,%d) outside guest memory", what, ptr, uint64(ptr)+uint64(n)))
	}
	return b
}

// instantiateHostModules links tf_host_v1 and env.abort into rt.
func instantiateHostModules(ctx context.Context, rt wazero.Runtime) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	_, err := rt.NewHostModuleBuilder("tf_host_v1").
		NewFunctionBuilder().WithName("log").WithParameterNames("level", "ptr", "len").
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			msg := readGuest(m, api.DecodeU32(stack[1]), api.DecodeU32(stack[2]), "tf_host_v1.log")
			if in := instanceFrom(ctx); in != nil {
				in.stage.glog.emit(guestLevel(api.DecodeU32(stack[0])), msg, "log")
			}
		}), []api.ValueType{i32, i32, i32}, nil).Export("log").
		NewFunctionBuilder().WithName("metric_add").WithParameterNames("name_ptr", "name_len", "delta").
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			name := readGuest(m, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), "tf_host_v1.metric_add")
			if in := instanceFrom(ctx); in != nil {
				in.stage.addGuestMetric(string(name), int64(stack[2]))
			}
		}), []api.ValueType{i32, i32, i64}, nil).Export("metric_add").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("instantiate tf_host_v1: %w", err)
	}
	_, err = rt.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithName("abort").WithParameterNames("msg", "file", "line", "col").
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			msg := asString(m, api.DecodeU32(stack[0]))
			file := asString(m, api.DecodeU32(stack[1]))
			panic(&abortError{msg: fmt.Sprintf("abort: %s at %s:%d:%d", msg, file, api.DecodeU32(stack[2]), api.DecodeU32(stack[3]))})
		}), []api.ValueType{i32, i32, i32, i32}, nil).Export("abort").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("instantiate env.abort: %w", err)
	}
	return nil
}

// abortError is the panic value of env.abort; wazero turns it into the call's error.
type abortError struct{ msg string }

func (e *abortError) Error() string { return e.msg }

// asString reads an AssemblyScript string (UTF-16LE, byte length at ptr-4); "" when it cannot.
func asString(m api.Module, ptr uint32) string {
	if ptr < 4 {
		return ""
	}
	lb, ok := m.Memory().Read(ptr-4, 4)
	if !ok {
		return ""
	}
	n := binary.LittleEndian.Uint32(lb)
	if n > 2*abi.MaxReasonBytes {
		n = 2 * abi.MaxReasonBytes
	}
	b, ok := m.Memory().Read(ptr, n&^1)
	if !ok {
		return ""
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
