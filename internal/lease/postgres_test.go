package lease_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/lease"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// uniqueName returns a lease name no other test run uses.
func uniqueName(t *testing.T) string {
	return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
}

func newLease(t *testing.T, dsn, name string) *lease.Postgres {
	t.Helper()
	p, err := lease.NewPostgres(dsn, name, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func acquire(t *testing.T, p *lease.Postgres) *lease.Held {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := p.Acquire(ctx, nil)
	if err != nil {
		t.Fatalf("acquire %s: %v", p.Name(), err)
	}
	t.Cleanup(h.Release)
	return h
}

// terminate ends the server session pid from another connection, as a failover or an
// administrator would.
func terminate(t *testing.T, dsn string, pid uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var ok bool
	if err := c.QueryRow(ctx, "SELECT pg_terminate_backend($1)", int32(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v, %v", pid, ok, err)
	}
}

func TestOneHolderAtATimeIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	name := uniqueName(t)
	a := acquire(t, newLease(t, dsn, name))

	var waits atomic.Int32
	var waitErr atomic.Value
	got := make(chan *lease.Held, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		h, err := newLease(t, dsn, name).Acquire(ctx, func(w lease.Wait) {
			if w.Err != nil {
				waitErr.Store(w.Err)
			}
			waits.Add(1)
		})
		if err == nil {
			got <- h
		}
		close(got)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for waits.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the second replica never reported waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-got:
		t.Fatal("the second replica took a lease the first holds")
	default:
	}
	if e := waitErr.Load(); e != nil {
		t.Fatalf("waiting reported an error while another replica held the lease: %v", e)
	}
	// Another lease name is free meanwhile.
	acquire(t, newLease(t, dsn, name+"-other"))

	a.Release()
	select {
	case b := <-got:
		if b == nil {
			t.Fatal("acquire failed")
		}
		defer b.Release()
		if b.Err() != nil {
			t.Fatalf("new holder: %v", b.Err())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the lease did not move after Release")
	}
	if !errors.Is(a.Err(), lease.ErrLost) {
		t.Fatalf("released lease: Err = %v, want ErrLost", a.Err())
	}
}

func TestPositionsMoveWithTheLeaseIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	name := uniqueName(t)
	ctx := context.Background()
	a := acquire(t, newLease(t, dsn, name))
	if ps, found, err := a.Load(ctx); err != nil || found || len(ps) != 0 {
		t.Fatalf("fresh lease: Load = %v, %v, %v; want nothing", ps, found, err)
	}
	if err := a.Save(ctx, []connector.Position{{Partition: "p1", Offset: 5, Cursor: []byte(`{"since":"5"}`)}, {Partition: "", Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, []connector.Position{{Partition: "p1", Offset: 9, Cursor: []byte{0, 1, 2}}}); err != nil {
		t.Fatal(err)
	}
	a.Release()

	b := acquire(t, newLease(t, dsn, name))
	ps, found, err := b.Load(ctx)
	if err != nil || !found {
		t.Fatalf("Load = %v, %v", found, err)
	}
	want := []connector.Position{{Partition: "", Offset: 1, Cursor: nil}, {Partition: "p1", Offset: 9, Cursor: []byte{0, 1, 2}}}
	if !reflect.DeepEqual(ps, want) {
		t.Fatalf("Load = %v, want %v", ps, want)
	}
	// Another lease keeps its own positions.
	c := acquire(t, newLease(t, dsn, name+"-other"))
	if ps, found, _ := c.Load(ctx); found {
		t.Fatalf("another lease loaded %v", ps)
	}
}

// A holder whose session the server ended learns it within its check interval, and can no
// longer write positions over those of the replica that took the lease.
func TestLostHolderIsFencedIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	name := uniqueName(t)
	ctx := context.Background()
	a := acquire(t, newLease(t, dsn, name))
	if err := a.Save(ctx, []connector.Position{{Offset: 10}}); err != nil {
		t.Fatal(err)
	}
	terminate(t, dsn, a.PID())
	b := acquire(t, newLease(t, dsn, name))
	if ps, _, err := b.Load(ctx); err != nil || len(ps) != 1 || ps[0].Offset != 10 {
		t.Fatalf("new holder loaded %v, %v; want offset 10", ps, err)
	}
	if err := b.Save(ctx, []connector.Position{{Offset: 20}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, []connector.Position{{Offset: 11}}); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("old holder's Save = %v, want ErrLost", err)
	}
	select {
	case <-a.Lost():
	case <-time.After(30 * time.Second):
		t.Fatal("Lost not closed")
	}
	if ps, _, err := b.Load(ctx); err != nil || len(ps) != 1 || ps[0].Offset != 20 {
		t.Fatalf("after the old holder's write: %v, %v; want offset 20", ps, err)
	}
}

// The check notices a lost session without any write.
func TestCheckNoticesLostSessionIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	a := acquire(t, newLease(t, dsn, uniqueName(t)))
	terminate(t, dsn, a.PID())
	select {
	case <-a.Lost():
		if !errors.Is(a.Err(), lease.ErrLost) {
			t.Fatalf("Err = %v", a.Err())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a terminated session was not noticed")
	}
}

// A database that cannot be reached is reported to the waiting callback, and Acquire returns
// when its context ends.
func TestUnreachableDatabaseIsReported(t *testing.T) {
	p, err := lease.NewPostgres("postgres://nobody@127.0.0.1:1/none?connect_timeout=2", "x", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var reported error
	h, err := p.Acquire(ctx, func(w lease.Wait) {
		reported = w.Err
		cancel()
	})
	if h != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v, %v", h, err)
	}
	if reported == nil {
		t.Fatal("the connection error was not reported")
	}
}

func TestNewPostgresRefusesBadInput(t *testing.T) {
	if _, err := lease.NewPostgres("postgres://a:secretpw@[::1", "x", 0); err == nil || strings.Contains(err.Error(), "secretpw") {
		t.Fatalf("bad dsn: %v", err)
	}
	if _, err := lease.NewPostgres("postgres://localhost/db", "", 0); err == nil {
		t.Fatal("empty name accepted")
	}
}

func TestKeyIsStableAndNonNegative(t *testing.T) {
	for _, n := range []string{"a", "orders", "a-much-longer-lease-name"} {
		if k := lease.Key(n); k < 0 || k != lease.Key(n) {
			t.Fatalf("Key(%q) = %d", n, k)
		}
	}
	if lease.Key("a") == lease.Key("b") {
		t.Fatal("distinct names share a key")
	}
}

// A write checks the lock itself, not only that the session lives.
func TestSaveChecksTheLockIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	name := uniqueName(t)
	p, err := lease.NewPostgres(dsn, name, time.Hour) // no check between the unlock and the write
	if err != nil {
		t.Fatal(err)
	}
	a := acquire(t, p)
	if err := a.Save(context.Background(), []connector.Position{{Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(lease.Key(name)); err != nil {
		t.Fatal(err)
	}
	err = a.Save(context.Background(), []connector.Position{{Offset: 2}})
	if !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "not held") {
		t.Fatalf("Save without the lock = %v, want ErrLost (not held)", err)
	}
	b := acquire(t, newLease(t, dsn, name))
	if ps, _, err := b.Load(context.Background()); err != nil || len(ps) != 1 || ps[0].Offset != 1 {
		t.Fatalf("Load = %v, %v; want offset 1", ps, err)
	}
}
