package pulsar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// topicName is a parsed topic name: domain://tenant/namespace/local.
type topicName struct {
	domain, tenant, namespace, local string
}

// splitTopic parses a topic name as Pulsar does: `local` is in public/default, `tenant/ns/local`
// and `persistent://tenant/ns/local` name it fully.
func splitTopic(t string) (topicName, error) {
	n := topicName{domain: "persistent"}
	rest := t
	if i := strings.Index(rest, "://"); i >= 0 {
		n.domain, rest = rest[:i], rest[i+3:]
		if n.domain != "persistent" && n.domain != "non-persistent" {
			return n, fmt.Errorf("%q: domain %q, want persistent:// or non-persistent://", t, n.domain)
		}
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1 && !strings.Contains(t, "://"):
		n.tenant, n.namespace, n.local = "public", "default", parts[0]
	case len(parts) == 3:
		n.tenant, n.namespace, n.local = parts[0], parts[1], parts[2]
	default:
		return n, fmt.Errorf("%q is not a topic name (topic, tenant/namespace/topic or persistent://tenant/namespace/topic)", t)
	}
	if n.tenant == "" || n.namespace == "" || n.local == "" {
		return n, fmt.Errorf("%q has an empty tenant, namespace or topic", t)
	}
	return n, nil
}

func (n topicName) String() string {
	return n.domain + "://" + n.tenant + "/" + n.namespace + "/" + n.local
}

// path is the topic's path under /admin/v2.
func (n topicName) path() string {
	return n.domain + "/" + url.PathEscape(n.tenant) + "/" + url.PathEscape(n.namespace) + "/" + url.PathEscape(n.local)
}

// base is the name of the topic a partition belongs to (the name itself when not a partition).
func base(topic string) string {
	if i := strings.LastIndex(topic, "-partition-"); i > 0 {
		if rest := topic[i+len("-partition-"):]; rest != "" && strings.Trim(rest, "0123456789") == "" {
			return topic[:i]
		}
	}
	return topic
}

// admin is a small client of the admin REST API: the topic stats that hold a subscription's
// backlog, and the topic list of a namespace.
type admin struct {
	base string
	conn connConfig

	once sync.Once
	hc   *http.Client
	err  error
}

func newAdmin(raw string, conn connConfig) (*admin, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &connector.ConfigError{Field: "admin_url", Msg: fmt.Sprintf("%q is not an http:// or https:// URL", raw),
			Hint: "the web service address of the cluster, e.g. http://localhost:8080"}
	}
	return &admin{base: strings.TrimRight(u.String(), "/"), conn: conn}, nil
}

// client builds the HTTP client on first use (it reads the TLS files).
func (a *admin) client() (*http.Client, error) {
	a.once.Do(func() {
		t := a.conn.TLS
		cfg := &tls.Config{InsecureSkipVerify: t.AllowInsecure} //nolint:gosec // the user's explicit choice, for tests
		if t.TrustCertsFile != "" {
			pem, err := os.ReadFile(t.TrustCertsFile)
			if err != nil {
				a.err = fmt.Errorf("tls.trust_certs_file: %w", err)
				return
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				a.err = fmt.Errorf("tls.trust_certs_file: %s holds no PEM certificate", t.TrustCertsFile)
				return
			}
			cfg.RootCAs = pool
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				a.err = fmt.Errorf("tls.cert_file: %w", err)
				return
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		a.hc = &http.Client{Transport: tr}
	})
	return a.hc, a.err
}

func (a *admin) get(ctx context.Context, path string, out any) (int, error) {
	hc, err := a.client()
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/admin/v2/"+path, nil)
	if err != nil {
		return 0, err
	}
	token := a.conn.Token
	if a.conn.TokenFile != "" {
		b, err := os.ReadFile(a.conn.TokenFile)
		if err != nil {
			return 0, fmt.Errorf("token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	return resp.StatusCode, json.Unmarshal(body, out)
}

// subStats is the part of a topic's stats the backlog needs.
type subStats struct {
	MsgBacklog  int64 `json:"msgBacklog"`
	BacklogSize int64 `json:"backlogSize"`
}

type topicStats struct {
	Subscriptions map[string]subStats   `json:"subscriptions"`
	Partitions    map[string]topicStats `json:"partitions"`
}

const statsQuery = "?perPartition=true&subscriptionBacklogSize=true&getPreciseBacklog=false"

// backlog returns the backlog of sub in every partition of topic.
func (a *admin) backlog(ctx context.Context, topic topicName, sub string) ([]connector.Backlog, error) {
	var st topicStats
	code, err := a.get(ctx, topic.path()+"/partitioned-stats"+statsQuery, &st)
	if code == http.StatusNotFound { // not a partitioned topic
		st = topicStats{}
		var one topicStats
		if _, err = a.get(ctx, topic.path()+"/stats"+statsQuery, &one); err == nil {
			st.Partitions = map[string]topicStats{topic.String(): one}
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]connector.Backlog, 0, len(st.Partitions))
	for name, ps := range st.Partitions {
		b := connector.Backlog{Partition: name, Records: -1, Bytes: -1}
		if s, ok := ps.Subscriptions[sub]; ok {
			b.Records, b.Bytes = s.MsgBacklog, s.BacklogSize
		}
		out = append(out, b)
	}
	return out, nil
}

// matching lists the topics of pattern's namespace whose name matches it.
func (a *admin) matching(ctx context.Context, pattern string) ([]topicName, error) {
	n, err := splitTopic(pattern)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(n.tenant + "/" + n.namespace + "/" + n.local)
	if err != nil {
		return nil, err
	}
	var all []string
	if _, err := a.get(ctx, n.domain+"/"+url.PathEscape(n.tenant)+"/"+url.PathEscape(n.namespace), &all); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []topicName
	for _, t := range all {
		b := base(t)
		if seen[b] || !re.MatchString(b) {
			continue
		}
		seen[b] = true
		if tn, err := splitTopic(b); err == nil {
			out = append(out, tn)
		}
	}
	return out, nil
}

// Backlog reports, per partition, the messages of the subscription not acknowledged yet (and
// their bytes), from the admin API's topic stats. Since messages are acknowledged right after
// their positions are checkpointed, this is what lies after the checkpoint, records in flight
// included; after is not needed. Without admin_url it reports nothing.
func (s *Source) Backlog(ctx context.Context, _ []connector.Position) ([]connector.Backlog, error) {
	if s.admin == nil {
		return nil, nil
	}
	var topics []topicName
	if s.pattern != "" {
		var err error
		if topics, err = s.admin.matching(ctx, s.pattern); err != nil {
			return nil, fmt.Errorf("pulsar source: backlog: %w", err)
		}
	} else {
		for _, t := range s.topics {
			tn, _ := splitTopic(t) // checked by NewSource
			topics = append(topics, tn)
		}
	}
	var out []connector.Backlog
	for _, t := range topics {
		b, err := s.admin.backlog(ctx, t, s.sub)
		if err != nil {
			return nil, fmt.Errorf("pulsar source: backlog of %s: %w", t, err)
		}
		out = append(out, b...)
	}
	return out, nil
}
