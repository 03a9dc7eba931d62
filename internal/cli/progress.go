package cli

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

// The values of `sluice run --progress`.
const (
	progressAuto   = "auto"   // a status line when stderr is a terminal
	progressAlways = "always" // a status line even when it is not (a CI log that renders \r)
	progressNever  = "never"
)

// progressEvery is the least time between two redraws of the status line.
const progressEvery = 250 * time.Millisecond

// progressRuntime is what the status line reads; *supervisor.Supervisor is one.
type progressRuntime interface {
	Info() []supervisor.Info
	Progress() []supervisor.Progress
}

// progressLine is the live status line of `sluice run` on a terminal: records, rate, share
// delivered and ETA of the pipelines, redrawn in place at most every progressEvery while every
// pipeline's source knows its size. Logs go through Write, which clears the line, writes the log
// and draws the line again below it. Safe for concurrent use.
type progressLine struct {
	out     io.Writer
	enabled bool
	width   int

	mu    sync.Mutex
	shown string // the line on the screen now, "" for none
	first map[string]sample
	stopc chan struct{}
	done  chan struct{}
}

type sample struct {
	at   time.Time
	done int64
}

// newProgress returns the status line for mode on out (the process's stderr, fd its descriptor).
func newProgress(mode string, out io.Writer, fd uintptr) (*progressLine, error) {
	l := &progressLine{out: out, first: map[string]sample{}}
	switch mode {
	case progressNever:
	case progressAlways:
		l.enabled = true
	case progressAuto, "":
		l.enabled = fdIsTerminal(fd)
	default:
		return nil, fmt.Errorf("--progress %q: want auto (a status line when stderr is a terminal), always or never", mode)
	}
	l.width = fdColumns(fd)
	return l, nil
}

// newRunProgress is newProgress on the process's stderr.
func newRunProgress(mode string) (*progressLine, error) {
	return newProgress(mode, os.Stderr, os.Stderr.Fd())
}

// Write writes one log record above the status line.
func (l *progressLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shown == "" {
		return l.out.Write(p)
	}
	if _, err := io.WriteString(l.out, "\r\033[K"); err != nil {
		return 0, err
	}
	n, err := l.out.Write(p)
	if err == nil {
		_, _ = io.WriteString(l.out, l.shown)
	}
	return n, err
}

// start draws the line from rt until stop; it does nothing when the line is off.
func (l *progressLine) start(rt progressRuntime) {
	if !l.enabled {
		return
	}
	l.stopc, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-l.stopc:
				l.draw(rt, true)
				return
			case <-t.C:
				l.draw(rt, false)
			}
		}
	}()
}

// stop draws the line a last time (so its final state shows) and clears it.
func (l *progressLine) stop() {
	if l.stopc == nil {
		return
	}
	close(l.stopc)
	<-l.done
	l.stopc = nil
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shown != "" {
		_, _ = io.WriteString(l.out, "\r\033[K")
		l.shown = ""
	}
}

// draw renders the line and puts it on the screen, or clears it when a source does not know
// its size.
func (l *progressLine) draw(rt progressRuntime, last bool) {
	text := l.render(rt.Info(), rt.Progress(), time.Now())
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case text == "" && l.shown != "":
		_, _ = io.WriteString(l.out, "\r\033[K")
	case text != "" && (text != l.shown || last):
		_, _ = io.WriteString(l.out, "\r\033[K"+text)
	}
	l.shown = text
}

// render is the status line for the pipelines' counters and progress, "" unless every pipeline
// knows its source's size (or has finished).
func (l *progressLine) render(infos []supervisor.Info, progress []supervisor.Progress, now time.Time) string {
	if len(infos) == 0 {
		return ""
	}
	byName := map[string]supervisor.Progress{}
	for _, p := range progress {
		byName[p.Name] = p
	}
	var records, rate float64
	share, eta := 0.0, time.Duration(0)
	etaKnown := true
	for _, in := range infos {
		records += in.In
		rate += in.InPerSecond
		p := byName[in.Name]
		var f float64
		switch {
		case in.State == pipeline.StateFinished:
			f = 1
		case !p.Known:
			return ""
		case p.Total == 0:
			f = 1
		default:
			f = float64(p.Done) / float64(p.Total)
			first, seen := l.first[in.Name]
			if !seen {
				l.first[in.Name] = sample{now, p.Done}
				etaKnown = false
				break
			}
			moved, took := p.Done-first.done, now.Sub(first.at)
			if moved <= 0 || took <= 0 {
				etaKnown = false
				break
			}
			eta = max(eta, time.Duration(float64(p.Total-p.Done)/float64(moved)*float64(took)))
		}
		share += f
	}
	share /= float64(len(infos))
	name := infos[0].Name
	if len(infos) > 1 {
		name = fmt.Sprintf("%d pipelines", len(infos))
	}
	pct := math.Floor(share * 100)
	parts := []string{name, groupThousands(int64(records)) + " records", groupThousands(int64(rate)) + "/s", fmt.Sprintf("%.0f%%", pct)}
	switch {
	case share >= 1:
	case etaKnown:
		parts = append(parts, "ETA "+eta.Round(time.Second).String())
	default:
		parts = append(parts, "ETA ?")
	}
	text := strings.Join(parts, " · ")
	if r := []rune(text); l.width > 1 && len(r) >= l.width {
		text = string(r[:l.width-1])
	}
	return text
}

// groupThousands writes n with thin separators: 1,234,567.
func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
