package pulsar

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	plog "github.com/apache/pulsar-client-go/pulsar/log"
)

// connProblems remembers why the client's last connection attempt failed. The client retries a
// refused or failed connection until its operation timeout and then reports "connection error";
// the reason (a TLS failure, the broker refusing the credentials) is only in its log.
type connProblems struct {
	mu      sync.Mutex
	msg     string
	auth    bool
	refused chan struct{} // closed at the first refusal of the credentials
	closed  bool
}

func newConnProblems() *connProblems { return &connProblems{refused: make(chan struct{})} }

// refusals is closed once the broker refused the credentials.
func (c *connProblems) refusals() <-chan struct{} {
	if c == nil {
		return nil
	}
	return c.refused
}

// Messages of the client (internal/connection.go) that say a connection attempt failed.
var connFailures = []string{
	"Failed to connect to broker",
	"Failed to perform initial handshake",
	"Failed to establish connection with broker", // the broker answered CONNECT with an error
	"Failed to load auth credentials",
}

func (c *connProblems) observe(msg string) {
	if c == nil {
		return
	}
	for _, f := range connFailures {
		if strings.HasPrefix(msg, f) {
			lower := strings.ToLower(msg)
			auth := f == "Failed to load auth credentials" ||
				f == "Failed to establish connection with broker" && (strings.Contains(lower, "auth") || strings.Contains(lower, "token") || strings.Contains(lower, "credential"))
			c.mu.Lock()
			if auth && !c.closed && c.refused != nil {
				close(c.refused)
				c.closed = true
			}
			c.msg, c.auth = msg, auth
			c.mu.Unlock()
			return
		}
	}
}

// last returns the last connection failure and whether it was about credentials.
func (c *connProblems) last() (string, bool) {
	if c == nil {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msg, c.auth
}

// clientLogger is the client's logger: it passes the client's log to the component's logger one
// level lower (the client reports every connection and reconnection at info, which is the
// runtime's debug), and remembers connection failures whatever the level logged.
type clientLogger struct {
	log    *slog.Logger
	conn   *connProblems
	fields plog.Fields
}

func newClientLogger(log *slog.Logger, conn *connProblems) plog.Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &clientLogger{log: log, conn: conn}
}

func (l *clientLogger) with(f plog.Fields) *clientLogger {
	m := make(plog.Fields, len(l.fields)+len(f))
	for k, v := range l.fields {
		m[k] = v
	}
	for k, v := range f {
		m[k] = v
	}
	return &clientLogger{log: l.log, conn: l.conn, fields: m}
}

func (l *clientLogger) SubLogger(f plog.Fields) plog.Logger { return l.with(f) }
func (l *clientLogger) WithFields(f plog.Fields) plog.Entry { return l.with(f) }
func (l *clientLogger) WithField(k string, v interface{}) plog.Entry {
	return l.with(plog.Fields{k: v})
}
func (l *clientLogger) WithError(err error) plog.Entry { return l.with(plog.Fields{"error": err}) }

func (l *clientLogger) Debug(args ...interface{}) { l.emit(levelDebug, args...) }
func (l *clientLogger) Info(args ...interface{})  { l.emit(slog.LevelDebug, args...) }
func (l *clientLogger) Warn(args ...interface{})  { l.problem(slog.LevelDebug, fmt.Sprint(args...)) }
func (l *clientLogger) Error(args ...interface{}) { l.problem(slog.LevelWarn, fmt.Sprint(args...)) }

func (l *clientLogger) Debugf(f string, args ...interface{}) { l.emitf(levelDebug, f, args...) }
func (l *clientLogger) Infof(f string, args ...interface{})  { l.emitf(slog.LevelDebug, f, args...) }
func (l *clientLogger) Warnf(f string, args ...interface{}) {
	l.problem(slog.LevelDebug, fmt.Sprintf(f, args...))
}
func (l *clientLogger) Errorf(f string, args ...interface{}) {
	l.problem(slog.LevelWarn, fmt.Sprintf(f, args...))
}

// levelDebug is where the client's debug log goes: below the runtime's debug. The client logs
// per message at debug; formatting those only when enabled matters for throughput.
const levelDebug = slog.LevelDebug - 4

func (l *clientLogger) enabled(level slog.Level) bool {
	return l.log.Enabled(context.Background(), level)
}

func (l *clientLogger) emit(level slog.Level, args ...interface{}) {
	if l.enabled(level) {
		l.write(level, fmt.Sprint(args...))
	}
}

func (l *clientLogger) emitf(level slog.Level, f string, args ...interface{}) {
	if l.enabled(level) {
		l.write(level, fmt.Sprintf(f, args...))
	}
}

// problem logs a warning or error of the client and remembers it when it is a connection failure.
func (l *clientLogger) problem(level slog.Level, msg string) {
	if err, ok := l.fields["error"]; ok {
		l.conn.observe(fmt.Sprintf("%s: %v", msg, err))
	} else {
		l.conn.observe(msg)
	}
	if l.enabled(level) {
		l.write(level, msg)
	}
}

func (l *clientLogger) write(level slog.Level, msg string) {
	ctx := context.Background()
	keys := make([]string, 0, len(l.fields))
	for k := range l.fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]any, 0, 2*len(keys)+2)
	attrs = append(attrs, "origin", "pulsar-client")
	for _, k := range keys {
		attrs = append(attrs, k, fmt.Sprint(l.fields[k]))
	}
	l.log.Log(ctx, level, msg, attrs...)
}
