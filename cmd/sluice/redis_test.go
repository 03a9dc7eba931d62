package main_test

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
)

// TestKill9ExactlyOnceRedisIntegration runs file → two Redis streams (a stream shows a duplicate;
// the second sink has a batch of its own, so the two commit at different points) with delivery:
// exactly_once, and kills `sluice run` with SIGKILL at ten random moments, restarting it each
// time, then lets a run finish. redis-cli must then count every record exactly once in each
// stream, and each positions hash must hold the end of the file.
func TestKill9ExactlyOnceRedisIntegration(t *testing.T) {
	addr := testenv.Require(t, "REDIS_ADDR")
	bin := buildSluice(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	// Sized so that ten kills at most 430ms into a run come before the end: the file source is held
	// to 50,000 lines/s (at most 215,000 lines in ten runs), however fast the machine.
	const n = 300_000
	dir := t.TempDir()
	inPath, inLen := writeCommodities(t, dir, n, 0)
	cli := redisCLI(t, addr)
	prefix := "sluicetest:eo-kill:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	streams := map[string]string{"a": prefix + ":a", "b": prefix + ":b"}
	positions := map[string]string{"a": prefix + ":pos:a", "b": prefix + ":pos:b"}
	t.Cleanup(func() { cli("DEL", streams["a"], streams["b"], positions["a"], positions["b"]) })
	sink := func(name, batch string) string {
		return fmt.Sprintf("    - {name: %s, type: redis%s, config: {addr: %q, mode: stream, stream: %q, fields: object, positions_key: %q}}\n",
			name, batch, addr, streams[name], positions[name])
	}
	manifest := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: eo-redis}
spec:
  source: {type: file, config: {path: ` + strconv.Quote(inPath) + `, read_buffer: 16KiB, rate: 50000}}
  sinks:
` + sink("a", "") + sink("b", ", batch: {max_records: 1500, linger: 20ms}") + `  delivery: exactly_once
  batch: {max_records: 200, linger: 1ms}
  buffer: {max_records: 6000}
`
	mPath := filepath.Join(dir, "eo.yaml")
	if err := os.WriteFile(mPath, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	kills := killRuns(t, bin, dir, mPath, rng, 10, nil, func() string {
		return fmt.Sprintf("stream a holds %s entries, b %s", cli("XLEN", streams["a"]), cli("XLEN", streams["b"]))
	})
	for _, name := range []string{"a", "b"} {
		if got := cli("XLEN", streams[name]); got != strconv.Itoa(n) {
			t.Errorf("stream %s: redis-cli XLEN = %s, want %d: a record lost or stored twice after %d kills", name, got, n, kills)
		}
		checkStreamSeqs(t, addr, streams[name], n)
		partition, err := filepath.Abs(inPath)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := cli("HGET", positions[name], partition), fmt.Sprintf(`{"offset":%d}`, inLen); got != want {
			t.Errorf("stream %s: stored position %s; want %s (the end of the file)", name, got, want)
		}
	}
}
