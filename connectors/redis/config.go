package redis

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

type tlsConfig struct {
	Enabled            bool   `config:"enabled"`
	CAFile             string `config:"ca_file"`
	CertFile           string `config:"cert_file"`
	KeyFile            string `config:"key_file"`
	ServerName         string `config:"server_name"`
	InsecureSkipVerify bool   `config:"insecure_skip_verify"`
}

// config is the sink's decoded configuration.
type config struct {
	Addr         string        `config:"addr"`
	Addrs        []string      `config:"addrs"`
	Cluster      bool          `config:"cluster"`
	Username     string        `config:"username"`
	Password     string        `config:"password"`
	DB           int           `config:"db"`
	TLS          tlsConfig     `config:"tls"`
	Mode         string        `config:"mode"`
	Stream       string        `config:"stream"`
	Key          string        `config:"key"`
	Channel      string        `config:"channel"`
	Fields       string        `config:"fields"`
	ValueField   string        `config:"value_field"`
	MaxLen       int64         `config:"maxlen"`
	Approximate  bool          `config:"maxlen_approximate"`
	Score        string        `config:"score"`
	Member       string        `config:"member"`
	TTL          time.Duration `config:"ttl"`
	PositionsKey string        `config:"positions_key"`
	DialTimeout  time.Duration `config:"dial_timeout"`
	Timeout      time.Duration `config:"timeout"`
}

// writer is what the configuration says to write per record, checked and parsed.
type writer struct {
	mode       string
	command    string             // XADD, HSET, SET, ZADD or PUBLISH
	target     *template.Template // stream, key or channel
	objectVal  bool               // stream fields: object
	valueField string
	maxLen     int64
	approx     bool
	score      []string           // zset: field path of the score
	scoreTmpl  *template.Template // zset: score template, when score holds a placeholder
	member     *template.Template // zset: nil means the value
	ttl        time.Duration
	ttlMS      any // ttl in milliseconds, as a command argument
}

// scripted reports whether a record's write and its expiry run as one script.
func (w *writer) scripted() bool { return w.ttl > 0 && w.mode != modeString }

var modeCommand = map[string]string{
	modeStream: "XADD", modeHash: "HSET", modeString: "SET", modeZset: "ZADD", modePublish: "PUBLISH",
}

// modeTarget names the field holding each mode's key template.
var modeTarget = map[string]string{
	modeStream: "stream", modeHash: "key", modeString: "key", modeZset: "key", modePublish: "channel",
}

func decodeConfig(cfg connector.Config) (*config, *writer, error) {
	var c config
	if err := sinkSpec.Decode(cfg, &c); err != nil {
		return nil, nil, err
	}
	if err := c.checkConnection(); err != nil {
		return nil, nil, err
	}
	w, err := c.writer()
	if err != nil {
		return nil, nil, err
	}
	return &c, w, nil
}

func (c *config) checkConnection() error {
	switch {
	case c.Addr == "" && len(c.Addrs) == 0:
		return &connector.ConfigError{Field: "addr", Msg: "is required (or addrs, for a cluster)"}
	case c.Addr != "" && len(c.Addrs) > 0:
		return &connector.ConfigError{Field: "addrs", Msg: "cannot be set together with addr", Hint: "use addr for a single node, addrs for a cluster"}
	case c.DB < 0:
		return &connector.ConfigError{Field: "db", Msg: "must not be negative"}
	case c.isCluster() && c.DB != 0:
		return &connector.ConfigError{Field: "db", Msg: "a Redis Cluster has database 0 only"}
	case c.DialTimeout <= 0:
		return &connector.ConfigError{Field: "dial_timeout", Msg: "must be greater than 0"}
	case c.Timeout <= 0:
		return &connector.ConfigError{Field: "timeout", Msg: "must be greater than 0"}
	case !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.ServerName != "" || c.TLS.InsecureSkipVerify):
		return &connector.ConfigError{Field: "tls.enabled", Msg: "must be true for the other tls settings to apply"}
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return &connector.ConfigError{Field: "tls.cert_file", Msg: "cert_file and key_file go together"}
	}
	for i, a := range c.addrList() {
		if !strings.Contains(a, ":") {
			field := "addr"
			if len(c.Addrs) > 0 {
				field = fmt.Sprintf("addrs[%d]", i)
			}
			return &connector.ConfigError{Field: field, Msg: fmt.Sprintf("%q is not host:port", a)}
		}
	}
	return nil
}

func (c *config) isCluster() bool { return c.Cluster || len(c.Addrs) > 1 }

func (c *config) addrList() []string {
	if c.Addr != "" {
		return []string{c.Addr}
	}
	return c.Addrs
}

// writer checks the mode-specific fields and parses the templates.
func (c *config) writer() (*writer, error) {
	w := &writer{mode: c.Mode, command: modeCommand[c.Mode], ttlMS: c.TTL.Milliseconds(), objectVal: c.Fields == "object", valueField: c.ValueField,
		maxLen: c.MaxLen, approx: c.Approximate, ttl: c.TTL}
	targetField := modeTarget[c.Mode]
	for _, f := range []struct{ name, val string }{{"stream", c.Stream}, {"key", c.Key}, {"channel", c.Channel}} {
		if f.val != "" && f.name != targetField {
			return nil, &connector.ConfigError{Field: f.name, Msg: fmt.Sprintf("does not apply to mode %s", c.Mode),
				Hint: fmt.Sprintf("mode %s writes to %s", c.Mode, targetField)}
		}
	}
	text := map[string]string{"stream": c.Stream, "key": c.Key, "channel": c.Channel}[targetField]
	if text == "" {
		return nil, &connector.ConfigError{Field: targetField, Msg: fmt.Sprintf("is required in mode %s", c.Mode)}
	}
	t, err := template.ParseField(targetField, text)
	if err != nil {
		return nil, err
	}
	w.target = t
	if err := c.checkModeFields(); err != nil {
		return nil, err
	}
	if c.Mode == modeZset {
		if err := w.parseZset(c.Score, c.Member); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// checkModeFields refuses settings that mean nothing in the configured mode.
func (c *config) checkModeFields() error {
	notIn := func(field string) error {
		return &connector.ConfigError{Field: field, Msg: fmt.Sprintf("does not apply to mode %s", c.Mode)}
	}
	switch {
	case c.MaxLen < 0:
		return &connector.ConfigError{Field: "maxlen", Msg: "must not be negative"}
	case c.MaxLen > 0 && c.Mode != modeStream:
		return notIn("maxlen")
	case c.Fields == "object" && c.Mode != modeStream:
		return notIn("fields")
	case c.Fields == "value" && c.ValueField == "":
		return &connector.ConfigError{Field: "value_field", Msg: "must not be empty"}
	case c.Score != "" && c.Mode != modeZset:
		return notIn("score")
	case c.Member != "" && c.Mode != modeZset:
		return notIn("member")
	case c.TTL < 0:
		return &connector.ConfigError{Field: "ttl", Msg: "must not be negative"}
	case c.TTL > 0 && c.TTL < time.Millisecond:
		return &connector.ConfigError{Field: "ttl", Msg: "must be at least 1ms"}
	case c.TTL > 0 && c.Mode == modePublish:
		return &connector.ConfigError{Field: "ttl", Msg: "does not apply to mode publish: a published message is not stored"}
	}
	return nil
}

func (w *writer) parseZset(score, member string) error {
	if score == "" {
		return &connector.ConfigError{Field: "score", Msg: "is required in mode zset", Hint: "name the field holding the score, e.g. score: price"}
	}
	if strings.Contains(score, "{{") {
		t, err := template.ParseField("score", score)
		if err != nil {
			return err
		}
		w.scoreTmpl = t
	} else {
		path := strings.Split(strings.TrimPrefix(score, "value."), ".")
		for _, p := range path {
			if p == "" {
				return &connector.ConfigError{Field: "score", Msg: fmt.Sprintf("%q is not a field path", score)}
			}
		}
		w.score = path
	}
	if member != "" {
		t, err := template.ParseField("member", member)
		if err != nil {
			return err
		}
		w.member = t
	}
	return nil
}

// tlsConfig builds the client TLS configuration; nil when TLS is off. It reads the files, so it
// runs in Open.
func (c *config) tlsConfig() (*tls.Config, error) {
	t := c.TLS
	if !t.Enabled {
		return nil, nil
	}
	out := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		out.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}
