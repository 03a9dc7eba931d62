package kafka

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestRebalanceWithoutCrashAddsNoDuplicatesIntegration moves partitions between `sluice run`
// processes of one group while records stream, with no process dying: a second and a third
// process join (the group takes partitions from the first), then the second is stopped with
// SIGTERM (its partitions go back). A revoke waits for what was read from the revoked partitions
// to be delivered and commits it before the partitions change hands, so every record must reach
// the file sinks exactly once: any duplicate means a revoked partition was handed over behind its
// delivered records.
func TestRebalanceWithoutCrashAddsNoDuplicatesIntegration(t *testing.T) {
	b := sharedBroker(t)
	bin := sluiceBinary(t)
	const partitions, n = 6, 120_000
	topic := b.topic(t, partitions, nil)
	group := uniqueName(t, "g")
	dir := t.TempDir()
	var procs []*proc
	var outs []string
	start := func(i int) {
		name := fmt.Sprintf("p%d", i+1)
		out := filepath.Join(dir, name+".jsonl")
		m := writeManifest(t, filepath.Join(dir, name+".yaml"), "rebalance", groupSource(b.addr, topic, group, ""),
			fmt.Sprintf("    - {name: out, type: file, config: {path: %q, fsync: false}}\n", out), procSpecExtra)
		outs = append(outs, out)
		procs = append(procs, startSluice(t, bin, dir, name, m))
	}
	lines := func() int {
		total := 0
		for _, o := range outs {
			total += countLines(o)
		}
		return total
	}
	alive := func() {
		for i, p := range procs {
			if i != 1 && p.exited() {
				t.Fatalf("%s exited:\n%s", p.name, p.logTail())
			}
		}
	}
	start(0)
	produced := producePaced(t, b.addr, topic, partitions, 0, n, 40, 100*time.Millisecond) // about 4 s of input
	waitFor(t, 2*time.Minute, "a quarter of the records delivered", func() bool { alive(); return lines() >= n/4 })
	start(1)
	waitFor(t, 2*time.Minute, "half of the records delivered", func() bool { alive(); return lines() >= n/2 })
	start(2)
	waitFor(t, 2*time.Minute, "three quarters of the records delivered", func() bool { alive(); return lines() >= 3*n/4 })
	procs[1].terminate()
	t.Logf("stopped p2 (SIGTERM) at %d lines", lines())
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	waitFor(t, 3*time.Minute, "every record in the sinks", func() bool { alive(); return lines() >= n })
	// Give redeliveries, if any, the time to show.
	time.Sleep(2 * time.Second)
	procs[0].terminate()
	procs[2].terminate()
	// Order is not checked per file: a partition's records move between the files as it changes
	// owner (the single-process tests check it).
	var all []seqRecord
	var events string
	for i, o := range outs {
		recs := readSeq(t, o)
		all = append(all, recs...)
		t.Logf("%s delivered %d", procs[i].name, len(recs))
		events += fmt.Sprintf("%s:\n%s\n", procs[i].name, grepLines(procs[i].logText(), "partitions assigned", "partitions revoked", "partitions lost", "revoke_timeout"))
	}
	if dups := checkComplete(t, all, partitions, n); dups != 0 {
		t.Fatalf("%d duplicates after rebalances without a crash; want none. Group events:\n%s", dups, events)
	}
}
