package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// killRuns runs `sluice run` on the manifest with the data directory dir/data again and again,
// killing each of the first `kills` runs with SIGKILL when its trigger fires, until a run ends by
// itself; it returns how many runs were killed. A run that fails, or ends before all kills were
// made (the kills would not test anything), fails the test. trigger, given a channel closed when
// the run exits, returns one that yields a description of the moment once the kill is due; nil
// means a random 30-430 ms into the run. report, when set, is logged after each kill.
func killRuns(t *testing.T, bin, dir, manifest string, rng *rand.Rand, kills int, trigger func(exited <-chan struct{}) <-chan string, report func() string) int {
	t.Helper()
	if trigger == nil {
		trigger = func(<-chan struct{}) <-chan string {
			c := make(chan string, 1)
			d := time.Duration(rng.Intn(400)+30) * time.Millisecond
			time.AfterFunc(d, func() { c <- fmt.Sprintf("after %v", d) })
			return c
		}
	}
	killed := 0
	for attempt := 0; ; attempt++ {
		if attempt > 4*kills+2 {
			t.Fatalf("no run completed after %d attempts", attempt)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", "--log-level", "warn", manifest)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done, exited := make(chan error, 1), make(chan struct{})
		go func() { done <- cmd.Wait(); close(exited) }()
		var kill <-chan string
		if killed < kills {
			kill = trigger(exited)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run failed: %v\n%s", err, stderr.String())
			}
			if killed < kills {
				t.Fatalf("run %d finished before it was killed; the test needs slower runs", attempt)
			}
			return killed
		case when := <-kill:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killed++
			if strings.Contains(stderr.String(), "level=ERROR") {
				t.Logf("run %d logged errors:\n%s", attempt, stderr.String())
			}
			msg := fmt.Sprintf("kill %d %s", killed, when)
			if report != nil {
				msg += ": " + report()
			}
			t.Log(msg)
		}
	}
}

// writeCommodities writes n JSON lines {"seq":1..n, "commodity", "price"} into dir/in.jsonl, with
// "ts" in epoch milliseconds (1714564800000 + i·tsStepMs) when tsStepMs > 0. It returns the path
// and the file's size, the position a sink stores once it has every line.
func writeCommodities(t *testing.T, dir string, n int, tsStepMs int64) (string, int) {
	t.Helper()
	var in bytes.Buffer
	commodities := []string{"gold", "silver", "copper", "oil"}
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&in, `{"seq":%d,"commodity":%q,"price":%d.25`, i, commodities[i%4], i%1000)
		if tsStepMs > 0 {
			fmt.Fprintf(&in, `,"ts":%d`, 1714564800000+int64(i)*tsStepMs)
		}
		in.WriteString("}\n")
	}
	path := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(path, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, in.Len()
}

// redisCLI returns a function that runs redis-cli against addr and returns its trimmed output.
func redisCLI(t *testing.T, addr string) func(args ...string) string {
	host, port, _ := net.SplitHostPort(addr)
	return func(args ...string) string {
		t.Helper()
		out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).Output()
		if err != nil {
			t.Fatalf("redis-cli %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
}

// checkStreamSeqs checks that a Redis stream holds the seqs 1..n, each once, in order.
func checkStreamSeqs(t *testing.T, addr, stream string, n int) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	seq := 0
	for start := "-"; ; {
		msgs, err := rdb.XRangeN(context.Background(), stream, start, "+", 10000).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if seq++; m.Values["seq"] != strconv.Itoa(seq) {
				t.Fatalf("stream %s: entry %d has seq %v, want %d", stream, seq, m.Values["seq"], seq)
			}
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	if seq != n {
		t.Fatalf("stream %s: %d entries, want %d", stream, seq, n)
	}
}

// icebergTable is what icebergCounts reports of one table.
type icebergTable struct {
	Rows, Distinct, Min, Max int
	Positions                string
}

// readIcebergTables reads tables of the SQLite catalog db (warehouse wh) with PyIceberg; key is
// the sink's snapshot summary key without the sink name ("sluice.positions.PIPELINE").
func readIcebergTables(python, db, wh, key string, idents ...string) (map[string]icebergTable, error) {
	props, _ := json.Marshal(map[string]string{"type": "sql", "uri": "sqlite:///" + db, "warehouse": wh})
	cmd := exec.Command(python, append([]string{"-c", icebergCounts, "lake", string(props), key}, idents...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pyiceberg: %v: %s", err, stderr.String())
	}
	var got map[string]icebergTable
	return got, json.Unmarshal(out, &got)
}
