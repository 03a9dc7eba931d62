// Package platform runs the rental listings platform end to end against real services (the
// listing site, one `sluice run` of the example's manifests, Postgres, Redis, Pulsar and an
// Iceberg table on a SQLite catalog) and accounts for every record against the site's truth. The
// platform's test and `make e2e-rentals` (its e2e program) share it.
package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// EventsTopic is the Pulsar topic of events.yaml and activity.yaml.
const EventsTopic = "persistent://public/default/rental-events"

// Options says what to run and where.
type Options struct {
	Sluice, Site string // binaries
	Manifests    string // the directory of the example's manifests
	Dir          string // an empty directory for the data dirs, catalog, warehouse and logs

	PGDSN, RedisAddr, PulsarURL, PulsarAdminURL string

	SiteArgs []string // extra flags of listingsite (-pages, -seed, -feed-events ...)
	// Kills is how many times `sluice run` is killed with SIGKILL while the listings are being
	// scraped (once a share of them is in Postgres) and started again at once on the same data
	// directory. With kills, the accounting allows what at-least-once delivery writes twice (see
	// Services.Killed).
	Kills    int
	Deadline time.Duration // how long to wait for everything to land; 0 means 5 minutes
	Log      io.Writer     // progress lines; nil for none
}

// Run resets the stores these manifests write (so it must not share the services with another
// run), starts the site and the platform, waits until every record is accounted for or the
// deadline passes, and returns the last report. An error means the run itself failed (a process
// exited, a store could not be read).
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Deadline == 0 {
		o.Deadline = 5 * time.Minute
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	if err := Reset(ctx, o.PGDSN, o.RedisAddr, o.PulsarAdminURL); err != nil {
		return nil, err
	}
	// Three distinct ports, held together while chosen: the site's own port must not be the one
	// the webhook will listen on.
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	siteAddr, webhookAddr, adminAddr := addrs[0], addrs[1], addrs[2]

	site, err := start(o.Site, nil, filepath.Join(o.Dir, "listingsite.log"), append([]string{"-addr", siteAddr,
		"-ready-file", filepath.Join(o.Dir, "site.url"), "-webhook", "http://" + webhookAddr + "/events",
		"-webhook-ready", "http://" + webhookAddr + "/healthz"}, o.SiteArgs...)...)
	if err != nil {
		return nil, err
	}
	defer site.stop()
	var base string
	if err := wait(ctx, 30*time.Second, []*process{site}, func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(o.Dir, "site.url"))
		base = strings.TrimSpace(string(b))
		return err == nil && base != "", "no site.url yet"
	}); err != nil {
		return nil, fmt.Errorf("listingsite: %w", err)
	}
	logf("listing site on %s; running %s (admin on %s)", base, o.Manifests, adminAddr)

	env := []string{
		"LISTINGS_SITE=" + base, "LISTINGS_HOST=" + strings.TrimPrefix(base, "http://"), "MASK_SALT=e2e-" + fmt.Sprint(time.Now().UnixNano()),
		"PG_DSN=" + o.PGDSN, "REDIS_ADDR=" + o.RedisAddr, "PULSAR_URL=" + o.PulsarURL, "EVENTS_WEBHOOK_ADDR=" + webhookAddr,
		"LAKE_CATALOG_URI=sqlite:///" + filepath.Join(o.Dir, "catalog.db"), "LAKE_WAREHOUSE=file://" + filepath.Join(o.Dir, "warehouse"),
	}
	runSluice := func(log string) (*process, error) {
		return start(o.Sluice, env, filepath.Join(o.Dir, log), "run", "--watch=false", "--admin-addr", adminAddr,
			"--log-level", "warn", "--data-dir", filepath.Join(o.Dir, "data"), o.Manifests)
	}
	sl, err := runSluice("sluice.log")
	if err != nil {
		return nil, err
	}
	defer func() { sl.stop() }()

	svc := Services{PGDSN: o.PGDSN, RedisAddr: o.RedisAddr, PulsarURL: o.PulsarURL, PulsarAdminURL: o.PulsarAdminURL,
		CatalogPath: filepath.Join(o.Dir, "catalog.db"), Warehouse: filepath.Join(o.Dir, "warehouse"),
		MetricsURL: "http://" + adminAddr + "/metrics"}
	for i := 1; i <= o.Kills; i++ {
		// Kill i comes once i/(Kills+1) of the listings are in Postgres: in the middle of the crawl.
		t, err := FetchTruth(ctx, base)
		if err != nil {
			return nil, err
		}
		at := i * len(t.Listings) / (o.Kills + 1)
		if err := waitListings(ctx, o.PGDSN, at, o.Deadline, []*process{site, sl}); err != nil {
			return nil, fmt.Errorf("before kill %d: %w", i, err)
		}
		_ = sl.cmd.Process.Kill()
		<-sl.done
		killed := time.Now()
		svc.Killed = append(svc.Killed, killed)
		logf("kill -9 %d of sluice run (pid %d) with %d or more listings in Postgres; starting it again", i, sl.cmd.Process.Pid, at)
		if sl, err = runSluice(fmt.Sprintf("sluice.%d.log", i)); err != nil {
			return nil, err
		}
	}
	// Everything must be accounted for on three polls in a row (a few seconds), so that a record
	// written twice a little later is not missed.
	var last *Report
	oks := 0
	err = wait(ctx, o.Deadline, []*process{site, sl}, func() (bool, string) {
		t, err := FetchTruth(ctx, base)
		if err != nil {
			return false, err.Error()
		}
		if !t.EventsDone {
			return false, fmt.Sprintf("the site has delivered %d events", len(t.Events))
		}
		if _, err := os.Stat(svc.CatalogPath); err != nil {
			return false, "no Iceberg catalog yet"
		}
		r, err := Collect(ctx, svc, t)
		if err != nil {
			return false, err.Error()
		}
		last = r
		if !r.OK() {
			oks = 0
			return false, fmt.Sprintf("%d problems, the first: %s", len(r.Problems), r.Problems[0])
		}
		oks++
		return oks >= 3, "everything accounted for, checking again"
	})
	if err != nil && last == nil {
		return nil, err
	}
	if err != nil {
		logf("%v", err)
	}
	if err := last.CheckFilesAtRest(o.Dir); err != nil {
		return nil, err
	}
	return last, nil
}

// Reset drops what an earlier run left: the Postgres tables, the Redis keys, the Pulsar topic
// (and its subscription), which it creates again.
func Reset(ctx context.Context, pgDSN, redisAddr, pulsarAdmin string) error {
	pg, err := pgx.Connect(ctx, pgDSN)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pg.Close(context.Background())
	for _, table := range []string{"rental_listings", "rental_dead_letters"} {
		if _, err := pg.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
			return fmt.Errorf("postgres: drop %s: %w", table, err)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	for _, pattern := range []string{"listing:*", "rental-activity:*"} {
		keys, err := scanKeys(ctx, rdb, pattern)
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		if len(keys) > 0 {
			if err := rdb.Del(ctx, keys...).Err(); err != nil {
				return fmt.Errorf("redis: %w", err)
			}
		}
	}
	topic := strings.TrimRight(pulsarAdmin, "/") + "/admin/v2/persistent/public/default/rental-events"
	for _, step := range []struct {
		method, url string
		ok          func(int) bool
	}{
		{http.MethodDelete, topic + "?force=true", func(c int) bool { return c/100 == 2 || c == http.StatusNotFound }},
		{http.MethodPut, topic, func(c int) bool { return c/100 == 2 }},
	} {
		req, err := http.NewRequestWithContext(ctx, step.method, step.url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("pulsar admin: %w", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !step.ok(resp.StatusCode) {
			return fmt.Errorf("pulsar admin: %s %s: %s %s", step.method, step.url, resp.Status, body)
		}
	}
	return nil
}

// waitListings waits, polling every 50 ms, until rental_listings holds at least n rows.
func waitListings(ctx context.Context, dsn string, n int, deadline time.Duration, procs []*process) error {
	pg, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pg.Close(context.Background())
	return waitEvery(ctx, deadline, 50*time.Millisecond, procs, func() (bool, string) {
		var exists bool
		var have int
		err := pg.QueryRow(ctx, "SELECT to_regclass('rental_listings') IS NOT NULL").Scan(&exists)
		if err == nil && exists { // a count of a table not created yet would fail
			err = pg.QueryRow(ctx, "SELECT count(*) FROM rental_listings").Scan(&have)
		}
		if err != nil {
			return false, "postgres: " + err.Error()
		}
		return have >= n, fmt.Sprintf("%d listings in Postgres, waiting for %d", have, n)
	})
}

// freeAddrs picks n distinct free loopback ports.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// process is a child process whose output goes to a log file.
type process struct {
	cmd    *exec.Cmd
	log    string
	done   chan struct{}
	mu     sync.Mutex
	err    error
	exited bool
}

func start(bin string, env []string, logPath string, args ...string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &process{cmd: exec.Command(bin, args...), log: logPath, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		err := p.cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err, p.exited = err, true
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exitErr() (error, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err, p.exited
}

// stop ends the process with SIGTERM (a graceful stop), or kills it after 60 s.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the process's log.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// wait polls cond every second until it holds, failing after deadline with what it last said,
// or at once when a process exits.
func wait(ctx context.Context, deadline time.Duration, procs []*process, cond func() (bool, string)) error {
	return waitEvery(ctx, deadline, time.Second, procs, cond)
}

// waitEvery is wait, polling every given interval.
func waitEvery(ctx context.Context, deadline, every time.Duration, procs []*process, cond func() (bool, string)) error {
	end := time.Now().Add(deadline)
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		for _, p := range procs {
			if err, exited := p.exitErr(); exited {
				return fmt.Errorf("%s exited (%v) while waiting (%s):\n%s", filepath.Base(p.cmd.Path), err, state, p.tail())
			}
		}
		if time.Now().After(end) {
			var logs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&logs, "\n%s:\n%s", p.log, p.tail())
			}
			return fmt.Errorf("still %s after %s%s", state, deadline, logs.String())
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), errors.New(state))
		case <-time.After(every):
		}
	}
}
