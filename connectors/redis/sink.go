package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

// Sink writes records to Redis. Write and WriteTx are called from one goroutine at a time.
type Sink struct {
	cfg    *config
	w      *writer
	env    connector.Env
	posKey string
	client redis.UniversalClient
	b      batch
	// seen holds, per partition, the highest offset this sink read from or stored in the
	// positions hash: positions never move back, so a lower one means writes were lost.
	seen map[string]int64
	// WriteTx's buffers, reused from write to write: the partitions it names (parts, indexed by
	// partIdx), the partition of each record (recPart), the HSET's and MSET's arguments and the
	// encoded positions; and the version key of each partition seen.
	parts              []txPart
	partIdx            map[string]int
	recPart            []int
	hsetArgs, msetArgs []any
	enc                []byte
	vkeys              map[string]string
	// conn is WriteTx's own connection, nil before the first and after a failed one. Between
	// transactions it keeps the version keys of the last one's partitions WATCHed, and carried
	// holds their positions as read under that WATCH; rewatch says the WATCH is to be dropped
	// before the next read.
	conn     *redis.Conn
	connUsed time.Time
	carried  map[string]carriedPos
	rewatch  bool
	// txs counts the WriteTx calls that succeeded, conflicts their attempts that found a position
	// changed by another writer and started over.
	txs, conflicts int64
}

var (
	_ connector.Sink              = (*Sink)(nil)
	_ connector.TransactionalSink = (*Sink)(nil)
	_ connector.SharedPositions   = (*Sink)(nil)
)

// NewSink builds a Redis sink from its configuration. It does no I/O.
func NewSink(cfg connector.Config, env connector.Env) (*Sink, error) {
	c, w, err := decodeConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: c, w: w, env: env, posKey: c.PositionsKey}
	if s.posKey == "" {
		s.posKey = "sluice:positions:" + env.Pipeline + ":" + env.Component
	}
	s.b.w = w
	return s, nil
}

var _ connector.HeaderBlindSink = (*Sink)(nil)

// IgnoresHeaders reports that none of the sink's templates (key, stream or channel, score,
// member) reads a header: the runtime may then leave out a source's metadata headers
// (connector.HeaderBlindSink).
func (s *Sink) IgnoresHeaders() bool {
	for _, t := range []*template.Template{s.w.target, s.w.scoreTmpl, s.w.member} {
		if t != nil && t.ReadsHeaders() {
			return false
		}
	}
	return true
}

// Open connects and checks the server answers: authentication, the database index and whether
// the node is part of a cluster.
func (s *Sink) Open(ctx context.Context) error {
	if s.client != nil {
		return nil
	}
	routeClientLog.Do(func() { redis.SetLogger(clientLog{}) })
	tlsCfg, err := s.cfg.tlsConfig()
	if err != nil {
		return fmt.Errorf("redis: %w: %w", err, connector.ErrPermanent)
	}
	c := s.cfg
	if c.isCluster() {
		s.client = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.addrList(), Username: c.Username, Password: c.Password, TLSConfig: tlsCfg,
			DialTimeout: c.DialTimeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout, ContextTimeoutEnabled: true,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		})
	} else {
		// No retries inside the client: a retried MULTI/EXEC whose reply was lost would run
		// twice. The runtime retries failed writes with backoff.
		s.client = redis.NewClient(&redis.Options{
			Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: tlsCfg,
			DialTimeout: c.DialTimeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout, ContextTimeoutEnabled: true,
			MaxRetries: -1, PoolSize: 4,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		})
	}
	if err := s.check(ctx); err != nil {
		_ = s.client.Close()
		s.client = nil // the next Open starts over
		return err
	}
	return nil
}

// check pings the server and compares its cluster mode with the configuration.
func (s *Sink) check(ctx context.Context) error {
	where := strings.Join(s.cfg.addrList(), ",")
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.openError(where, err)
	}
	if s.cfg.isCluster() {
		return nil
	}
	info, err := s.client.Info(ctx, "cluster").Result()
	if err != nil {
		return s.openError(where, err)
	}
	if strings.Contains(info, "cluster_enabled:1") {
		return &connector.ConfigError{Field: "addr", Msg: fmt.Sprintf("%s is a Redis Cluster node", where),
			Hint: "list the cluster's nodes in addrs and set cluster: true"}
	}
	return nil
}

// openError says what failed when connecting and marks what retrying cannot fix as permanent.
func (s *Sink) openError(where string, err error) error {
	user := s.cfg.Username
	if user == "" {
		user = "default"
	}
	msg := err.Error()
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	switch {
	case redis.IsAuthError(err) || strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") ||
		strings.HasPrefix(msg, "ERR AUTH") || strings.Contains(msg, "invalid password"):
		return fmt.Errorf("redis: authentication at %s as user %q failed: %v: %w", where, user, err, connector.ErrPermanent)
	case strings.HasPrefix(msg, "NOPERM"):
		return fmt.Errorf("redis: user %q may not connect at %s: %v: %w", user, where, err, connector.ErrPermanent)
	case strings.Contains(msg, "DB index is out of range") || strings.Contains(msg, "invalid DB index"):
		return fmt.Errorf("redis: db %d at %s: %v: %w", s.cfg.DB, where, err, connector.ErrPermanent)
	case strings.Contains(msg, "cluster support disabled"):
		return fmt.Errorf("redis: %s is not a Redis Cluster (%v); use addr without cluster: true: %w", where, err, connector.ErrPermanent)
	case errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr):
		return fmt.Errorf("redis: TLS at %s: the server certificate is not trusted: %v: %w", where, err, connector.ErrPermanent)
	case errors.As(err, &recErr):
		return fmt.Errorf("redis: TLS at %s: the server does not speak TLS: %v: %w", where, err, connector.ErrPermanent)
	case strings.Contains(msg, "remote error: tls:"):
		return fmt.Errorf("redis: TLS at %s: the server refused the connection (a client certificate it wants, or one it does not trust): %v: %w", where, err, connector.ErrPermanent)
	}
	return fmt.Errorf("redis: connect to %s: %w", where, err)
}

// routeClientLog sends go-redis's own log lines (a failed dial, a pool problem), which it writes
// to stderr by default, to slog at debug level: the runtime logs each failed write with its
// error already. go-redis has one logger per process, so this is done once.
var routeClientLog sync.Once

type clientLog struct{}

func (clientLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// Write sends the batch as one pipeline. Records that cannot be rendered or that Redis refuses
// on their own come back in a *connector.BatchError; a connection error fails the whole write.
func (s *Sink) Write(ctx context.Context, records []connector.Record) error {
	if s.client == nil {
		return errors.New("redis: write before open")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.b.reset(ctx)
	defer s.b.done()
	for i := range records {
		s.b.add(i, &records[i])
	}
	if len(s.b.cmds) > 0 {
		pipe := s.client.Pipeline()
		_ = pipe.BatchProcess(ctx, s.b.cmds...)
		if _, err := pipe.Exec(ctx); err != nil {
			if werr := s.b.collect(false); werr != nil {
				return fmt.Errorf("redis: write: %w", werr)
			}
		}
	}
	return s.b.result()
}

// Close closes the connections. It is idempotent.
func (s *Sink) Close(context.Context) error {
	if s.client == nil {
		return nil
	}
	s.dropConn()
	err := s.client.Close()
	s.client = nil
	return err
}

// recordError reports whether a Redis error reply concerns the command's own record (a key of
// the wrong type, a key the ACL denies), rather than the server or the connection.
func recordError(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	prefix, _, _ := strings.Cut(msg, " ")
	switch prefix {
	case "OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "MISCONF",
		"NOAUTH", "WRONGPASS", "EXECABORT", "NOREPLICAS", "MOVED", "ASK", "NOSCRIPT", "UNBLOCKED":
		return false
	case "NOPERM":
		return strings.Contains(msg, " key") || strings.Contains(msg, " channel")
	}
	return true
}

func sortFailed(f []connector.RecordError) {
	slices.SortFunc(f, func(a, b connector.RecordError) int { return a.Index - b.Index })
}
