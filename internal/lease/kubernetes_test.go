package lease_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/lease"
	"github.com/sluicehq/sluice/internal/lease/leasetest"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func newFakeAPI(t *testing.T) (*leasetest.FakeAPI, *httptest.Server) {
	f := leasetest.NewFakeAPI("ops")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func newK8s(t *testing.T, srv *httptest.Server, identity string) *lease.Kubernetes {
	t.Helper()
	k, err := lease.NewKubernetes(lease.KubernetesConfig{Server: srv.URL, Namespace: "ops", Name: "poller", Identity: identity,
		Duration: time.Second, Retry: 50 * time.Millisecond, Token: func() (string, error) { return "token-" + identity, nil }, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func acquireK8s(t *testing.T, k *lease.Kubernetes) *lease.KubernetesHeld {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := k.Acquire(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Release)
	return h
}

// One holder at a time; Release hands the Lease over with the positions.
func TestKubernetesLeaseHandsOver(t *testing.T) {
	f, srv := newFakeAPI(t)
	a := acquireK8s(t, newK8s(t, srv, "a"))
	if f.Holder("poller") != "a" {
		t.Fatalf("holder = %q", f.Holder("poller"))
	}
	ctx := context.Background()
	if err := a.Save(ctx, []connector.Position{{Partition: "p", Offset: 3, Cursor: []byte(`{"s":"3"}`)}}); err != nil {
		t.Fatal(err)
	}
	var waits atomic.Int32
	got := make(chan *lease.KubernetesHeld, 1)
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		h, _ := newK8s(t, srv, "b").Acquire(bctx, func(w lease.Wait) {
			if w.Err != nil {
				t.Errorf("waiting reported %v", w.Err)
			}
			waits.Add(1)
		})
		got <- h
	}()
	for deadline := time.Now().Add(30 * time.Second); waits.Load() < 30; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("b never waited")
		}
	}
	// a renews all along (30 tries of b span more than the lease's duration), so b waits.
	select {
	case <-got:
		t.Fatal("b took a Lease a renews")
	default:
	}
	a.Release()
	var b *lease.KubernetesHeld
	select {
	case b = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("b did not take the released Lease")
	}
	defer b.Release()
	ps, found, err := b.Load(ctx)
	want := []connector.Position{{Partition: "p", Offset: 3, Cursor: []byte(`{"s":"3"}`)}}
	if err != nil || !found || !reflect.DeepEqual(ps, want) {
		t.Fatalf("b loaded %v, %v, %v", ps, found, err)
	}
	if f.Holder("poller") != "b" {
		t.Fatalf("holder = %q", f.Holder("poller"))
	}
}

// A holder that cannot renew gives the lease up before its duration passes; a standby takes it
// once it has seen no renewal for the duration; the old holder's writes are then refused by
// resourceVersion and the new holder's positions stay.
func TestKubernetesLeaseExpiresAndFences(t *testing.T) {
	f, srv := newFakeAPI(t)
	ctx := context.Background()
	a := acquireK8s(t, newK8s(t, srv, "a"))
	if err := a.Save(ctx, []connector.Position{{Offset: 10}}); err != nil {
		t.Fatal(err)
	}
	f.SetDown("token-a", true) // a is cut off from the API server
	b := acquireK8s(t, newK8s(t, srv, "b"))
	select { // a gave up after two thirds of the duration without renewal; b waited a whole one
	case <-a.Lost():
	case <-time.After(30 * time.Second):
		t.Fatal("a never noticed it could not renew")
	}
	if ps, _, _ := b.Load(ctx); len(ps) != 1 || ps[0].Offset != 10 {
		t.Fatalf("b loaded %v", ps)
	}
	if err := b.Save(ctx, []connector.Position{{Offset: 20}}); err != nil {
		t.Fatal(err)
	}
	f.SetDown("token-a", false)
	if err := a.Save(ctx, []connector.Position{{Offset: 11}}); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("a's Save after the takeover = %v, want ErrLost", err)
	}
	if f.Holder("poller") != "b" {
		t.Fatalf("holder = %q", f.Holder("poller"))
	}
	if ps, _, _ := b.Load(ctx); len(ps) != 1 || ps[0].Offset != 20 {
		t.Fatalf("positions = %v, want b's", ps)
	}
}

// A stale write (one that read the Lease before another holder wrote it) is refused even when
// the holder has not noticed anything yet.
func TestKubernetesStaleWriteIsRefused(t *testing.T) {
	f, srv := newFakeAPI(t)
	k := newK8s(t, srv, "a")
	a := acquireK8s(t, k)
	// Another writer changes the Lease behind a's back.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/apis/coordination.k8s.io/v1/namespaces/ops/leases/poller", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var o map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&o)
	resp.Body.Close()
	o["spec"].(map[string]any)["holderIdentity"] = "intruder"
	b, _ := json.Marshal(o)
	req, _ = http.NewRequest(http.MethodPut, srv.URL+"/apis/coordination.k8s.io/v1/namespaces/ops/leases/poller", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer x")
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("intruder's PUT: %v %v", resp, err)
	}
	if err := a.Save(context.Background(), []connector.Position{{Offset: 1}}); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Save = %v, want ErrLost", err)
	}
	if f.Holder("poller") != "intruder" {
		t.Fatal("a overwrote the Lease")
	}
}

func TestKubernetesOutsideAClusterIsAnError(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := lease.NewKubernetes(lease.KubernetesConfig{Name: "x"}); err == nil || !strings.Contains(err.Error(), "not in a Kubernetes cluster") {
		t.Fatalf("err = %v", err)
	}
}
