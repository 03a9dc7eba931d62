package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The run's private servers: a Kafka broker, a PostgreSQL server and a Redis server of its own,
// on free ports and in its work directory, so that stopping them (the faults) never touches the
// services other tests share. They come from what `make services` installs: the Kafka jars under
// SLUICE_SERVICES_DIR/kafka/lib, the Debian PostgreSQL binaries, redis-server.

// freePorts returns n TCP ports free on the loopback interface right now.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tailFile(path string, lines int) string {
	b, _ := os.ReadFile(path)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// broker is a single-node Kafka (KRaft) on one PLAINTEXT port, restartable on the same port and
// log directory.
type broker struct {
	lib, dir   string
	port, ctrl int
	cmd        *exec.Cmd
	exited     chan struct{}
}

func startBroker(ctx context.Context, servicesDir, dir string) (*broker, error) {
	lib := filepath.Join(servicesDir, "kafka", "lib")
	if _, err := os.Stat(filepath.Join(lib, ".stamp")); err != nil {
		return nil, fmt.Errorf("no Kafka jars in %s (run `make services`, or set SLUICE_SERVICES_DIR): %w", lib, err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return nil, fmt.Errorf("java is not on PATH (`make services` installs it): %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	b := &broker{lib: lib, dir: dir, port: ports[0], ctrl: ports[1]}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	props := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=%[3]s
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
`, b.port, b.ctrl, filepath.Join(dir, "data"))
	if err := os.WriteFile(filepath.Join(dir, "server.properties"), []byte(props), 0o644); err != nil {
		return nil, err
	}
	log4j := "appender.c.type=Console\nappender.c.name=C\nappender.c.layout.type=PatternLayout\nappender.c.layout.pattern=[%d] %p %m (%c)%n\nrootLogger.level=warn\nrootLogger.appenderRef.c.ref=C\n"
	if err := os.WriteFile(filepath.Join(dir, "log4j2.properties"), []byte(log4j), 0o644); err != nil {
		return nil, err
	}
	if out, err := b.java("kafka.tools.StorageTool", "format", "-t", "c2x1aWNlLWUyZS1rYWZrYQ", "-c", filepath.Join(dir, "server.properties"), "--ignore-formatted").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("format the private broker's log dir: %w\n%s", err, out)
	}
	return b, b.start(ctx)
}

func (b *broker) java(args ...string) *exec.Cmd {
	cmd := exec.Command("java", append([]string{"-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + filepath.Join(b.dir, "log4j2.properties"),
		"-cp", filepath.Join(b.lib, "*")}, args...)...)
	cmd.Dir = b.dir
	return cmd
}

func (b *broker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// start starts the broker and waits until it serves metadata.
func (b *broker) start(ctx context.Context) error {
	log, err := os.OpenFile(filepath.Join(b.dir, "kafka.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	b.cmd = b.java("kafka.Kafka", filepath.Join(b.dir, "server.properties"))
	b.cmd.Stdout, b.cmd.Stderr = log, log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		return fmt.Errorf("start the private broker: %w", err)
	}
	b.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(b.cmd, b.exited)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		select {
		case <-b.exited:
			return fmt.Errorf("the private broker exited while starting:\n%s", tailFile(filepath.Join(b.dir, "kafka.log"), 40))
		default:
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr()))
		if err == nil {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = kadm.NewClient(cl).BrokerMetadata(c)
			cancel()
			cl.Close()
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("the private broker did not answer within 3 minutes (%v):\n%s", err, tailFile(filepath.Join(b.dir, "kafka.log"), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop stops the broker (SIGTERM, SIGKILL after 60 s) and waits for it to exit.
func (b *broker) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
	}
	b.cmd = nil
}

// postgres is a PostgreSQL server of the run's own, whose superuser postgres logs in without a
// password over TCP on the loopback interface.
type postgres struct {
	bin, dir string
	port     int
	moved    string // the directory asked for, when the postgres user could not write it (dir is then a temporary one)
}

// remove removes the server's files when they went to a temporary directory.
func (p *postgres) remove() {
	if p.moved != "" {
		_ = os.RemoveAll(p.dir)
	}
}

func startPostgres(dir string) (*postgres, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return nil, errors.New("initdb is not installed (apt-get install postgresql; `make services` installs it)")
	}
	sort.Strings(bins)
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	p := &postgres{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, port: ports[0]}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root: its files belong to postgres
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, but there is no user postgres to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		if !postgresCanWrite(dir) {
			// A parent of dir is closed to the postgres user (a checkout under a private home
			// directory): the server's files go to a directory of their own under the system's
			// temporary directory instead, removed at the end.
			alt, err := os.MkdirTemp("", "sluice-e2e-postgres-")
			if err != nil {
				return nil, err
			}
			if err := os.Chmod(alt, 0o755); err != nil {
				return nil, err
			}
			if err := os.Chown(alt, uid, gid); err != nil {
				return nil, err
			}
			if !postgresCanWrite(alt) {
				return nil, fmt.Errorf("the postgres user can write neither %s (is every parent directory searchable by others?) nor %s", dir, alt)
			}
			p.moved, p.dir = dir, alt
		}
	}
	if out, err := p.command("initdb", "-D", p.data(), "-U", "postgres", "-E", "UTF8", "--no-sync", "--auth=trust").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return p, p.start()
}

// postgresCanWrite reports whether the postgres user can write dir (and so reach it through
// every parent).
func postgresCanWrite(dir string) bool {
	return exec.Command("runuser", "-u", "postgres", "--", "test", "-w", dir).Run() == nil
}

func (p *postgres) data() string { return filepath.Join(p.dir, "data") }

func (p *postgres) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

func (p *postgres) start() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off "+
		"-c full_page_writes=off -c shared_buffers=32MB -c max_connections=40", p.port, p.dir)
	if out, err := p.command("pg_ctl", "-D", p.data(), "start", "-w", "-t", "120", "-l", filepath.Join(p.dir, "log"), "-o", opts).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, tailFile(filepath.Join(p.dir, "log"), 20))
	}
	return nil
}

// stop stops the server with a fast shutdown (sessions are ended, nothing is waited for).
func (p *postgres) stop() error {
	if out, err := p.command("pg_ctl", "-D", p.data(), "stop", "-w", "-m", "fast").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

func (p *postgres) kill() {
	_, _ = p.command("pg_ctl", "-D", p.data(), "stop", "-m", "immediate").CombinedOutput()
}

func (p *postgres) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// redisServer is a redis-server of the run's own, without persistence.
type redisServer struct {
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not on PATH (apt-get install redis-server; `make services` installs it): %w", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &redisServer{port: ports[0], exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	rdb := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer rdb.Close()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err = rdb.Ping(ctx).Err(); err == nil {
			return r, nil
		}
		select {
		case <-r.exited:
			return nil, fmt.Errorf("redis-server exited while starting:\n%s", tailFile(filepath.Join(dir, "redis.log"), 20))
		default:
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("redis-server did not answer within 30 s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *redisServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

func (r *redisServer) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}
