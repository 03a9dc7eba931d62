package supervisor_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/lease"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

// leasedReplica is one supervisor running the leased pipeline "p" into its own sink, with its
// own data directory, as one replica of a deployment would.
type leasedReplica struct {
	sup  *supervisor.Supervisor
	sink *listSink
	stop context.CancelFunc
	done chan error
}

func startLeased(t *testing.T, dsn, leaseName string) *leasedReplica {
	t.Helper()
	r := &leasedReplica{sink: &listSink{}, done: make(chan error, 1)}
	r.sup = newSupervisor(t, lifecycleCatalog(t, &trouble{}, map[string]*listSink{"p": r.sink}), supervisor.RestartPolicy{})
	cfg := seqPipeline("p", "seq", 0, 0)
	cfg.Lease = &pipeline.Lease{Postgres: dsn, Name: leaseName, Retry: 100 * time.Millisecond}
	if problems := r.sup.Add(context.Background(), cfg); len(problems) > 0 {
		t.Fatal(problems)
	}
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go func() { r.done <- r.sup.Run(ctx, supervisor.RunOptions{}) }()
	t.Cleanup(func() {
		stop()
		<-r.done
	})
	return r
}

func (r *leasedReplica) standingBy() bool {
	st := statusOf(r.sup, "p")
	return st.State == pipeline.StateStarting && st.Ready && strings.Contains(st.Reason, "standby")
}

func (r *leasedReplica) running() bool { return statusOf(r.sup, "p").State == pipeline.StateRunning }

// terminateLease ends the server session holding the lease, as a failover of the database or an
// administrator would; the replica's process lives on.
func terminateLease(t *testing.T, dsn, leaseName string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted
  AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`, lease.Key(leaseName)).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminate the lease session: %d sessions, %v", n, err)
	}
}

// Of two replicas only the holder runs; when its lease session dies it stops delivering and
// stands by, and the other resumes from the positions it committed: no record is missing from
// the union of their outputs, and the new holder did not start over.
func TestLeaseLostStopsTheRunIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	leaseName := fmt.Sprintf("sv-%d", time.Now().UnixNano())
	a := startLeased(t, dsn, leaseName)
	waitUntil(t, "a to run and deliver", func() bool { return a.running() && len(a.sink.snapshot()) >= 100 })
	b := startLeased(t, dsn, leaseName)
	waitUntil(t, "b to stand by", b.standingBy)
	delivered := len(a.sink.snapshot())
	waitUntil(t, "a to deliver more while b stands by", func() bool { return len(a.sink.snapshot()) >= delivered+1000 })
	if n := len(b.sink.snapshot()); n != 0 || !b.standingBy() {
		t.Fatalf("the standby delivered %d records (status %+v)", n, statusOf(b.sup, "p"))
	}

	terminateLease(t, dsn, leaseName)
	waitUntil(t, "b to take over", func() bool { return b.running() && len(b.sink.snapshot()) >= 100 })
	waitUntil(t, "a to stand by", a.standingBy)
	stoppedAt := len(a.sink.snapshot())
	got := len(b.sink.snapshot())
	waitUntil(t, "b to deliver more", func() bool { return len(b.sink.snapshot()) >= got+1000 })
	if n := len(a.sink.snapshot()); n != stoppedAt {
		t.Fatalf("a delivered %d records while standing by", n-stoppedAt)
	}

	// b resumed where a committed, give or take what a delivered after its last commit.
	first, _ := strconv.Atoi(b.sink.snapshot()[0])
	if first < 100 {
		t.Fatalf("b started at record %d: it did not resume from a's positions", first)
	}
	seen, top := map[int]bool{}, 0
	for _, v := range append(a.sink.snapshot(), b.sink.snapshot()...) {
		n, _ := strconv.Atoi(v)
		seen[n], top = true, max(top, n)
	}
	for i := 0; i <= top; i++ {
		if !seen[i] {
			t.Fatalf("record %d is in neither output (the last is %d)", i, top)
		}
	}

	// Stopped while standing by, a pipeline ends stopped, not failed.
	a.stop()
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	a.done <- nil // for the cleanup
	if st := statusOf(a.sup, "p"); st.State != pipeline.StateStopped || !strings.Contains(st.Reason, "standing by") {
		t.Fatalf("a stopped while standing by: %+v", st)
	}
}

// A replica that cannot reach the lease database says so and is not ready.
func TestLeaseDatabaseUnreachableIsDegraded(t *testing.T) {
	r := startLeased(t, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", "x")
	waitUntil(t, "the replica to report the database", func() bool {
		st := statusOf(r.sup, "p")
		return st.State == pipeline.StateDegraded && !st.Ready && strings.Contains(st.Reason, "cannot take the lease")
	})
	if n := len(r.sink.snapshot()); n != 0 {
		t.Fatalf("delivered %d records without the lease", n)
	}
}

// A restart requested while standing by stands by again; once the holder stops, the standby
// takes the lease and runs.
func TestLeaseStandbyRestartThenTakeOverIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	leaseName := fmt.Sprintf("sv-%d", time.Now().UnixNano())
	a := startLeased(t, dsn, leaseName)
	waitUntil(t, "a to run", a.running)
	b := startLeased(t, dsn, leaseName)
	waitUntil(t, "b to stand by", b.standingBy)
	before := statusOf(b.sup, "p").Restarts
	if err := b.sup.Restart("p"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b to stand by again after the restart", func() bool { return statusOf(b.sup, "p").Restarts > before && b.standingBy() })
	if n := len(b.sink.snapshot()); n != 0 {
		t.Fatalf("b delivered %d records while a held the lease", n)
	}
	a.stop()
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	a.done <- nil
	waitUntil(t, "b to take over from the stopped holder", func() bool { return b.running() && len(b.sink.snapshot()) > 0 })
	last, _ := strconv.Atoi(a.sink.snapshot()[len(a.sink.snapshot())-1])
	if first, _ := strconv.Atoi(b.sink.snapshot()[0]); first != last+1 {
		t.Fatalf("after a graceful hand-over b started at %d, want %d (a delivered and checkpointed up to %d)", first, last+1, last)
	}
}
