package kafka

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/transforms/stats/statsref"
)

// TestAggregateScaleOutPartitionsLostIntegration: two `sluice run` processes of a stats
// aggregate in a group; one is stopped (SIGSTOP) mid-stream with records in flight, longer than
// the session timeout, so the group expels it and gives its partitions to the other; then it is
// continued (SIGCONT): it finds its partitions lost, with records still in flight, and rejoins,
// taking partitions back. Every window row written by either process must be the window an
// uninterrupted run computes: a member that lost a partition must not write state or a window
// of it, and a partition it gets back must be restored at the first record it reads again.
func TestAggregateScaleOutPartitionsLostIntegration(t *testing.T) {
	b := sharedBroker(t)
	bin := sluiceBinary(t)
	const partitions, perPart = 4, 40_000
	topic := b.topic(t, partitions, nil)
	group := uniqueName(t, "agglost")
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	data := aggDataset(partitions, perPart, seed)
	want := aggExpect(data)
	g := &aggGroup{t: t, bin: bin, addr: b.addr, topic: topic, group: group}
	start := g.start
	a, bp := start("a"), start("b")
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(from, to int) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for p, in := range data {
			for i := from; i < to; i++ {
				r := in[i]
				v := fmt.Sprintf(`{"seq":%d,"commodity":%q,"price":%s,"ts":%d}`, i, r.commodity, strconv.FormatFloat(r.price, 'f', -1, 64), r.ts)
				cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte(v)}, nil)
			}
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, perPart/4)
	waitFor(t, 2*time.Minute, "windows from both processes", func() bool { return countLines(g.outs[0]) > 0 && countLines(g.outs[1]) > 0 })
	produce(perPart/4, perPart/2)
	time.Sleep(100 * time.Millisecond) // a is reading: records in flight
	logAtStop := a.logText()
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = a.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	produce(perPart/2, 3*perPart/4)
	waitFor(t, 2*time.Minute, "b to be given a's partitions", func() bool { return strings.Count(bp.logText(), "partitions assigned") >= 2 })
	time.Sleep(time.Second) // b restores and reads a's partitions
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	// Continued, a finds it was expelled: franz-go reports its partitions lost (or, when the
	// group's rebalance reaches it first, revoked), and a rejoins and is given partitions again.
	waitFor(t, 2*time.Minute, "a to rejoin the group", func() bool {
		txt := a.logText()[len(logAtStop):]
		return strings.Contains(txt, "partitions assigned")
	})
	t.Logf("a lost its partitions: %v", strings.Contains(a.logText()[len(logAtStop):], "partitions lost"))
	produce(3*perPart/4, 7*perPart/8)
	time.Sleep(time.Second)
	produce(7*perPart/8, perPart)
	waitFor(t, 3*time.Minute, "every closed window in the sinks", func() bool {
		if bp.exited() || a.exited() {
			t.Fatalf("a process exited:\nb:\n%s\na:\n%s", bp.logTail(), a.logTail())
		}
		seen := map[statsref.Window]bool{}
		for _, r := range readAggRows(t, g.outs...) {
			seen[statsref.Window{Key: r.Key, Start: r.WindowStart}] = true
		}
		for k := range want {
			if !seen[k] {
				return false
			}
		}
		return true
	})
	bp.terminate()
	a.terminate()
	got := readAggRows(t, g.outs...)
	dups := statsref.Check(t, got, want)
	for _, p := range []string{"a", "b"} {
		t.Logf("%s group events:\n%s", p, grepLines(readFileString(filepath.Join(g.dir, p+".log")), "partitions assigned", "partitions revoked", "partitions lost"))
	}
	t.Logf("%d windows expected, %d rows written, %d emitted again", len(want), len(got), dups)
}
