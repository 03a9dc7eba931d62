package pulsar

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// sluiceBinary builds ./cmd/sluice once per test run.
func sluiceBinary(t testing.TB) string {
	t.Helper()
	if raceEnabled {
		t.Skip("runs sluice processes, built without the race detector; it runs in the plain test pass")
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if buildDir, buildErr = os.MkdirTemp("", "sluice-pulsar-test-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "sluice")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sluice")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running `sluice run`.
type proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	log    string
	admin  string
	done   chan struct{}
	exitOK bool
}

// startSluice runs `sluice run manifest` with the data dir dir/name-data, its log in
// dir/name.log and an admin server on a free port. The process is killed when the test ends.
func startSluice(t testing.TB, bin, dir, name, manifest string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, log: filepath.Join(dir, name+".log"), admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)), done: make(chan struct{})}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, "run", "--data-dir", filepath.Join(dir, name+"-data"), "--admin-addr", p.admin, "--log-level", "info", manifest)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.exitOK = err == nil
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// terminate sends SIGTERM and waits (up to a minute) for a clean exit.
func (p *proc) terminate() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		p.kill()
		p.t.Fatalf("%s did not stop within a minute of SIGTERM:\n%s", p.name, p.logTail())
	}
	if !p.exitOK {
		p.t.Fatalf("%s exited with an error after SIGTERM:\n%s", p.name, p.logTail())
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func (p *proc) logTail() string {
	ls := strings.Split(strings.TrimRight(p.logText(), "\n"), "\n")
	if len(ls) > 30 {
		ls = ls[len(ls)-30:]
	}
	return strings.Join(ls, "\n")
}

// readyz returns the status code and body of /readyz, or 0 when the admin server does not answer.
func (p *proc) readyz() (int, string) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + p.admin + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(b.String())
}

// alive fails the test when the process has exited.
func (p *proc) alive() {
	p.t.Helper()
	if p.exited() {
		p.t.Fatalf("%s exited:\n%s", p.name, p.logTail())
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 50 ms until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeManifest writes a one-pipeline manifest: source and sinks as YAML flow mappings, extra
// lines of spec (buffer, batch) as given.
func writeManifest(t testing.TB, path, name, source, sinks, extra string) string {
	t.Helper()
	y := "apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: " + name + "}\nspec:\n  source: " + source + "\n  sinks:\n" + sinks + extra
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fileSink is the sinks line of a manifest writing to path.
func fileSink(path string) string {
	return fmt.Sprintf("    - {name: out, type: file, config: {path: %q}}\n", path)
}
