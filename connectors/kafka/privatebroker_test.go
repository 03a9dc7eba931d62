package kafka

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/testenv"
)

// privateBroker is a single-node Kafka (KRaft) of a test's own, started from the jars that
// `make services` resolved, on free ports and a data dir of its own, so a test may stop and
// restart it without touching the shared broker. Besides PLAINTEXT it has a SASL_PLAINTEXT
// listener with the users saslUser (PLAIN) and saslUser's SCRAM-SHA-256/512 credentials, and an
// SSL listener whose certificate a CA of the test's own (caFile) signed.
type privateBroker struct {
	t                             testing.TB
	lib, dir                      string
	port, saslPort, tlsPort, ctrl int
	mtlsPort                      int    // an SSL listener that requires a client certificate
	caFile                        string // the CA that signed the TLS listener's certificate
	clientCert, clientKey         string // a client certificate the CA signed, and its key
	cmd                           *exec.Cmd
	exited                        chan struct{}
}

const (
	saslUser     = "alice"
	saslPassword = "alice-secret"
)

// startPrivateBroker starts a private broker; it is stopped when the test ends.
func startPrivateBroker(t testing.TB) *privateBroker {
	t.Helper()
	svc := testenv.Require(t, "SLUICE_SERVICES_DIR")
	lib := filepath.Join(svc, "kafka", "lib")
	if _, err := os.Stat(filepath.Join(lib, ".stamp")); err != nil {
		t.Fatalf("no Kafka jars in %s (run `make services`): %v", lib, err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatalf("java is not on PATH (`make services` installs it): %v", err)
	}
	ports := freePorts(t, 5)
	b := &privateBroker{t: t, lib: lib, dir: t.TempDir(), port: ports[0], saslPort: ports[1], ctrl: ports[2], tlsPort: ports[3], mtlsPort: ports[4]}
	keystore := b.writeCerts()
	props := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[3]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,SASL_PLAINTEXT://127.0.0.1:%[2]d,SSL://127.0.0.1:%[7]d,MTLS://127.0.0.1:%[9]d,CONTROLLER://127.0.0.1:%[3]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d,SASL_PLAINTEXT://127.0.0.1:%[2]d,SSL://127.0.0.1:%[7]d,MTLS://127.0.0.1:%[9]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL
ssl.keystore.type=PEM
ssl.keystore.location=%[8]s
listener.name.mtls.ssl.keystore.type=PEM
listener.name.mtls.ssl.keystore.location=%[8]s
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.location=%[10]s
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_%[5]s="%[6]s";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=%[4]s
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
`, b.port, b.saslPort, b.ctrl, filepath.Join(b.dir, "data"), saslUser, saslPassword, b.tlsPort, keystore, b.mtlsPort, b.caFile)
	if err := os.WriteFile(filepath.Join(b.dir, "server.properties"), []byte(props), 0o644); err != nil {
		t.Fatal(err)
	}
	log4j := "appender.c.type=Console\nappender.c.name=C\nappender.c.layout.type=PatternLayout\nappender.c.layout.pattern=[%d] %p %m (%c)%n\nrootLogger.level=warn\nrootLogger.appenderRef.c.ref=C\n"
	if err := os.WriteFile(filepath.Join(b.dir, "log4j2.properties"), []byte(log4j), 0o644); err != nil {
		t.Fatal(err)
	}
	format := b.java("kafka.tools.StorageTool", "format", "-t", "c2x1aWNlLXByaXZhdGUtaw", "-c", filepath.Join(b.dir, "server.properties"), "--ignore-formatted")
	if out, err := format.CombinedOutput(); err != nil {
		t.Fatalf("format the private broker's log dir: %v\n%s", err, out)
	}
	b.start()
	t.Cleanup(b.stop)
	// SCRAM credentials live in the cluster metadata: create them once it is up.
	adm := kadm.NewClient(b.client(t))
	ctx := testContext(t, time.Minute)
	for _, mech := range []kadm.ScramMechanism{kadm.ScramSha256, kadm.ScramSha512} {
		// One request per mechanism: the broker refuses two upserts of one user in a request.
		res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: saslUser, Mechanism: mech, Iterations: 4096, Password: saslPassword}})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("create the SCRAM user (%v): %v", mech, err)
		}
	}
	return b
}

func (b *privateBroker) java(args ...string) *exec.Cmd {
	cmd := exec.Command("java", append([]string{"-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + filepath.Join(b.dir, "log4j2.properties"),
		"-cp", filepath.Join(b.lib, "*")}, args...)...)
	cmd.Dir = b.dir
	return cmd
}

// addr is the PLAINTEXT listener; saslAddr the SASL_PLAINTEXT one, tlsAddr the SSL one.
func (b *privateBroker) addr() string     { return fmt.Sprintf("127.0.0.1:%d", b.port) }
func (b *privateBroker) saslAddr() string { return fmt.Sprintf("127.0.0.1:%d", b.saslPort) }
func (b *privateBroker) tlsAddr() string  { return fmt.Sprintf("127.0.0.1:%d", b.tlsPort) }

// mtlsAddr is the SSL listener that requires a client certificate signed by the test's CA.
func (b *privateBroker) mtlsAddr() string { return fmt.Sprintf("127.0.0.1:%d", b.mtlsPort) }

// writeCerts makes a CA, a server certificate for 127.0.0.1 and a client certificate signed by
// it (testenv.Certs), notes the CA and the client's files, and returns the broker's PEM keystore.
func (b *privateBroker) writeCerts() string {
	c := testenv.Certs(b.t, b.dir)
	b.caFile, b.clientCert, b.clientKey = c.CA, c.ClientCert, c.ClientKey
	return c.Keystore
}

// start starts the broker process and waits until it answers.
func (b *privateBroker) start() {
	b.t.Helper()
	begin := time.Now()
	defer func() { b.t.Logf("private broker on %s up in %s", b.addr(), time.Since(begin).Round(time.Millisecond)) }()
	log, err := os.OpenFile(filepath.Join(b.dir, "kafka.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatal(err)
	}
	b.cmd = b.java("kafka.Kafka", filepath.Join(b.dir, "server.properties"))
	b.cmd.Stdout, b.cmd.Stderr = log, log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start the private broker: %v", err)
	}
	log.Close()
	b.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(b.cmd, b.exited)
	b.waitReady()
}

// waitReady waits until the broker serves metadata with itself as a broker.
func (b *privateBroker) waitReady() {
	b.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-b.exited:
			out, _ := os.ReadFile(filepath.Join(b.dir, "kafka.log"))
			b.t.Fatalf("the private broker exited while starting:\n%s", tail(string(out), 40))
		default:
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr()))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = kadm.NewClient(cl).BrokerMetadata(ctx)
			cancel()
			cl.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(b.dir, "kafka.log"))
			b.t.Fatalf("the private broker did not answer within 2 minutes (%v):\n%s", err, tail(string(out), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop stops the broker (SIGTERM, then SIGKILL after 30s) and waits for it to exit.
func (b *privateBroker) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
	}
	b.cmd = nil
}

// client is a PLAINTEXT client of the private broker, closed when the test ends.
func (b *privateBroker) client(t testing.TB) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr()), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// freePorts returns n TCP ports free on the loopback interface right now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
