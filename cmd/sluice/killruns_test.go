package main_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
