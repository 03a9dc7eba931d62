package lease

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Paths of the in-cluster service account files.
const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// PositionsAnnotation holds, on the Lease object, the positions of the pipeline that holds it
	// (JSON).
	PositionsAnnotation = "sluice.dev/positions"
)

// KubernetesConfig says which Lease object (coordination.k8s.io/v1) is the lease and how to
// reach the API server. Zero fields take the in-cluster values (InCluster).
type KubernetesConfig struct {
	// Server is the API server's base URL; default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
	Server string
	// Namespace of the Lease; default the service account's namespace.
	Namespace string
	// Name of the Lease object. Required.
	Name string
	// Identity is this holder's identity; default the host name and the process id.
	Identity string
	// Duration is the lease's leaseDurationSeconds: a holder that has not renewed it for this
	// long is taken over. Default 15s.
	Duration time.Duration
	// Retry is how often a standby looks at the lease and the holder renews it; default 1s.
	Retry time.Duration
	// TokenFile holds the bearer token, read again for every request (it is rotated); default
	// the service account's token. Token, when set, is used instead.
	TokenFile string
	// CAFile holds the PEM certificates the API server's certificate must chain to; default the
	// service account's ca.crt. Client, when set, is used instead.
	CAFile string
	// Token returns the bearer token of each request.
	Token func() (string, error)
	// Client sends the requests.
	Client *http.Client
}

// Kubernetes takes a lease held as a Kubernetes Lease object, over the API server's REST API.
// The positions are kept in an annotation of the Lease, written with its resourceVersion, so a
// holder that was taken over cannot overwrite them. Safe for concurrent use.
type Kubernetes struct {
	cfg KubernetesConfig
}

// NewKubernetes returns the lease of cfg, filling in-cluster defaults. It reads the service
// account's namespace and CA files when it needs them, and fails when not in a cluster and cfg
// does not say where the API server is.
func NewKubernetes(cfg KubernetesConfig) (*Kubernetes, error) {
	if cfg.Name == "" {
		return nil, errors.New("lease: a Kubernetes lease needs a name")
	}
	if cfg.Server == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("lease: not in a Kubernetes cluster (KUBERNETES_SERVICE_HOST is not set)")
		}
		cfg.Server = "https://" + net.JoinHostPort(host, port)
	}
	if cfg.Namespace == "" {
		b, err := os.ReadFile(serviceAccountDir + "/namespace")
		if err != nil {
			return nil, fmt.Errorf("lease: the Lease's namespace: set it, or run with a service account: %w", err)
		}
		cfg.Namespace = strings.TrimSpace(string(b))
	}
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		cfg.Identity = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 15 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Token == nil {
		file := cfg.TokenFile
		if file == "" {
			file = serviceAccountDir + "/token"
		}
		cfg.Token = func() (string, error) {
			b, err := os.ReadFile(file)
			return strings.TrimSpace(string(b)), err
		}
	}
	if cfg.Client == nil {
		file := cfg.CAFile
		if file == "" {
			file = serviceAccountDir + "/ca.crt"
		}
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("lease: the API server's CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("lease: %s holds no PEM certificate", file)
		}
		cfg.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	return &Kubernetes{cfg: cfg}, nil
}

// Name returns the Lease object's name.
func (k *Kubernetes) Name() string { return k.cfg.Name }

// leaseObject is the part of a coordination.k8s.io/v1 Lease the lease reads and writes.
type leaseObject struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       leaseSpec      `json:"spec"`
}

type leaseSpec struct {
	HolderIdentity       *string `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32  `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *string `json:"acquireTime,omitempty"`
	RenewTime            *string `json:"renewTime,omitempty"`
	LeaseTransitions     *int32  `json:"leaseTransitions,omitempty"`
}

const microTime = "2006-01-02T15:04:05.000000Z07:00"

func (o *leaseObject) resourceVersion() string {
	rv, _ := o.Metadata["resourceVersion"].(string)
	return rv
}

func (o *leaseObject) holder() string {
	if o.Spec.HolderIdentity == nil {
		return ""
	}
	return *o.Spec.HolderIdentity
}

func (o *leaseObject) duration() time.Duration {
	if o.Spec.LeaseDurationSeconds == nil {
		return 0
	}
	return time.Duration(*o.Spec.LeaseDurationSeconds) * time.Second
}

// positions decodes the positions annotation.
func (o *leaseObject) positions() ([]connector.Position, error) {
	ann, _ := o.Metadata["annotations"].(map[string]any)
	s, _ := ann[PositionsAnnotation].(string)
	if s == "" {
		return nil, nil
	}
	var ps []connector.Position
	if err := json.Unmarshal([]byte(s), &ps); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", PositionsAnnotation, err)
	}
	return ps, nil
}

// setPositions merges ps into the positions annotation (one per partition).
func (o *leaseObject) setPositions(ps []connector.Position) error {
	old, err := o.positions()
	if err != nil {
		return err
	}
	byPart := map[string]connector.Position{}
	for _, p := range append(old, ps...) {
		byPart[p.Partition] = p
	}
	merged := make([]connector.Position, 0, len(byPart))
	for _, p := range byPart {
		merged = append(merged, p)
	}
	sort.Slice(merged, func(i, j int) bool { return merged[i].Partition < merged[j].Partition })
	b, err := json.Marshal(merged)
	if err != nil {
		return err
	}
	ann, _ := o.Metadata["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		o.Metadata["annotations"] = ann
	}
	ann[PositionsAnnotation] = string(b)
	return nil
}

// errConflict is the API server's 409: the object changed since it was read.
var errConflict = errors.New("conflict: the Lease changed since it was read")

// errNotFound is the API server's 404.
var errNotFound = errors.New("the Lease does not exist")

func (k *Kubernetes) path(name string) string {
	p := k.cfg.Server + "/apis/coordination.k8s.io/v1/namespaces/" + k.cfg.Namespace + "/leases"
	if name != "" {
		p += "/" + name
	}
	return p
}

// do sends one request and decodes the Lease it answers.
func (k *Kubernetes) do(ctx context.Context, method, url string, body *leaseObject) (*leaseObject, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, max(5*time.Second, 3*k.cfg.Retry))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	tok, err := k.cfg.Token()
	if err != nil {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := k.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case resp.StatusCode == http.StatusConflict:
		return nil, errConflict
	case resp.StatusCode == http.StatusNotFound:
		return nil, errNotFound
	case resp.StatusCode/100 != 2:
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	var o leaseObject
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("%s %s: the answer is not a Lease: %w", method, url, err)
	}
	if o.Metadata == nil {
		o.Metadata = map[string]any{}
	}
	return &o, nil
}

// claim fills o's spec for this holder, now.
func (k *Kubernetes) claim(o *leaseObject, transition bool) {
	now := time.Now().Format(microTime)
	id, secs := k.cfg.Identity, int32(k.cfg.Duration/time.Second)
	o.Spec.HolderIdentity, o.Spec.LeaseDurationSeconds, o.Spec.RenewTime = &id, &secs, &now
	if transition {
		o.Spec.AcquireTime = &now
		n := int32(1)
		if o.Spec.LeaseTransitions != nil {
			n = *o.Spec.LeaseTransitions + 1
		}
		o.Spec.LeaseTransitions = &n
	}
}

// Acquire returns once this process holds the Lease. A Lease held by another identity is taken
// once it has not changed (no renewal) for its leaseDurationSeconds, as this process observes
// it: the holders' clocks are never compared. waiting, when not nil, is called after every try
// that did not take the lease.
func (k *Kubernetes) Acquire(ctx context.Context, waiting func(Wait)) (*KubernetesHeld, error) {
	var seenRV string
	var seenAt time.Time
	for {
		h, err := k.try(ctx, &seenRV, &seenAt)
		if err == nil && h != nil {
			return h, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if waiting != nil {
			if errors.Is(err, errConflict) {
				err = nil // another replica was faster: an ordinary wait
			}
			waiting(Wait{Err: err})
		}
		t := time.NewTimer(k.cfg.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (k *Kubernetes) try(ctx context.Context, seenRV *string, seenAt *time.Time) (*KubernetesHeld, error) {
	cur, err := k.do(ctx, http.MethodGet, k.path(k.cfg.Name), nil)
	if errors.Is(err, errNotFound) {
		o := &leaseObject{APIVersion: "coordination.k8s.io/v1", Kind: "Lease",
			Metadata: map[string]any{"name": k.cfg.Name, "namespace": k.cfg.Namespace}}
		k.claim(o, true)
		created, err := k.do(ctx, http.MethodPost, k.path(""), o)
		if err != nil {
			return nil, fmt.Errorf("lease %q: create: %w", k.cfg.Name, err)
		}
		return newKubernetesHeld(k, created), nil
	}
	if err != nil {
		return nil, fmt.Errorf("lease %q: %w", k.cfg.Name, err)
	}
	if rv := cur.resourceVersion(); rv != *seenRV {
		*seenRV, *seenAt = rv, time.Now()
	}
	free := cur.holder() == "" || cur.holder() == k.cfg.Identity || time.Since(*seenAt) > max(cur.duration(), k.cfg.Retry)
	if !free {
		return nil, nil
	}
	k.claim(cur, cur.holder() != k.cfg.Identity)
	taken, err := k.do(ctx, http.MethodPut, k.path(k.cfg.Name), cur)
	if err != nil {
		return nil, fmt.Errorf("lease %q: take: %w", k.cfg.Name, err)
	}
	return newKubernetesHeld(k, taken), nil
}

// KubernetesHeld is a Lease object this process holds. Its methods are safe for concurrent use.
type KubernetesHeld struct {
	k *Kubernetes

	mu        sync.Mutex // serialises the writes; guards obj and renewed
	obj       *leaseObject
	renewed   time.Time
	loss      // Lost, Err
	stop      chan struct{}
	stopOnce  sync.Once
	renewDone chan struct{}
}

func newKubernetesHeld(k *Kubernetes, obj *leaseObject) *KubernetesHeld {
	h := &KubernetesHeld{k: k, obj: obj, renewed: time.Now(), loss: newLoss(), stop: make(chan struct{}), renewDone: make(chan struct{})}
	go h.renew()
	return h
}

// markLost records the loss; h.mu is held.
func (h *KubernetesHeld) markLost(err error) { h.loss.markLost(h.k.cfg.Name, err, nil) }

// update writes obj (as changed by change) with the resourceVersion last seen; a conflict
// means another holder wrote the Lease: the lease is lost. h.mu is held.
func (h *KubernetesHeld) update(ctx context.Context, change func(o *leaseObject) error) error {
	if err := h.Err(); err != nil {
		return err
	}
	o := *h.obj
	o.Metadata = copyMap(h.obj.Metadata)
	if err := change(&o); err != nil {
		return err
	}
	h.k.claim(&o, false)
	got, err := h.k.do(ctx, http.MethodPut, h.k.path(h.k.cfg.Name), &o)
	switch {
	case err == nil:
		if got.holder() != h.k.cfg.Identity {
			h.markLost(errors.New("the Lease names another holder"))
			return h.lostErr
		}
		h.obj, h.renewed = got, time.Now()
		return nil
	case errors.Is(err, errConflict), errors.Is(err, errNotFound):
		h.markLost(err)
		return h.lostErr
	}
	// Unanswered: the lease is still ours until the renew deadline passes.
	if time.Since(h.renewed) >= h.renewDeadline() {
		h.markLost(fmt.Errorf("not renewed for %s: %w", time.Since(h.renewed).Round(time.Millisecond), err))
		return h.lostErr
	}
	return err
}

// renewDeadline is how long the holder keeps the lease without a successful renewal: two thirds
// of its duration, so that it stops before a standby may take over.
func (h *KubernetesHeld) renewDeadline() time.Duration { return h.k.cfg.Duration * 2 / 3 }

func (h *KubernetesHeld) renew() {
	defer close(h.renewDone)
	t := time.NewTicker(h.k.cfg.Retry)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.lost:
			return
		case <-t.C:
		}
		h.mu.Lock()
		_ = h.update(context.Background(), func(*leaseObject) error { return nil })
		h.mu.Unlock()
	}
}

// Load returns the positions kept on the Lease; found is false when there are none.
func (h *KubernetesHeld) Load(context.Context) ([]connector.Position, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ps, err := h.obj.positions()
	if err != nil {
		return nil, false, fmt.Errorf("lease %q: %w", h.k.cfg.Name, err)
	}
	return ps, len(ps) > 0, nil
}

// Save merges ps into the positions kept on the Lease, in a write conditioned on the Lease's
// resourceVersion: after another holder took the Lease it fails with ErrLost.
func (h *KubernetesHeld) Save(ctx context.Context, ps []connector.Position) error {
	if len(ps) == 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.update(ctx, func(o *leaseObject) error { return o.setPositions(ps) })
}

// Release stops renewing and clears the holder, so a standby takes the Lease at its next try.
// It is idempotent.
func (h *KubernetesHeld) Release() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.renewDone
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Err() == nil {
		o := *h.obj
		o.Metadata = copyMap(h.obj.Metadata)
		empty := ""
		o.Spec.HolderIdentity = &empty
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = h.k.do(ctx, http.MethodPut, h.k.path(h.k.cfg.Name), &o)
		cancel()
	}
	h.markLost(errors.New("released"))
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = copyMap(sub)
		}
		out[k] = v
	}
	return out
}
