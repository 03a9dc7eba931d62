// Package leasetest provides a fake Kubernetes API server for the Leases of one namespace, to
// test the Kubernetes lease without a cluster.
package leasetest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// FakeAPI serves coordination.k8s.io/v1 Leases of one namespace as far as the lease uses them:
// GET, POST (409 when the Lease exists) and PUT (409 unless the body's resourceVersion is the
// stored one), giving each stored version a new resourceVersion. Every request needs a bearer
// token (401 without); requests whose token is Down are answered 503, as by an API server the
// holder cannot reach. It is safe for concurrent use.
type FakeAPI struct {
	Namespace string

	mu     sync.Mutex
	rv     int
	leases map[string]map[string]any
	down   map[string]bool
}

// NewFakeAPI returns a fake API server for namespace's Leases; serve it with httptest.
func NewFakeAPI(namespace string) *FakeAPI {
	return &FakeAPI{Namespace: namespace, leases: map[string]map[string]any{}, down: map[string]bool{}}
}

// SetDown makes the requests carrying token fail with 503 (down) or be served again.
func (f *FakeAPI) SetDown(token string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[token] = down
}

// Holder returns the holderIdentity of the Lease named name, "" when none.
func (f *FakeAPI) Holder(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	spec, _ := f.leases[name]["spec"].(map[string]any)
	h, _ := spec["holderIdentity"].(string)
	return h
}

// Annotation returns an annotation of the Lease named name, "" when none.
func (f *FakeAPI) Annotation(name, key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	meta, _ := f.leases[name]["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	v, _ := ann[key].(string)
	return v
}

func metadata(o map[string]any) map[string]any {
	m, _ := o["metadata"].(map[string]any)
	if m == nil {
		m = map[string]any{}
		o["metadata"] = m
	}
	return m
}

// ServeHTTP implements the routes.
func (f *FakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		http.Error(w, `{"kind":"Status","reason":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if f.down[tok] {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	prefix := "/apis/coordination.k8s.io/v1/namespaces/" + f.Namespace + "/leases"
	if r.URL.Path != prefix && !strings.HasPrefix(r.URL.Path, prefix+"/") {
		http.NotFound(w, r)
		return
	}
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, prefix), "/")
	var body map[string]any
	if r.Method != http.MethodGet {
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	store := func(n string, o map[string]any) {
		f.rv++
		metadata(o)["resourceVersion"] = strconv.Itoa(f.rv)
		f.leases[n] = o
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && name != "":
		o, ok := f.leases[name]
		if !ok {
			http.Error(w, `{"kind":"Status","reason":"NotFound"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(o)
	case r.Method == http.MethodPost && name == "":
		n, _ := metadata(body)["name"].(string)
		if _, ok := f.leases[n]; ok || n == "" {
			http.Error(w, `{"kind":"Status","reason":"AlreadyExists"}`, http.StatusConflict)
			return
		}
		store(n, body)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(body)
	case r.Method == http.MethodPut && name != "":
		cur, ok := f.leases[name]
		if !ok {
			http.Error(w, `{"kind":"Status","reason":"NotFound"}`, http.StatusNotFound)
			return
		}
		if metadata(body)["resourceVersion"] != metadata(cur)["resourceVersion"] {
			http.Error(w, `{"kind":"Status","reason":"Conflict"}`, http.StatusConflict)
			return
		}
		store(name, body)
		_ = json.NewEncoder(w).Encode(body)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
