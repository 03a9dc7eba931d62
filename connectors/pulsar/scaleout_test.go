package pulsar

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Settings of the process tests. The buffer is small enough for the duplicate bounds to mean
// something.
const (
	procBuffer = 10_000 // buffer.max_records
	procBatch  = 1_024  // the engine's default batch
	procQueue  = 1_000  // receiver_queue_size: the most one Read returns
	procSpec   = "  buffer: {max_records: 10000}\n"
)

// producePaced sends n seqMessage records in chunks with a pause between them, so that the
// processes see a stream rather than one burst. It returns what was sent once it is all
// persisted, on the channel.
func (b broker) producePaced(t *testing.T, topic string, n, chunks int, pause time.Duration) <-chan []sent {
	t.Helper()
	all := make([]sent, n)
	return b.produceRange(t, topic, all, 0, n, chunks, pause)
}

// produceRange sends the seqMessage records from..to-1 into all[from:to], in chunks with a pause
// between them, and passes all on once they are persisted.
func (b broker) produceRange(t *testing.T, topic string, all []sent, from, to, chunks int, pause time.Duration) <-chan []sent {
	t.Helper()
	out := make(chan []sent, 1)
	p, err := b.client.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: 5 * time.Millisecond,
		MaxPendingMessages: 10000, SendTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("create producer: %v", err)
	}
	go func() {
		defer p.Close()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failed error
		per := (to - from + chunks - 1) / chunks
		for i := from; i < to; {
			for end := min(to, i+per); i < end; i++ {
				m, idx := seqMessage(i), i
				all[i] = sent{value: string(m.Payload), key: m.Key}
				wg.Add(1)
				p.SendAsync(context.Background(), m, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					defer wg.Done()
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed = err
						return
					}
					all[idx].id, all[idx].partition = id, id.PartitionIdx()
				})
			}
			_ = p.Flush()
			time.Sleep(pause)
		}
		wg.Wait()
		if failed != nil {
			t.Errorf("produce: %v", failed)
		}
		out <- all
	}()
	return out
}

func pulsarSource(b broker, topic, sub, typ string) string {
	return fmt.Sprintf("{type: pulsar, config: {url: %q, admin_url: %q, topics: [%q], subscription: %s, subscription_type: %s, receiver_queue_size: %d}}",
		b.url, b.admin, topic, sub, typ, procQueue)
}

// dupBoundShared is how many records a process of a shared subscription killed with kill -9 may
// leave to be delivered again by the other (runtime/RATIONALE.md, Pulsar): what it wrote to its
// sink and had not acknowledged. That is at most the records in its pipeline (the buffer), those
// released since its last checkpoint (up to another buffer's worth while one commit runs), what
// its reader holds outside the budget (a read and the batch being filled), the acks its client
// had not sent yet (up to 1,000 per partition consumer), and the acknowledged part of the one
// producer batch per partition it held partly acknowledged (up to 1,000 messages).
const dupBoundShared = 2*procBuffer + procQueue + procBatch + 4*1_000 + 4*1_000

// TestScaleOutSharedIntegration runs three `sluice run` processes on one shared subscription of a
// 4-partition topic while 200,000 records are produced; one is killed with kill -9 halfway and
// another stopped with SIGTERM at three quarters: every record must reach the file sinks;
// duplicates are counted and bounded by what one kill may leave (the stop drains and acks).
func TestScaleOutSharedIntegration(t *testing.T) {
	b := needBroker(t)
	bin := sluiceBinary(t)
	const n = 200_000
	topic := uniqueTopic(t, "scale")
	b.createPartitioned(t, topic, 4)
	dir := t.TempDir()
	var procs []*proc
	var outs []string
	for i := range 3 {
		name := fmt.Sprintf("p%d", i+1)
		out := filepath.Join(dir, name+".jsonl")
		outs = append(outs, out)
		m := writeManifest(t, filepath.Join(dir, name+".yaml"), "scale", pulsarSource(b, topic, "scale", "shared"), fileSink(out), procSpec)
		procs = append(procs, startSluice(t, bin, dir, name, m))
	}
	for _, p := range procs {
		waitFor(t, 2*time.Minute, p.name+" ready", func() bool {
			p.alive()
			code, _ := p.readyz()
			return code == 200
		})
	}
	produced := b.producePaced(t, topic, n, 100, 20*time.Millisecond) // a steady stream: the kill lands while records are in flight
	lines := func() int { return countLines(outs[0]) + countLines(outs[1]) + countLines(outs[2]) }
	delivered := func() []int {
		return append(append(readSeqs(t, outs[0]), readSeqs(t, outs[1])...), readSeqs(t, outs[2])...)
	}
	waitFor(t, 3*time.Minute, "half the records delivered, some by p1", func() bool {
		for _, p := range procs {
			p.alive()
		}
		return lines() >= n/2 && countLines(outs[0]) > 0
	})
	procs[0].kill()
	t.Logf("killed p1 (kill -9) at %d lines (p1 %d, p2 %d, p3 %d)", lines(), countLines(outs[0]), countLines(outs[1]), countLines(outs[2]))
	waitFor(t, 3*time.Minute, "three quarters of the records delivered", func() bool {
		procs[1].alive()
		procs[2].alive()
		return lines() >= 3*n/4
	})
	procs[1].terminate()
	t.Logf("stopped p2 (SIGTERM) at %d lines", lines())
	sentRecs := <-produced
	t.Logf("all produced at %d lines", lines())
	waitFor(t, 3*time.Minute, "every record in the sinks", func() bool {
		procs[2].alive()
		if lines() < n {
			return false
		}
		return checkDelivery(sentRecs, delivered()).missing == 0
	})
	procs[2].terminate()
	d := checkDelivery(sentRecs, delivered())
	msg := fmt.Sprintf("pulsar scale-out: 3 processes on a shared subscription, 4 partitions, %d records: %d missing, %d duplicates after one kill -9 and one SIGTERM (bound %d)",
		n, d.missing, d.duplicates, dupBoundShared)
	t.Log(msg)
	fmt.Println(msg)
	if d.missing > 0 {
		t.Fatalf("%d records missing", d.missing)
	}
	if d.duplicates > dupBoundShared {
		t.Fatalf("%d duplicates, more than the bound of %d", d.duplicates, dupBoundShared)
	}
}

// dupBoundFailover is how many records one kill -9 of a failover consumer may deliver twice:
// only what its sink wrote and the engine had not checkpointed (the messages checkpointed and not
// yet acknowledged are skipped on restart), which is at most the buffer, another buffer released
// while a commit runs, and what the reader holds outside the budget.
const dupBoundFailover = 2*procBuffer + procQueue + procBatch

// TestKillNineFiveTimesPulsarToPulsarIntegration kills one `sluice run` (Pulsar → Pulsar) with
// kill -9 five times while records stream through it, restarting it each time: the output topic
// must end with every record.
func TestKillNineFiveTimesPulsarToPulsarIntegration(t *testing.T) {
	b := needBroker(t)
	bin := sluiceBinary(t)
	const n, kills = 100_000, 5
	in, out := uniqueTopic(t, "p2p-in"), uniqueTopic(t, "p2p-out")
	b.createPartitioned(t, in, 2)
	b.createPartitioned(t, out, 2)
	dir := t.TempDir()
	m := writeManifest(t, filepath.Join(dir, "p2p.yaml"), "p2p", pulsarSource(b, in, "p2p", "failover"),
		fmt.Sprintf("    - {name: out, type: pulsar, config: {url: %q, topic: %q}}\n", b.url, out), procSpec)

	// The output topic, read as it fills.
	var mu sync.Mutex
	var got []int
	cons, err := b.client.Subscribe(pulsar.ConsumerOptions{Topic: out, SubscriptionName: "check", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	go func() {
		for cm := range cons.Chan() {
			if s, ok := seqOf(cm.Payload()); ok {
				mu.Lock()
				got = append(got, s)
				mu.Unlock()
			}
			_ = cons.Ack(cm.Message)
		}
	}()
	outCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}

	p := startSluice(t, bin, dir, "p2p", m)
	// One chunk of input per kill, paced over about a second; the kill lands once a third of it
	// is in the output: while the chunk still streams in, and never after the input ran out,
	// however fast or slow the machine.
	sentRecs, chunk := make([]sent, n), n/(kills+1)
	for k := range kills {
		base := outCount()
		produced := b.produceRange(t, in, sentRecs, k*chunk, (k+1)*chunk, 20, 50*time.Millisecond)
		waitFor(t, 2*time.Minute, fmt.Sprintf("records flowing before kill %d", k+1), func() bool {
			p.alive()
			return outCount() >= base+chunk/3
		})
		p.kill()
		t.Logf("kill -9 number %d with %d messages in the output topic", k+1, outCount())
		p = startSluice(t, bin, dir, "p2p", m)
		<-produced
	}
	<-b.produceRange(t, in, sentRecs, kills*chunk, n, 20, 50*time.Millisecond)
	var d delivery
	waitFor(t, 3*time.Minute, "every record in the output topic", func() bool {
		p.alive()
		mu.Lock()
		d = checkDelivery(sentRecs, append([]int(nil), got...))
		mu.Unlock()
		return d.missing == 0
	})
	p.terminate()
	msg := fmt.Sprintf("pulsar → pulsar: %d records, %d kill -9: %d missing, %d duplicates (bound %d per kill)", n, kills, d.missing, d.duplicates, dupBoundFailover)
	t.Log(msg)
	fmt.Println(msg)
	if d.duplicates > kills*dupBoundFailover {
		t.Fatalf("%d duplicates, more than %d kills × %d", d.duplicates, kills, dupBoundFailover)
	}
}

// proxy forwards TCP connections from a port to the broker, started on demand: the broker is
// "unreachable" until it starts.
type proxy struct {
	l  net.Listener
	wg sync.WaitGroup
}

func startProxy(t *testing.T, port int, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &proxy{l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	return p
}

// TestUnreachableBrokerIntegration starts `sluice run` against an address where nothing listens
// yet: the log says the cluster cannot be reached, /readyz answers 503, the runtime retries Open;
// once the address forwards to the broker, the pipeline gets ready and delivers.
func TestUnreachableBrokerIntegration(t *testing.T) {
	b := needBroker(t)
	bin := sluiceBinary(t)
	port := freePort(t)
	url := fmt.Sprintf("pulsar://127.0.0.1:%d", port)
	topic := uniqueTopic(t, "unreach")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	m := writeManifest(t, filepath.Join(dir, "u.yaml"), "unreachable",
		fmt.Sprintf("{type: pulsar, config: {url: %q, topics: [%q], subscription: s, operation_timeout: 3s, connection_timeout: 1s}}", url, topic),
		fileSink(out), "")
	p := startSluice(t, bin, dir, "u", m)
	want := "cannot reach the Pulsar cluster at " + url
	waitFor(t, time.Minute, "the log to say the cluster cannot be reached", func() bool {
		p.alive()
		return strings.Contains(p.logText(), want)
	})
	if code, body := p.readyz(); code != 503 {
		t.Fatalf("/readyz = %d %q while the broker is unreachable; want 503", code, body)
	}
	t.Logf("while unreachable: %s", grepLine(p.logText(), want))
	startProxy(t, port, strings.TrimPrefix(b.url, "pulsar://"))
	waitFor(t, 2*time.Minute, "/readyz 200 once the broker is reachable", func() bool {
		p.alive()
		code, _ := p.readyz()
		return code == 200
	})
	b.produce(t, topic, 100, seqMessage)
	waitFor(t, time.Minute, "the records in the file", func() bool { p.alive(); return countLines(out) >= 100 })
	p.terminate()
}

func grepLine(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
