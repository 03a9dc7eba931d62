// Package pulsar provides the Apache Pulsar source (a subscription of any type, acking each message
// only once it is durable in every sink) and the Pulsar sink (a batching producer per topic, flushed
// before a write returns), on github.com/apache/pulsar-client-go.
package pulsar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Components returns the Pulsar source and the Pulsar sink, for a catalog.
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

// connectionFields are the fields of the source and the sink that say how to reach the cluster.
var connectionFields = []connector.Field{
	{Name: "url", Type: connector.TypeString, Required: true, Example: "pulsar://localhost:6650",
		Description: "The service URL of the cluster: `pulsar://host:6650`, `pulsar+ssl://host:6651` for TLS (several hosts separated by commas)."},
	{Name: "token", Type: connector.TypeString, Secret: true, Default: "",
		Description: "A JWT to authenticate with (token authentication)."},
	{Name: "token_file", Type: connector.TypeString, Default: "",
		Description: "A file holding the JWT, read again whenever the client reconnects (so a rotated token is picked up). Excludes `token`."},
	{Name: "tls", Type: connector.TypeObject, Description: "TLS settings, used with a `pulsar+ssl://` URL (and an `https://` `admin_url`).", Fields: []connector.Field{
		{Name: "trust_certs_file", Type: connector.TypeString, Default: "", Description: "PEM file of the CA certificates to trust; empty uses the system's."},
		{Name: "cert_file", Type: connector.TypeString, Default: "", Description: "PEM client certificate, for TLS authentication (with `key_file`; excludes `token`)."},
		{Name: "key_file", Type: connector.TypeString, Default: "", Description: "PEM private key of `cert_file`."},
		{Name: "allow_insecure", Type: connector.TypeBool, Default: false, Description: "Accept a broker certificate that does not verify. For tests only."},
		{Name: "validate_hostname", Type: connector.TypeBool, Default: true, Description: "Check that the broker certificate names the host connected to."},
	}},
	{Name: "connection_timeout", Type: connector.TypeDuration, Default: 10 * time.Second, Description: "How long to wait for a TCP connection (and TLS handshake) to a broker."},
	{Name: "operation_timeout", Type: connector.TypeDuration, Default: 30 * time.Second,
		Description: "How long a lookup, subscribe or producer creation may take, retries included, before it fails; an unreachable cluster is reported after it."},
}

// connConfig is the decoded connectionFields.
type connConfig struct {
	URL               string        `config:"url"`
	Token             string        `config:"token"`
	TokenFile         string        `config:"token_file"`
	TLS               tlsConfig     `config:"tls"`
	ConnectionTimeout time.Duration `config:"connection_timeout"`
	OperationTimeout  time.Duration `config:"operation_timeout"`
}

type tlsConfig struct {
	TrustCertsFile   string `config:"trust_certs_file"`
	CertFile         string `config:"cert_file"`
	KeyFile          string `config:"key_file"`
	AllowInsecure    bool   `config:"allow_insecure"`
	ValidateHostname bool   `config:"validate_hostname"`
}

// decodeConn reads and checks the connection fields of a source or sink configuration.
func decodeConn(spec *connector.Spec, cfg connector.Config) (connConfig, error) {
	var c connConfig
	if err := spec.Decode(cfg, &c); err != nil {
		return c, err
	}
	u := strings.TrimSpace(c.URL)
	switch {
	case u == "":
		return c, &connector.ConfigError{Field: "url", Msg: "must not be empty"}
	case !strings.HasPrefix(u, "pulsar://") && !strings.HasPrefix(u, "pulsar+ssl://") &&
		!strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://"):
		return c, &connector.ConfigError{Field: "url", Msg: fmt.Sprintf("%q is not a Pulsar service URL", u),
			Hint: "write pulsar://host:6650, or pulsar+ssl://host:6651 for TLS"}
	}
	c.URL = u
	if c.Token != "" && c.TokenFile != "" {
		return c, &connector.ConfigError{Field: "token_file", Msg: "token and token_file exclude each other"}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		field := "tls.key_file"
		if c.TLS.CertFile == "" {
			field = "tls.cert_file"
		}
		return c, &connector.ConfigError{Field: field, Msg: "tls.cert_file and tls.key_file go together"}
	}
	if c.TLS.CertFile != "" && (c.Token != "" || c.TokenFile != "") {
		return c, &connector.ConfigError{Field: "tls.cert_file", Msg: "TLS authentication (a client certificate) and token authentication exclude each other"}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"connection_timeout", c.ConnectionTimeout}, {"operation_timeout", c.OperationTimeout}} {
		if d.v <= 0 {
			return c, &connector.ConfigError{Field: d.name, Msg: "must be greater than 0"}
		}
	}
	return c, nil
}

// newClient builds a client; it does not connect (the first lookup does). Why the client's last
// connection attempt failed is kept in conn, for the errors the client itself reports only as
// "connection error".
func (c connConfig) newClient(log *slog.Logger, conn *connProblems) (pulsar.Client, error) {
	opts := pulsar.ClientOptions{
		URL:                        c.URL,
		ConnectionTimeout:          c.ConnectionTimeout,
		OperationTimeout:           c.OperationTimeout,
		TLSTrustCertsFilePath:      c.TLS.TrustCertsFile,
		TLSAllowInsecureConnection: c.TLS.AllowInsecure,
		TLSValidateHostname:        c.TLS.ValidateHostname,
		Logger:                     newClientLogger(log, conn),
		// The client's own metrics stay private: the runtime exports its own, and two clients in
		// one process must not collide on the default registry.
		MetricsRegisterer: prometheus.NewRegistry(),
	}
	switch {
	case c.Token != "":
		opts.Authentication = pulsar.NewAuthenticationToken(c.Token)
	case c.TokenFile != "":
		opts.Authentication = pulsar.NewAuthenticationTokenFromFile(c.TokenFile)
	case c.TLS.CertFile != "":
		opts.Authentication = pulsar.NewAuthenticationTLS(c.TLS.CertFile, c.TLS.KeyFile)
	}
	cl, err := pulsar.NewClient(opts)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", c.URL, err)
	}
	return cl, nil
}

// classify turns an error of the client into one the runtime acts on: problems retrying cannot
// fix (authentication, authorization, a topic that does not exist and may not be created, an
// invalid topic name) are marked connector.ErrPermanent; the rest (unreachable broker, timeouts)
// are left to the runtime's retries. what says what was being done.
func classify(err error, what string, url string, conn *connProblems) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if last, auth := conn.last(); last != "" && (strings.Contains(msg, "connection error") || strings.Contains(msg, "deadline exceeded")) {
		if auth {
			return fmt.Errorf("%s: %s refused the connection: %s (check token, token_file or tls.cert_file): %w", what, url, last, connector.ErrPermanent)
		}
		msg += ": " + last
	}
	var perr *pulsar.Error
	result := pulsar.Result(-1)
	if errors.As(err, &perr) {
		result = perr.Result()
	}
	has := func(s string) bool { return strings.Contains(msg, s) }
	switch {
	case result == pulsar.AuthenticationError || has("AuthenticationError"):
		return fmt.Errorf("%s: %s refused the credentials (check token, token_file or tls.cert_file): %v: %w", what, url, err, connector.ErrPermanent)
	case result == pulsar.AuthorizationError || has("AuthorizationError"):
		return fmt.Errorf("%s: not authorized by %s (the role lacks the permission): %v: %w", what, url, err, connector.ErrPermanent)
	case result == pulsar.TopicNotFound || has("TopicNotFound") || has("Topic Not Found") || has("topic not found"):
		return fmt.Errorf("%s: the topic does not exist and its namespace does not allow automatic creation (create it, or allow auto topic creation): %v: %w", what, err, connector.ErrPermanent)
	case result == pulsar.InvalidTopicName || has("InvalidTopicName") || has("Invalid topic name"):
		return fmt.Errorf("%s: invalid topic name: %v: %w", what, err, connector.ErrPermanent)
	case result == pulsar.ConsumerBusy || has("ConsumerBusy"):
		return fmt.Errorf("%s: the subscription is exclusive and another consumer holds it (use subscription_type failover or shared to run several processes): %v", what, err)
	case has("connection error") || has("connection refused") || has("no such host") || has("i/o timeout") ||
		result == pulsar.ConnectError || result == pulsar.TimeoutError || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: cannot reach the Pulsar cluster at %s: %s", what, url, strings.ReplaceAll(msg, "\n", ": "))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// withContext runs f, which cannot be cancelled, and returns when it does or when ctx is done;
// in the latter case cleanup receives f's result once f returns.
//
// The client retries a connection the broker refused until its operation timeout; a refusal of
// the credentials (refused is closed) ends the wait at once, with errRefused.
func withContext[T any](ctx context.Context, refused <-chan struct{}, f func() (T, error), cleanup func(T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	var err error
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-refused:
		err = errRefused
	}
	go func() {
		r := <-ch
		cleanup(r.v, r.err)
	}()
	var zero T
	return zero, err
}

// errRefused is the error of an operation cut short because the broker refused the credentials.
var errRefused = errors.New("connection error")
