// Package kafka provides the Kafka source (consumer groups, per-partition positions, offsets
// committed only once records are durable in every sink, rebalances that wait for what was read)
// and the Kafka sink (idempotent producer, topic, key and partition from record templates), both
// built on franz-go.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Components returns the Kafka source and sink, for a catalog.
func Components() []connector.Component {
	return []connector.Component{
		connector.SourceComponent(sourceSpec, func(cfg connector.Config, env connector.Env) (connector.Source, error) {
			return NewSource(cfg, env)
		}),
		connector.SinkComponent(sinkSpec, func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
			return NewSink(cfg, env)
		}),
	}
}

// SASL mechanisms.
const (
	saslNone        = "none"
	saslPlain       = "PLAIN"
	saslScramSHA256 = "SCRAM-SHA-256"
	saslScramSHA512 = "SCRAM-SHA-512"
)

// connectionFields are the fields the source and the sink share: where the brokers are and how to
// reach them.
func connectionFields() []connector.Field {
	return []connector.Field{
		{Name: "brokers", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Required: true,
			Description: "Bootstrap brokers, as `host:port`; the others are discovered from them.", Example: []any{"localhost:9092"}},
		{Name: "client_id", Type: connector.TypeString, Default: "sluice", Description: "The client id the brokers see in their logs and quotas."},
		{Name: "connect_timeout", Type: connector.TypeDuration, Default: 30 * time.Second,
			Description: "How long opening keeps trying to reach the brokers (with backoff) before it fails with the last connection error; the runtime then opens again, with backoff, a few times."},
		{Name: "tls", Type: connector.TypeObject, Description: "TLS to the brokers.", Fields: []connector.Field{
			{Name: "enabled", Type: connector.TypeBool, Default: false, Description: "Connect with TLS. Implied by any other tls field."},
			{Name: "ca_file", Type: connector.TypeString, Description: "PEM file of the certificate authorities to trust instead of the system's."},
			{Name: "cert_file", Type: connector.TypeString, Description: "PEM client certificate, for brokers that require one (mutual TLS)."},
			{Name: "key_file", Type: connector.TypeString, Description: "PEM private key of cert_file."},
			{Name: "server_name", Type: connector.TypeString, Description: "Name to verify the brokers' certificates against, when it is not the host dialled."},
			{Name: "insecure_skip_verify", Type: connector.TypeBool, Default: false, Description: "Do not verify the brokers' certificates. For tests only."},
		}},
		{Name: "sasl", Type: connector.TypeObject, Description: "SASL authentication.", Fields: []connector.Field{
			{Name: "mechanism", Type: connector.TypeString, Default: saslNone, Enum: []string{saslNone, saslPlain, saslScramSHA256, saslScramSHA512},
				Description: "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; `none` disables SASL. Use PLAIN only over TLS."},
			{Name: "username", Type: connector.TypeString, Description: "The SASL user."},
			{Name: "password", Type: connector.TypeString, Secret: true, Description: "The SASL password."},
		}},
	}
}

type tlsConfig struct {
	Enabled            bool   `config:"enabled"`
	CAFile             string `config:"ca_file"`
	CertFile           string `config:"cert_file"`
	KeyFile            string `config:"key_file"`
	ServerName         string `config:"server_name"`
	InsecureSkipVerify bool   `config:"insecure_skip_verify"`
}

type saslConfig struct {
	Mechanism string `config:"mechanism"`
	Username  string `config:"username"`
	Password  string `config:"password"`
}

// connConfig is the decoded connection part of a source or sink configuration.
type connConfig struct {
	Brokers        []string      `config:"brokers"`
	ClientID       string        `config:"client_id"`
	ConnectTimeout time.Duration `config:"connect_timeout"`
	TLS            tlsConfig     `config:"tls"`
	SASL           saslConfig    `config:"sasl"`
}

// check validates what the spec cannot express, without I/O.
func (c *connConfig) check() error {
	if len(c.Brokers) == 0 {
		return &connector.ConfigError{Field: "brokers", Msg: "must name at least one broker"}
	}
	for i, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return &connector.ConfigError{Field: fmt.Sprintf("brokers[%d]", i), Msg: fmt.Sprintf("%q is not host:port", b)}
		}
	}
	if c.ConnectTimeout <= 0 {
		return &connector.ConfigError{Field: "connect_timeout", Msg: "must be greater than 0"}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		f := "tls.key_file"
		if c.TLS.CertFile == "" {
			f = "tls.cert_file"
		}
		return &connector.ConfigError{Field: f, Msg: "tls.cert_file and tls.key_file go together"}
	}
	if c.SASL.Mechanism != saslNone {
		if c.SASL.Username == "" {
			return &connector.ConfigError{Field: "sasl.username", Msg: "is required with sasl.mechanism " + c.SASL.Mechanism}
		}
	} else if c.SASL.Username != "" || c.SASL.Password != "" {
		return &connector.ConfigError{Field: "sasl.mechanism", Msg: "a SASL user is set but no mechanism", Hint: "set sasl.mechanism to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"}
	}
	return nil
}

// clientOptions are the franz-go options for connecting as configured. TLS files are read here,
// so it is called from Open.
func (c *connConfig) clientOptions(log *slog.Logger, dial *dialWatch) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.WithLogger(kgoLogger{log}),
		kgo.WithHooks(dial),
		kgo.DialTimeout(min(c.ConnectTimeout, 10*time.Second)),
		// A topic or partition the client does not know yet (created a moment ago, or a leader
		// that moved) is looked up again after at most a second, not franz-go's default 5s.
		kgo.MetadataMinAge(time.Second),
	}
	t := c.TLS
	if t.Enabled || t.CAFile != "" || t.CertFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tls.ca_file: %w: %w", err, connector.ErrPermanent)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate: %w", t.CAFile, connector.ErrPermanent)
			}
			tc.RootCAs = pool
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w: %w", err, connector.ErrPermanent)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch c.SASL.Mechanism {
	case saslPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsMechanism()))
	case saslScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha256Mechanism()))
	case saslScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha512Mechanism()))
	}
	return opts, nil
}

// classify turns an error from the brokers into what the runtime should do with it: a
// connector.ErrPermanent for what retrying cannot fix (authentication, authorization, TLS
// verification), the error itself otherwise. what names the component ("kafka source").
func (c *connConfig) classify(what string, err error) error {
	var (
		unknownCA  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		certVerify *tls.CertificateVerificationError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, connector.ErrPermanent):
		return err
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("%s: SASL %s authentication of user %q failed (check sasl.username and sasl.password): %v: %w",
			what, c.SASL.Mechanism, c.SASL.Username, err, connector.ErrPermanent)
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.GroupAuthorizationFailed),
		errors.Is(err, kerr.ClusterAuthorizationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return fmt.Errorf("%s: not authorized: %v (grant the ACLs to the configured user): %w", what, err, connector.ErrPermanent)
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &certVerify):
		return fmt.Errorf("%s: TLS: %v (check tls.ca_file and tls.server_name): %w", what, err, connector.ErrPermanent)
	case clientCertRefused(err):
		hint := "the brokers require a client certificate: set tls.cert_file and tls.key_file"
		if c.TLS.CertFile != "" {
			hint = "the brokers refused the client certificate: check that tls.cert_file is signed by a CA they trust, and tls.key_file"
		}
		return fmt.Errorf("%s: TLS: %v (%s): %w", what, err, hint, connector.ErrPermanent)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// clientCertRefused reports whether err holds a TLS alert with which a server refuses the
// client's certificate, or its lack of one. crypto/tls reports a received alert as a
// *net.OpError "remote error" around an unexported type, so the alert is known by its text.
func clientCertRefused(err error) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return false
	}
	switch oe.Err.Error() {
	case "tls: bad certificate", "tls: certificate required", "tls: unsupported certificate",
		"tls: unknown certificate", "tls: unknown certificate authority", "tls: access denied":
		return true
	}
	return false
}

// await calls try until it succeeds, fails for good (classify says permanent), or
// connect_timeout passes, waiting between tries (250ms doubling, at most 2s): brokers that are
// starting, or a network that is coming up, get the whole connect_timeout to answer.
func (c *connConfig) await(ctx context.Context, what string, dial *dialWatch, try func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, c.ConnectTimeout)
	defer cancel()
	wait := 250 * time.Millisecond
	for {
		err := try(cctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cerr := c.classify(what, err); errors.Is(cerr, connector.ErrPermanent) {
			return cerr
		}
		t := time.NewTimer(wait)
		select {
		case <-cctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return c.reach(what, err, dial)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// reach wraps the failure to talk to any broker within connect_timeout with the last connection
// error, which says more than "context deadline exceeded".
func (c *connConfig) reach(what string, err error, dial *dialWatch) error {
	if last := dial.last(); last != nil && (errors.Is(err, context.DeadlineExceeded) || isConnErr(err)) {
		return c.classify(what, fmt.Errorf("no broker of %s answered within %s (last connection error: %w)",
			strings.Join(c.Brokers, ","), c.ConnectTimeout, last))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: no broker of %s answered within %s", what, strings.Join(c.Brokers, ","), c.ConnectTimeout)
	}
	return c.classify(what, err)
}

func isConnErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

// dialWatch is a franz-go hook that remembers the last failed broker connection, so an Open that
// times out can say why.
type dialWatch struct {
	mu  sync.Mutex
	err error
}

var _ kgo.HookBrokerConnect = (*dialWatch)(nil)

func (d *dialWatch) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.err = fmt.Errorf("%s:%d: %w", meta.Host, meta.Port, err)
	} else {
		d.err = nil
	}
}

func (d *dialWatch) last() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// kgoLogger passes franz-go's warnings and errors to the component's logger.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	}
	l.log.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}

func logger(env connector.Env) *slog.Logger {
	if env.Logger != nil {
		return env.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// unknownTopicSettle is how long Open keeps asking for a topic the brokers do not know: a topic
// created a moment ago may not be in every broker's metadata yet.
const unknownTopicSettle = 2 * time.Second

// topicInfo is what a metadata request says of one topic.
type topicInfo struct {
	name       string
	partitions []int32
	internal   bool
	err        error
}

// topicMetadata asks the brokers (not the client's cache) for the metadata of the topics, all
// of them when none are named, asking again for up to unknownTopicSettle while one of them is
// unknown.
func topicMetadata(ctx context.Context, cl *kgo.Client, topics []string) (map[string]topicInfo, error) {
	deadline := time.Now().Add(unknownTopicSettle)
	for {
		req := kmsg.NewPtrMetadataRequest()
		if len(topics) > 0 {
			for _, t := range topics {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(t)
				req.Topics = append(req.Topics, rt)
			}
		} else {
			req.Topics = nil // all topics
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, err
		}
		out := make(map[string]topicInfo, len(resp.Topics))
		for _, t := range resp.Topics {
			if t.Topic == nil {
				continue
			}
			ti := topicInfo{name: *t.Topic, internal: t.IsInternal, err: kerr.ErrorForCode(t.ErrorCode)}
			for _, p := range t.Partitions {
				ti.partitions = append(ti.partitions, p.Partition)
			}
			slices.Sort(ti.partitions)
			out[ti.name] = ti
		}
		unknown := false
		for _, t := range topics {
			if d, ok := out[t]; !ok || errors.Is(d.err, kerr.UnknownTopicOrPartition) {
				unknown = true
			}
		}
		if !unknown || time.Now().After(deadline) {
			return out, nil
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, nil
		case <-t.C:
		}
	}
}
