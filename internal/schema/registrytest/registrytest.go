// Package registrytest is an in-memory schema registry that speaks the Confluent Schema Registry
// REST API (the subset clients use: schemas by id, subjects and versions, registering and looking
// up schemas, schema types and the global config), served by net/http/httptest. Tests of
// internal/schema and of the engine use it in place of a real registry; it can require
// credentials, refuse incompatible schemas, play dead, and count the requests it serves.
package registrytest

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Reference is a schema reference as the API writes it.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// Schema is a schema as a subject version holds it.
type Schema struct {
	Subject    string      `json:"subject,omitempty"`
	Version    int         `json:"version,omitempty"`
	ID         int         `json:"id,omitempty"`
	Type       string      `json:"schemaType,omitempty"` // "" or "AVRO", "PROTOBUF", "JSON"
	Text       string      `json:"schema"`
	References []Reference `json:"references,omitempty"`
}

// CompatibilityFunc decides whether next may be registered under subject after the versions it
// already has (oldest first); a non-empty reason refuses it with HTTP 409.
type CompatibilityFunc func(subject string, existing []Schema, next Schema) (reason string)

// Registry is the in-memory registry. Its methods are safe for concurrent use.
type Registry struct {
	// URL is the base URL clients use.
	URL    string
	Server *httptest.Server

	mu       sync.Mutex
	byID     map[int]Schema      // text, type and references of each id
	subjects map[string][]Schema // versions of each subject, oldest first
	hits     map[string]int      // "GET /schemas/ids/1" → requests served
	user     string
	pass     string
	token    string
	down     bool
	compat   CompatibilityFunc
	nextID   int
}

// Option configures New.
type Option func(*Registry)

// WithBasicAuth makes the registry require HTTP basic auth.
func WithBasicAuth(user, pass string) Option {
	return func(r *Registry) { r.user, r.pass = user, pass }
}

// WithToken makes the registry require a bearer token.
func WithToken(token string) Option { return func(r *Registry) { r.token = token } }

// WithCompatibility sets the check run when a new version is registered (default: accept all).
func WithCompatibility(f CompatibilityFunc) Option { return func(r *Registry) { r.compat = f } }

// New starts a registry, closed when the test ends.
func New(t testing.TB, opts ...Option) *Registry {
	r := newRegistry(opts)
	r.Server = httptest.NewServer(r)
	r.URL = r.Server.URL
	t.Cleanup(r.Server.Close)
	return r
}

// NewTLS starts a registry served over HTTPS with a self-signed certificate; CAFile writes it out.
func NewTLS(t testing.TB, opts ...Option) *Registry {
	r := newRegistry(opts)
	r.Server = httptest.NewUnstartedServer(r)
	r.Server.Config.ErrorLog = log.New(io.Discard, "", 0) // clients refusing the certificate are expected
	r.Server.StartTLS()
	r.URL = r.Server.URL
	t.Cleanup(r.Server.Close)
	return r
}

func newRegistry(opts []Option) *Registry {
	r := &Registry{byID: map[int]Schema{}, subjects: map[string][]Schema{}, hits: map[string]int{}, nextID: 1}
	for _, o := range opts {
		o(r)
	}
	return r
}

// CAFile writes the certificate of a NewTLS registry to a PEM file in a temporary directory.
func (r *Registry) CAFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Server.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Register adds a schema under subject as POST /subjects/{subject}/versions would (without a
// compatibility check) and returns its id. typ is "AVRO", "PROTOBUF" or "JSON".
func (r *Registry) Register(t testing.TB, subject, typ, text string, refs ...Reference) int {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.register(subject, Schema{Type: normType(typ), Text: text, References: refs}).ID
}

// SetDown makes every request fail with HTTP 503 (down) or be served again.
func (r *Registry) SetDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// Hits returns how many requests were served for "METHOD /path" (e.g. "GET /schemas/ids/1").
func (r *Registry) Hits(request string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[request]
}

// Total returns the number of requests served.
func (r *Registry) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, h := range r.hits {
		n += h
	}
	return n
}

func normType(t string) string {
	if t = strings.ToUpper(t); t == "AVRO" {
		return ""
	}
	return t
}

func sameSchema(a, b Schema) bool {
	if a.Text != b.Text || a.Type != b.Type || len(a.References) != len(b.References) {
		return false
	}
	for i := range a.References {
		if a.References[i] != b.References[i] {
			return false
		}
	}
	return true
}

// register adds s under subject, reusing the id of an identical schema; r.mu is held.
func (r *Registry) register(subject string, s Schema) Schema {
	for _, v := range r.subjects[subject] {
		if sameSchema(v, s) {
			return v
		}
	}
	id := 0
	for i, o := range r.byID {
		if sameSchema(o, s) {
			id = i
		}
	}
	if id == 0 {
		id = r.nextID
		r.nextID++
		r.byID[id] = Schema{Type: s.Type, Text: s.Text, References: s.References}
	}
	s.ID, s.Subject, s.Version = id, subject, len(r.subjects[subject])+1
	r.subjects[subject] = append(r.subjects[subject], s)
	return s
}

type apiError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status, code int, format string, args ...any) {
	reply(w, status, apiError{Code: code, Message: fmt.Sprintf(format, args...)})
}

// ServeHTTP serves the registry API.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits[req.Method+" "+req.URL.EscapedPath()]++
	if r.down {
		fail(w, http.StatusServiceUnavailable, 50300, "registry is down")
		return
	}
	if r.user != "" {
		if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.pass {
			fail(w, http.StatusUnauthorized, 401, "Unauthorized")
			return
		}
	}
	if r.token != "" && req.Header.Get("Authorization") != "Bearer "+r.token {
		fail(w, http.StatusUnauthorized, 401, "Unauthorized")
		return
	}
	parts := strings.Split(strings.Trim(req.URL.EscapedPath(), "/"), "/")
	for i, p := range parts {
		parts[i], _ = url.PathUnescape(p)
	}
	get := req.Method == http.MethodGet
	switch {
	case get && len(parts) == 2 && parts[0] == "schemas" && parts[1] == "types":
		reply(w, 200, []string{"JSON", "PROTOBUF", "AVRO"})
	case get && len(parts) == 1 && parts[0] == "config":
		reply(w, 200, map[string]string{"compatibilityLevel": "BACKWARD"})
	case get && len(parts) >= 3 && parts[0] == "schemas" && parts[1] == "ids":
		r.serveID(w, parts[2], parts[3:])
	case get && len(parts) == 1 && parts[0] == "subjects":
		subjects := []string{}
		for s := range r.subjects {
			subjects = append(subjects, s)
		}
		reply(w, 200, subjects)
	case len(parts) >= 2 && parts[0] == "subjects":
		r.serveSubject(w, req, parts[1], parts[2:])
	default:
		fail(w, http.StatusNotFound, 404, "HTTP 404 Not Found")
	}
}

func (r *Registry) serveID(w http.ResponseWriter, idText string, rest []string) {
	id, _ := strconv.Atoi(idText)
	s, ok := r.byID[id]
	if !ok {
		fail(w, http.StatusNotFound, 40403, "Schema %s not found", idText)
		return
	}
	switch {
	case len(rest) == 0:
		reply(w, 200, s)
	case len(rest) == 1 && rest[0] == "versions":
		type sv struct {
			Subject string `json:"subject"`
			Version int    `json:"version"`
		}
		out := []sv{}
		for subject, vs := range r.subjects {
			for _, v := range vs {
				if v.ID == id {
					out = append(out, sv{subject, v.Version})
				}
			}
		}
		reply(w, 200, out)
	case len(rest) == 1 && rest[0] == "subjects":
		out := []string{}
		for subject, vs := range r.subjects {
			for _, v := range vs {
				if v.ID == id {
					out = append(out, subject)
					break
				}
			}
		}
		reply(w, 200, out)
	default:
		fail(w, http.StatusNotFound, 404, "HTTP 404 Not Found")
	}
}

func (r *Registry) serveSubject(w http.ResponseWriter, req *http.Request, subject string, rest []string) {
	vs := r.subjects[subject]
	switch {
	case req.Method == http.MethodPost && len(rest) == 0: // look up
		s, err := decodeSchema(req)
		if err != nil {
			fail(w, http.StatusUnprocessableEntity, 42201, "Invalid schema: %v", err)
			return
		}
		if len(vs) == 0 {
			fail(w, http.StatusNotFound, 40401, "Subject '%s' not found.", subject)
			return
		}
		for _, v := range vs {
			if sameSchema(v, s) {
				reply(w, 200, v)
				return
			}
		}
		fail(w, http.StatusNotFound, 40403, "Schema not found")
	case req.Method == http.MethodPost && len(rest) == 1 && rest[0] == "versions": // register
		s, err := decodeSchema(req)
		if err != nil {
			fail(w, http.StatusUnprocessableEntity, 42201, "Invalid schema: %v", err)
			return
		}
		for _, v := range vs {
			if sameSchema(v, s) {
				reply(w, 200, map[string]int{"id": v.ID})
				return
			}
		}
		if r.compat != nil {
			if reason := r.compat(subject, append([]Schema(nil), vs...), s); reason != "" {
				fail(w, http.StatusConflict, 409, "Schema being registered is incompatible with an earlier schema for subject \"%s\", details: [%s]", subject, reason)
				return
			}
		}
		reply(w, 200, map[string]int{"id": r.register(subject, s).ID})
	case req.Method == http.MethodGet && len(rest) == 1 && rest[0] == "versions":
		if len(vs) == 0 {
			fail(w, http.StatusNotFound, 40401, "Subject '%s' not found.", subject)
			return
		}
		out := []int{}
		for _, v := range vs {
			out = append(out, v.Version)
		}
		reply(w, 200, out)
	case req.Method == http.MethodGet && len(rest) >= 2 && rest[0] == "versions":
		if len(vs) == 0 {
			fail(w, http.StatusNotFound, 40401, "Subject '%s' not found.", subject)
			return
		}
		n := len(vs)
		if rest[1] != "latest" && rest[1] != "-1" {
			var err error
			if n, err = strconv.Atoi(rest[1]); err != nil || n < 1 || n > len(vs) {
				fail(w, http.StatusNotFound, 40402, "Version %s not found.", rest[1])
				return
			}
		}
		v := vs[n-1]
		if len(rest) == 3 && rest[2] == "schema" {
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			_, _ = w.Write([]byte(v.Text))
			return
		}
		reply(w, 200, v)
	default:
		fail(w, http.StatusNotFound, 404, "HTTP 404 Not Found")
	}
}

func decodeSchema(req *http.Request) (Schema, error) {
	var s Schema
	if err := json.NewDecoder(req.Body).Decode(&s); err != nil {
		return Schema{}, err
	}
	if strings.TrimSpace(s.Text) == "" {
		return Schema{}, fmt.Errorf("empty schema")
	}
	s.Type = normType(s.Type)
	s.ID, s.Version, s.Subject = 0, 0, ""
	return s, nil
}
