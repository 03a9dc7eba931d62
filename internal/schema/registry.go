package schema

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/twmb/franz-go/pkg/sr"
)

// registry is a schema registry client: franz-go's sr speaks the HTTP API; registry classifies its
// errors and caches what it fetches.
type registry struct {
	cfg       registryConfig
	transport *http.Transport
	cl        *sr.Client
	tlsOnce   sync.Once
	tlsErr    error

	// subjects caches the subject/version of ids; refs caches referenced schemas by subject and version.
	mu       sync.Mutex
	subjects map[int]sr.SubjectVersion
	refs     map[refKey]sr.SubjectSchema
}

type refKey struct {
	subject string
	version int
}

// newRegistry builds the client without I/O; open loads the TLS files.
func newRegistry(cfg registryConfig) (*registry, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	opts := []sr.ClientOpt{
		sr.URLs(strings.Split(cfg.URL, ",")...),
		sr.HTTPClient(&http.Client{Timeout: cfg.Timeout, Transport: tr}),
		sr.UserAgent("sluice"),
	}
	if cfg.Username != "" {
		opts = append(opts, sr.BasicAuth(cfg.Username, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, sr.BearerToken(cfg.Token))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, &connector.ConfigError{Field: "registry.url", Msg: err.Error()}
	}
	return &registry{cfg: cfg, transport: tr, cl: cl, subjects: map[int]sr.SubjectVersion{}, refs: map[refKey]sr.SubjectSchema{}}, nil
}

// loadTLS reads the TLS files into the transport; it runs once, on open.
func (r *registry) loadTLS() error {
	t := r.cfg.TLS
	if t.CAFile == "" && t.CertFile == "" && !t.Insecure {
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.Insecure} //nolint:gosec // opt-in, documented as for tests
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return fmt.Errorf("schema registry: tls.ca_file: %w: %w", err, connector.ErrPermanent)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("schema registry: tls.ca_file %s holds no PEM certificate: %w", t.CAFile, connector.ErrPermanent)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("schema registry: tls.cert_file/key_file: %w: %w", err, connector.ErrPermanent)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	r.transport.TLSClientConfig = tc
	return nil
}

// open0 loads the TLS settings, once.
func (r *registry) open0() error {
	r.tlsOnce.Do(func() { r.tlsErr = r.loadTLS() })
	return r.tlsErr
}

// open loads TLS settings and checks that the registry answers (GET /schemas/types).
func (r *registry) open(ctx context.Context) error {
	if err := r.open0(); err != nil {
		return err
	}
	_, err := r.cl.SupportedTypes(ctx)
	if statusOf(err) != http.StatusNotFound {
		return classify("GET /schemas/types", err)
	}
	// An older registry without the endpoint, or a URL that is not a registry API at all
	// (which would make every schema id look unknown): every registry lists its subjects.
	_, err = r.cl.Subjects(ctx)
	if statusOf(err) == http.StatusNotFound {
		return fmt.Errorf("schema registry: %s answers GET /subjects with 404: registry.url is not the base of a schema registry API "+
			"(for Apicurio, end it with /apis/ccompat/v7): %w", r.cfg.URL, connector.ErrPermanent)
	}
	return classify("GET /subjects", err)
}

// classify turns a registry error into ErrUnavailable (unreachable, 5xx, 429, timeouts),
// a permanent error (401/403), or leaves it (other 4xx: the caller decides).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		if errors.Is(err, context.Canceled) {
			return err
		}
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return fmt.Errorf("schema registry: %s: %w (set registry.tls.ca_file to the CA that signs the registry's certificate): %w",
				op, err, connector.ErrPermanent)
		}
		return &unavailableError{op: op, err: err}
	}
	if re.URL != "" {
		op = re.Method + " " + redact(re.URL)
	}
	switch {
	case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusRequestTimeout:
		return &unavailableError{op: op, err: fmt.Errorf("HTTP %d: %s", re.StatusCode, reason(re))}
	case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("schema registry: %s: HTTP %d: %s (check registry.username/password or registry.token): %w",
			op, re.StatusCode, reason(re), connector.ErrPermanent)
	}
	return err
}

// redact hides a password given in a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

// reason is what the registry said about a refused request.
func reason(re *sr.ResponseError) string {
	if re.Message != "" {
		return re.Message
	}
	if len(re.Raw) > 0 {
		return string(re.Raw)
	}
	return http.StatusText(re.StatusCode)
}

func asResponseError(err error, re **sr.ResponseError) bool { return errors.As(err, re) }

// collect fetches the referenced schemas, dependencies first.
func (r *registry) collect(ctx context.Context, refs []sr.SchemaReference) ([]namedSchema, error) {
	var out []namedSchema
	err := r.collectRefs(ctx, refs, map[string]bool{}, &out)
	return out, err
}

func statusOf(err error) int {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// fetched is a schema with the text of its references (by reference name), fetched recursively.
type fetched struct {
	schema sr.Schema
	refs   []namedSchema
}

type namedSchema struct {
	name string
	text string
}

// errUnknownID is returned by schemaByID for an id the registry does not have (HTTP 404).
var errUnknownID = errors.New("unknown schema id: the registry does not know it")

// schemaByID fetches the schema of id and its references.
func (r *registry) schemaByID(ctx context.Context, id int) (fetched, error) {
	s, err := r.cl.SchemaByID(ctx, id)
	if statusOf(err) == http.StatusNotFound {
		return fetched{}, errUnknownID
	}
	if err := classify(fmt.Sprintf("GET /schemas/ids/%d", id), err); err != nil {
		return fetched{}, err
	}
	f := fetched{schema: s}
	seen := map[string]bool{}
	if err := r.collectRefs(ctx, s.References, seen, &f.refs); err != nil {
		return fetched{}, err
	}
	return f, nil
}

// collectRefs appends the referenced schemas, dependencies first.
func (r *registry) collectRefs(ctx context.Context, refs []sr.SchemaReference, seen map[string]bool, out *[]namedSchema) error {
	for _, ref := range refs {
		if seen[ref.Name] {
			continue
		}
		seen[ref.Name] = true
		key := refKey{ref.Subject, ref.Version}
		r.mu.Lock()
		ss, ok := r.refs[key]
		r.mu.Unlock()
		if !ok {
			var err error
			ss, err = r.cl.SchemaByVersion(ctx, ref.Subject, ref.Version)
			op := fmt.Sprintf("GET /subjects/%s/versions/%d", ref.Subject, ref.Version)
			if statusOf(err) == http.StatusNotFound {
				return fmt.Errorf("reference %q: subject %s version %d is not in the registry", ref.Name, ref.Subject, ref.Version)
			}
			if err := classify(op, err); err != nil {
				return err
			}
			r.mu.Lock()
			r.refs[key] = ss
			r.mu.Unlock()
		}
		if err := r.collectRefs(ctx, ss.References, seen, out); err != nil {
			return err
		}
		*out = append(*out, namedSchema{name: ref.Name, text: ss.Schema.Schema})
	}
	return nil
}

// subjectOf returns the subject and version an id is registered under (the first the registry
// lists), cached; a registry without the endpoint gives an empty answer.
func (r *registry) subjectOf(ctx context.Context, id int) (sr.SubjectVersion, error) {
	r.mu.Lock()
	sv, ok := r.subjects[id]
	r.mu.Unlock()
	if ok {
		return sv, nil
	}
	vs, err := r.cl.SchemaVersionsByID(ctx, id)
	switch {
	case statusOf(err) == http.StatusNotFound:
	case err != nil:
		return sr.SubjectVersion{}, classify(fmt.Sprintf("GET /schemas/ids/%d/versions", id), err)
	case len(vs) > 0:
		sv = vs[0]
	}
	r.mu.Lock()
	if len(r.subjects) >= r.cfg.CacheSize {
		for k := range r.subjects {
			delete(r.subjects, k)
			break
		}
	}
	r.subjects[id] = sv
	r.mu.Unlock()
	return sv, nil
}

// schemaType maps a format to the registry's schema type.
func schemaType(format string) sr.SchemaType {
	switch format {
	case FormatProtobuf:
		return sr.TypeProtobuf
	case FormatJSONSchema:
		return sr.TypeJSON
	}
	return sr.TypeAvro
}

// cache holds values by schema id, fetching each once however many goroutines ask at the same
// time. Failures that retrying may fix are not kept.
type cache[V any] struct {
	size  int
	n     atomic.Int64
	items sync.Map // int → *cacheEntry[V]
}

type cacheEntry[V any] struct {
	done chan struct{}
	v    V
	err  error
}

func (c *cache[V]) get(ctx context.Context, id int, fetch func() (V, error)) (V, error) {
	for {
		v, err, retry := c.get1(ctx, id, fetch)
		if !retry {
			return v, err
		}
	}
}

// get1 returns the value of id, fetching it unless another goroutine is; retry is true when that
// goroutine's fetch ended with its own context, which says nothing of ours.
func (c *cache[V]) get1(ctx context.Context, id int, fetch func() (V, error)) (v V, err error, retry bool) {
	e, loaded := c.items.Load(id)
	if !loaded {
		e, loaded = c.items.LoadOrStore(id, &cacheEntry[V]{done: make(chan struct{})})
	}
	ce := e.(*cacheEntry[V])
	if loaded {
		select {
		case <-ce.done:
		default:
			select {
			case <-ce.done:
			case <-ctx.Done():
				return v, ctx.Err(), false
			}
		}
		if isContextErr(ce.err) && ctx.Err() == nil {
			return v, nil, true
		}
		return ce.v, ce.err, false
	}
	if c.n.Add(1) > int64(c.size) {
		c.items.Range(func(k, _ any) bool {
			if k.(int) == id {
				return true
			}
			c.items.Delete(k)
			c.n.Add(-1)
			return false
		})
	}
	ce.v, ce.err = fetch()
	if ce.err != nil && (errors.Is(ce.err, ErrUnavailable) || isContextErr(ce.err)) {
		c.items.Delete(id)
		c.n.Add(-1)
	}
	close(ce.done)
	return ce.v, ce.err, false
}

// isContextErr reports whether err is the end of a caller's context (not a registry timeout).
func isContextErr(err error) bool {
	return !errors.Is(err, ErrUnavailable) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
