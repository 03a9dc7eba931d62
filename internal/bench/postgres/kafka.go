package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/internal/cli"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaPartitions is the number of partitions of the benchmark topic.
const kafkaPartitions = 4

// kafkaValue renders record i as validate_price accepts it: ~100 bytes.
func kafkaValue(i int) []byte {
	commodities := [...]string{"gold", "silver", "copper"}
	return fmt.Appendf(nil, `{"seq":%d,"commodity":%q,"price":%d.%02d,"ts":"2024-05-01T12:00:00.000Z","pad":"xxxxxxxxxxxxxxxxxxx"}`,
		i, commodities[i%3], 10+i%90, i%100)
}

// runKafka runs `sluice run` (in this process) on Kafka → validate_price (in guestLanguage; none
// when empty) → postgres with delivery exactly_once. The topic holds n records before the pipeline starts; the rate is that
// of draining them, from the first row stored to the last. Then a producer writes n/5 more at a
// steady rate of rate records/s and the latency of each is its commit time (the row's
// clock_timestamp default) minus its Kafka timestamp.
func runKafka(ctx context.Context, conn *pgx.Conn, dsn, table, guestLanguage string, n, rate int, r *result) error {
	bootstrap, why := testenv.Lookup("KAFKA_BOOTSTRAP")
	if bootstrap == "" {
		return fmt.Errorf("no Kafka: %s", why)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	transforms := "[]"
	if guestLanguage != "" {
		wasm := filepath.Join(root, "transforms", "validate_price", guestLanguage, "validate_price.wasm")
		if _, err := os.Stat(wasm); err != nil {
			return fmt.Errorf("validate_price: %w", err)
		}
		transforms = fmt.Sprintf("[{name: validate, wasm: %q}]", wasm)
	}
	topic := table
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, kafkaPartitions, 1, nil, topic); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	defer adm.DeleteTopics(context.Background(), topic)
	if err := produce(ctx, cl, 0, n, 0); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE "+table+" ADD COLUMN kafka_time timestamptz, ADD COLUMN written_at timestamptz DEFAULT clock_timestamp(), "+
		"ADD COLUMN ts timestamptz"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sluice-bench-kafka-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	manifest := filepath.Join(dir, "pipeline.yaml")
	text := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: bench-kafka-pg}
spec:
  source: {type: kafka, config: {brokers: [%q], topics: [%q], group: %q, metadata_headers: false}}
  transforms: %s
  sinks:
    - name: pg
      type: postgres
      config:
        dsn: %q
        table: %s
        positions_table: %s_pos
        columns: {seq: bigint, commodity: text, price: double precision, pad: text, ts: timestamptz, kafka_time: {type: timestamptz, from: "@time"}}
  delivery: exactly_once
  batch: {max_records: 4096, linger: 5ms}
`, bootstrap, topic, topic, transforms, dsn, table, table)
	if err := os.WriteFile(manifest, []byte(text), 0o644); err != nil {
		return err
	}
	done := make(chan int, 1)
	go func() {
		done <- cli.Main([]string{"run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", "--log-level", "error", manifest})
	}()
	count := func() (int64, error) {
		var c int64
		err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&c)
		return c, err
	}
	var first time.Time
	var firstCount int64
	for {
		c, err := count()
		if err != nil {
			return err
		}
		if c > 0 && first.IsZero() {
			first, firstCount = time.Now(), c
		}
		if c >= int64(n) {
			r.Elapsed = time.Since(first)
			r.Records = c - firstCount
			break
		}
		select {
		case code := <-done:
			return fmt.Errorf("sluice run ended (exit %d) with %d of %d rows", code, c, n)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The latency phase: records produced at a steady rate while the pipeline keeps up.
	more := n / 5
	if err := produce(ctx, cl, n, more, rate); err != nil {
		return err
	}
	for {
		c, err := count()
		if err != nil {
			return err
		}
		if c >= int64(n+more) {
			break
		}
		select {
		case code := <-done:
			return fmt.Errorf("sluice run ended (exit %d) with %d of %d rows", code, c, n+more)
		case <-time.After(10 * time.Millisecond):
		}
	}
	var p50, p99 float64
	if err := conn.QueryRow(ctx, `SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM written_at - kafka_time)),
		percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM written_at - kafka_time)) FROM `+table+` WHERE seq >= $1`, n).Scan(&p50, &p99); err != nil {
		return err
	}
	r.P50, r.P99 = time.Duration(p50*1e9), time.Duration(p99*1e9)
	syscall.Kill(os.Getpid(), syscall.SIGTERM) // sluice run drains and returns
	select {
	case code := <-done:
		if code != 0 {
			return fmt.Errorf("sluice run exited with %d", code)
		}
	case <-time.After(time.Minute):
		return errors.New("sluice run did not stop within a minute of SIGTERM")
	}
	var dup int64
	if err := conn.QueryRow(ctx, "SELECT count(*) - count(DISTINCT seq) FROM "+table).Scan(&dup); err != nil || dup != 0 {
		return fmt.Errorf("%d records stored twice (%v)", dup, err)
	}
	return nil
}

// produce writes records from..from+n, at rate records/s (0: as fast as possible), spread over
// the partitions by key, and waits until all are acknowledged.
func produce(ctx context.Context, cl *kgo.Client, from, n, rate int) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for i := from; i < from+n; i++ {
		if rate > 0 && (i-from)%100 == 0 {
			if d := time.Until(start.Add(time.Duration(i-from) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Value: kafkaValue(i), Key: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return firstErr
}

// moduleRoot is the directory of go.mod at or above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}
