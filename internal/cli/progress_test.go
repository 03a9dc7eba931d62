package cli

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

// fakeProgress is a pipeline whose source moves on by a tenth at each reading.
type fakeProgress struct {
	mu    sync.Mutex
	done  int64
	known bool
}

func (f *fakeProgress) Info() []supervisor.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []supervisor.Info{{Status: supervisor.Status{Name: "p", Status: pipeline.Status{State: pipeline.StateRunning}},
		Counts: supervisor.Counts{In: float64(f.done * 100)}, InPerSecond: 1234}}
}

func (f *fakeProgress) Progress() []supervisor.Progress {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = min(f.done+1, 10)
	return []supervisor.Progress{{Name: "p", Known: f.known, Done: f.done, Total: 10}}
}

// The line is drawn in place, logs written meanwhile land on lines of their own with the line
// drawn again after them, and stop leaves the screen clear; a source that does not know its size
// draws nothing.
func TestProgressLineDrawsAroundLogs(t *testing.T) {
	out := &testenv.Buffer{}
	l, err := newProgress(progressAlways, out, ^uintptr(0))
	if err != nil {
		t.Fatal(err)
	}
	rt := &fakeProgress{known: true}
	l.start(rt)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "p · ") {
		if time.Now().After(deadline) {
			t.Fatalf("no line drawn: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := l.Write([]byte("level=INFO msg=hello\n")); err != nil {
		t.Fatal(err)
	}
	l.stop()
	s := out.String()
	i := strings.Index(s, "level=INFO msg=hello\n")
	if i < 0 || !strings.HasSuffix(s[:i], "\r\x1b[K") || !strings.HasPrefix(s[i+len("level=INFO msg=hello\n"):], "p · ") {
		t.Fatalf("the log is not written on a cleared line with the status line after it: %q", s)
	}
	if !strings.HasSuffix(s, "\r\x1b[K") {
		t.Fatalf("stop did not clear the line: %q", s)
	}
	if !strings.Contains(s, "1,234/s") || !strings.Contains(s, "%") {
		t.Fatalf("line without rate or share: %q", s)
	}

	out2 := &testenv.Buffer{}
	l2, _ := newProgress(progressAlways, out2, ^uintptr(0))
	l2.start(&fakeProgress{known: false})
	time.Sleep(3 * progressEvery)
	_, _ = l2.Write([]byte("log\n"))
	l2.stop()
	if got := out2.String(); got != "log\n" {
		t.Fatalf("an unknown size drew %q, want the log alone", got)
	}
	if _, err := newProgress("sometimes", out2, 0); err == nil || !strings.Contains(err.Error(), "auto") {
		t.Fatalf("a bad mode: %v", err)
	}
	if l3, _ := newProgress(progressAuto, out2, ^uintptr(0)); l3.enabled {
		t.Fatal("auto draws on a descriptor that is no terminal")
	}
}
