package main_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/lease"
	"github.com/sluicehq/sluice/internal/lease/leasetest"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// pollLog is the test API's record of the requests it served: which replica asked (the
// X-Replica header each process sends), with which cursor.
type pollLog struct {
	mu   sync.Mutex
	reqs []pollReq
}

type pollReq struct {
	replica, since string
}

func (l *pollLog) add(r pollReq) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r)
}

// of returns the requests of replica, in order.
func (l *pollLog) of(replica string) []pollReq {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []pollReq
	for _, r := range l.reqs {
		if r.replica == replica {
			out = append(out, r)
		}
	}
	return out
}

// countSince counts replica's requests that carried the cursor since.
func (l *pollLog) countSince(replica, since string) int {
	n := 0
	for _, r := range l.of(replica) {
		if r.since == since {
			n++
		}
	}
	return n
}

// sinkIDs reads the ids of the records a file sink wrote.
func sinkIDs(t *testing.T, path string) []int {
	t.Helper()
	var ids []int
	for _, ln := range lines(t, path) {
		var rec struct{ ID int }
		if err := json.Unmarshal([]byte(ln), &rec); err != nil {
			continue // a line being written
		}
		ids = append(ids, rec.ID)
	}
	return ids
}

// leasedCursor returns the cursor value ("since") the positions saved under the lease carry,
// "" when none are saved yet. It reads the http source's position format: a JSON page state
// whose "s" is the cycle's cursor and "m" the largest cursor field seen.
func leasedCursor(t *testing.T, dsn, leaseName string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var cur []byte
	err = c.QueryRow(ctx, "SELECT cursor FROM sluice_lease_positions WHERE lease = $1", leaseName).Scan(&cur)
	if err != nil {
		return ""
	}
	return httpCursor(t, cur)
}

// httpCursor reads the http source's position format: a JSON page state whose "s" is the
// cycle's cursor and "m" the largest cursor field seen.
func httpCursor(t *testing.T, cur []byte) string {
	var st struct {
		S string          `json:"s"`
		M json.RawMessage `json:"m"`
	}
	if json.Unmarshal(cur, &st) != nil {
		t.Fatalf("position %q is not the http source's", cur)
	}
	if len(st.M) > 0 {
		return string(st.M)
	}
	return st.S
}

// leaseRig is an HTTP API serving records 1..avail with a cursor (since), and a leased manifest
// polling it every 100 ms into a file sink per replica; each request names its replica.
type leaseRig struct {
	dsn, leaseName, dir, manifest string
	avail                         atomic.Int64
	log                           *pollLog
	env                           []string           // of every replica
	fake                          *leasetest.FakeAPI // the Kubernetes API, for a kubernetes lease
}

type replica struct {
	name, out, admin string
	r                *running
}

// newLeaseRig makes a rig whose manifest takes the lease in Postgres.
func newLeaseRig(t *testing.T, prefix string) *leaseRig {
	rig := baseLeaseRig(t, prefix)
	rig.dsn = testenv.Require(t, "PG_DSN")
	rig.env = []string{"LEASE_DSN=" + rig.dsn}
	rig.writeManifest(t, `    postgres: {dsn: "${env:LEASE_DSN}"}`)
	return rig
}

// newKubernetesLeaseRig makes a rig whose manifest takes a Lease object of a fake Kubernetes API
// server over TLS; each replica has its own token.
func newKubernetesLeaseRig(t *testing.T, prefix string) *leaseRig {
	rig := baseLeaseRig(t, prefix)
	rig.fake = leasetest.NewFakeAPI("ops")
	srv := httptest.NewTLSServer(rig.fake)
	t.Cleanup(srv.Close)
	writeFile(t, filepath.Join(rig.dir, "ca.crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	rig.writeManifest(t, fmt.Sprintf(`    kubernetes: {namespace: ops, server: %q, token_file: "${env:TOKEN_FILE}", ca_file: ca.crt, duration: 2s}`, srv.URL))
	return rig
}

func baseLeaseRig(t *testing.T, prefix string) *leaseRig {
	rig := &leaseRig{leaseName: fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()), dir: t.TempDir(), log: &pollLog{}}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		since := r.URL.Query().Get("since")
		rig.log.add(pollReq{replica: r.Header.Get("X-Replica"), since: since})
		from, _ := strconv.Atoi(since)
		var recs []map[string]any
		for id := from + 1; id <= int(rig.avail.Load()) && len(recs) < 10; id++ {
			recs = append(recs, map[string]any{"id": id, "payload": strings.Repeat("x", 20)})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": recs})
	}))
	t.Cleanup(api.Close)
	rig.manifest = api.URL
	return rig
}

// writeManifest writes the manifest with the lease's store (lines under lease:).
func (rig *leaseRig) writeManifest(t *testing.T, store string) {
	rig.manifest = writeFile(t, filepath.Join(rig.dir, "poller.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: poller}
spec:
  source:
    type: http
    config:
      url: %s/items
      records: $.data[*]
      headers: {X-Replica: "${env:REPLICA}"}
      cursor: {field: $.id, param: since}
      interval: 100ms
  sinks:
    - name: out
      type: file
      config: {path: "${env:OUT}"}
  lease:
%s
    name: %s
    retry: 200ms
`, rig.manifest, store, rig.leaseName))
}

// start runs `sluice run` as replica name, with its own data directory, sink file and token.
func (rig *leaseRig) start(t *testing.T, name string) *replica {
	rp := &replica{name: name, out: filepath.Join(rig.dir, name+".jsonl"), admin: freeAddr(t)}
	token := writeFile(t, filepath.Join(rig.dir, "token-"+name), "token-"+name+"\n")
	rp.r = startSluice(t, append([]string{"REPLICA=" + name, "OUT=" + rp.out, "TOKEN_FILE=" + token}, rig.env...),
		"run", "--data-dir", filepath.Join(rig.dir, "data-"+name), "--admin-addr", rp.admin, "--log-level", "info", rig.manifest)
	return rp
}

// cursor returns the cursor the positions saved under the lease carry, "" when none.
func (rig *leaseRig) cursor(t *testing.T) string {
	if rig.fake == nil {
		return leasedCursor(t, rig.dsn, rig.leaseName)
	}
	ann := rig.fake.Annotation(rig.leaseName, lease.PositionsAnnotation)
	if ann == "" {
		return ""
	}
	var ps []connector.Position
	if err := json.Unmarshal([]byte(ann), &ps); err != nil || len(ps) != 1 {
		t.Fatalf("positions annotation %q: %v", ann, err)
	}
	return httpCursor(t, ps[0].Cursor)
}

func (rp *replica) info(t *testing.T) pipelineInfo {
	p, _ := infoOf(t, "http://"+rp.admin, "", "poller")
	return p
}

// TestLeaseMovesOnKill9Integration runs two `sluice run` processes, with their own data
// directories, on the same leased manifest polling an HTTP API with a cursor: only the holder
// polls, the other stands by (ready); after kill -9 of the holder the other takes the lease and
// polls on from the cursor the dead one committed, not from the beginning; every record reaches
// one of the two sinks. A SIGTERM of the new holder hands the lease back to a restarted first
// process, which resumes from the cursor the second committed.
func TestLeaseMovesOnKill9Integration(t *testing.T) {
	leaseMovesOnKill9(t, newLeaseRig(t, "kill9"))
}

// TestKubernetesLeaseMovesOnKill9 is TestLeaseMovesOnKill9Integration with a Kubernetes Lease
// (duration 2s) served by a fake API server over TLS, reached with a token file and a CA file
// as from outside a cluster.
func TestKubernetesLeaseMovesOnKill9(t *testing.T) {
	rig := newKubernetesLeaseRig(t, "kill9")
	leaseMovesOnKill9(t, rig)
	if h := rig.fake.Holder(rig.leaseName); h != "" {
		t.Fatalf("after both replicas stopped, the Lease names holder %q; a graceful stop clears it", h)
	}
}

func leaseMovesOnKill9(t *testing.T, rig *leaseRig) {
	rig.avail.Store(25)
	dir, log, avail := rig.dir, rig.log, &rig.avail
	start := func(name string) *replica { return rig.start(t, name) }
	info := func(rp *replica) pipelineInfo { return rp.info(t) }

	a := start("a")
	a.r.waitFor(t, "replica a to run and poll", func() bool { return info(a).State == "running" && len(log.of("a")) > 0 })
	b := start("b")
	b.r.waitFor(t, "replica b to stand by", func() bool {
		p := info(b)
		return p.State == "starting" && strings.Contains(p.Reason, "standby")
	})
	if p := info(b); !p.Ready {
		t.Fatalf("a standby replica reports not ready: %+v", p)
	}
	if code, body := get(t, "http://"+b.admin+"/readyz"); code != 200 {
		t.Fatalf("/readyz of the standby: %d %s", code, body)
	}

	// a delivers and commits the 25 records; b, standing by all along, never polls.
	a.r.waitFor(t, "replica a to commit cursor 25", func() bool { return rig.cursor(t) == "25" })
	polledBefore := len(log.of("a"))
	a.r.waitFor(t, "replica a to poll on while b stands by", func() bool { return len(log.of("a")) >= polledBefore+10 })
	if n := len(log.of("b")); n != 0 {
		t.Fatalf("the standby polled %d times while a held the lease", n)
	}
	if p := info(b); !strings.Contains(p.Reason, "standby") {
		t.Fatalf("b is no longer standing by while a runs: %+v", p)
	}

	killedAt := time.Now()
	if err := a.r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.r.done
	avail.Store(60)
	b.r.waitFor(t, "replica b to take over and poll", func() bool { return len(log.of("b")) > 0 })
	t.Logf("lease moved %s after kill -9", time.Since(killedAt).Round(10*time.Millisecond))
	if first := log.of("b")[0]; first.since != "25" {
		t.Fatalf("the new holder's first request carried since=%q, want the committed cursor 25", first.since)
	}
	b.r.waitFor(t, "replica b to deliver records up to 60", func() bool {
		ids := sinkIDs(t, b.out)
		return len(ids) > 0 && ids[len(ids)-1] == 60
	})
	if p := info(b); p.State != "running" || !p.Ready {
		t.Fatalf("the new holder: %+v", p)
	}
	for _, id := range sinkIDs(t, b.out) {
		if id <= 25 {
			t.Fatalf("the new holder read record %d again: it started over instead of resuming", id)
		}
	}
	union := map[int]bool{}
	for _, id := range append(sinkIDs(t, filepath.Join(dir, "a.jsonl")), sinkIDs(t, b.out)...) {
		union[id] = true
	}
	for id := 1; id <= 60; id++ {
		if !union[id] {
			t.Fatalf("record %d is in neither sink", id)
		}
	}

	// A graceful stop hands the lease over too: a restarted a stands by, b stops, a resumes
	// from b's cursor.
	b.r.waitFor(t, "replica b to commit cursor 60", func() bool { return rig.cursor(t) == "60" })
	a2 := start("a")
	a2.r.waitFor(t, "restarted replica a to stand by", func() bool { return strings.Contains(info(a2).Reason, "standby") })
	before := len(log.of("a"))
	b.r.stop(t)
	avail.Store(70)
	a2.r.waitFor(t, "replica a to deliver records up to 70", func() bool {
		ids := sinkIDs(t, a2.out)
		return len(ids) > 0 && ids[len(ids)-1] == 70
	})
	if first := log.of("a")[before]; first.since != "60" {
		t.Fatalf("after the handover a's first request carried since=%q, want 60", first.since)
	}
	a2.r.stop(t)
}

// TestLeaseLostWhileAliveIntegration ends the holder's lease session on the server while the
// process lives (as a database failover would): the holder stops polling and stands by, the
// other replica takes over from the committed cursor, and every record reaches a sink.
func TestLeaseLostWhileAliveIntegration(t *testing.T) {
	rig := newLeaseRig(t, "lost")
	rig.avail.Store(25)
	a := rig.start(t, "a")
	a.r.waitFor(t, "replica a to run", func() bool { return a.info(t).State == "running" })
	b := rig.start(t, "b")
	b.r.waitFor(t, "replica b to stand by", func() bool { return strings.Contains(b.info(t).Reason, "standby") })
	a.r.waitFor(t, "replica a to commit cursor 25", func() bool { return leasedCursor(t, rig.dsn, rig.leaseName) == "25" })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, rig.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted
  AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`, lease.Key(rig.leaseName)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminate the holder's lease session: %d, %v", n, err)
	}
	b.r.waitFor(t, "replica b to take over", func() bool { return len(rig.log.of("b")) > 0 })
	if first := rig.log.of("b")[0]; first.since != "25" {
		t.Fatalf("the new holder's first request carried since=%q, want 25", first.since)
	}
	a.r.waitFor(t, "replica a to stand by", func() bool {
		p := a.info(t)
		return p.State == "starting" && p.Ready && strings.Contains(p.Reason, "standby")
	})
	polled := len(rig.log.of("a"))
	rig.avail.Store(50)
	b.r.waitFor(t, "replica b to deliver records up to 50", func() bool {
		ids := sinkIDs(t, b.out)
		return len(ids) > 0 && ids[len(ids)-1] == 50
	})
	if n := len(rig.log.of("a")); n != polled {
		t.Fatalf("replica a polled %d times while standing by", n-polled)
	}
	union := map[int]bool{}
	for _, id := range append(sinkIDs(t, a.out), sinkIDs(t, b.out)...) {
		union[id] = true
	}
	for id := 1; id <= 50; id++ {
		if !union[id] {
			t.Fatalf("record %d is in neither sink", id)
		}
	}
	b.r.stop(t)
	a.r.waitFor(t, "replica a to take the lease back", func() bool { return a.info(t).State == "running" })
	a.r.stop(t)
}
