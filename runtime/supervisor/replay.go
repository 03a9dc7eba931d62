package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// MaxReplay bounds the dead letters one replay takes.
const MaxReplay = 10000

// Errors of ReplayDeadLetters, besides ErrUnknownPipeline, ErrNotRunning and ErrNoDeadLetterFile.
var (
	// ErrAlreadyReplayed: a selected dead letter was replayed before (set Force to replay it again).
	ErrAlreadyReplayed = errors.New("already replayed")
	// ErrBadReplaySelection: the selection names no dead letter, or one the file does not hold.
	ErrBadReplaySelection = errors.New("bad replay selection")
	// ErrReplayUnsupported: the pipeline's configuration does not allow a replay.
	ErrReplayUnsupported = errors.New("replay not supported")
)

// ReplaySelection says which dead letters of a pipeline's dead-letter file a replay takes, by
// their index in the file (0 for the first line, as the admin API's browse numbers them).
type ReplaySelection struct {
	// Indexes are the dead letters to replay; ignored with All.
	Indexes []int
	// All takes every dead letter of the pipeline not replayed yet (every one, with Force).
	All bool
	// Force replays dead letters that were replayed before.
	Force bool
}

// ReplayResult is what a replay did.
type ReplayResult struct {
	Pipeline string `json:"pipeline"`
	File     string `json:"file"`
	// Replay identifies the replay; the marks of the replayed dead letters name it.
	Replay string `json:"replay"`
	// Selected is the number of dead letters selected; Replayed those fed into the pipeline and
	// delivered (to the sinks, or to the dead letters again); Delivered those that went through
	// without going to the dead letters again (a transform may still drop one knowingly);
	// DeadLettered those that went to the dead letters again, with their new reasons, at the
	// indexes NewDeadLetters; NotDelivered those fed in whose delivery the run did not finish
	// (they are not marked and can be replayed again).
	Selected       int             `json:"selected"`
	Replayed       int             `json:"replayed"`
	Delivered      int             `json:"delivered"`
	DeadLettered   int             `json:"dead_lettered"`
	NotDelivered   int             `json:"not_delivered"`
	NewDeadLetters []int           `json:"new_dead_letters"`
	Skipped        []SkippedLetter `json:"skipped"`
	// Error is why the replay run failed, when it did.
	Error string `json:"error,omitempty"`
}

// SkippedLetter is a selected dead letter the replay left alone, and why.
type SkippedLetter struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// ReplayMark is the record of one replayed dead letter, kept in the dead-letter file's replay
// index (ReplayIndexPath).
type ReplayMark struct {
	Index int `json:"index"`
	// SHA256 is the digest of the dead letter's line, so that a mark never applies to another
	// letter at the same index (a file rotated or cut).
	SHA256 string    `json:"sha256"`
	Replay string    `json:"replay"`
	At     time.Time `json:"at"`
	// Outcome is "delivered" or "dead_lettered"; DeadLetter is, for the latter, the index of the
	// new dead letter.
	Outcome    string `json:"outcome"`
	DeadLetter *int   `json:"dead_letter,omitempty"`
}

// ReplayIndexPath is the file that records which dead letters of the dead-letter file path were
// replayed: one JSON ReplayMark per line.
func ReplayIndexPath(path string) string { return path + ".replayed" }

// ReplayMarks reads the replay index of the dead-letter file path: the marks by index that
// still match their dead letter's line (lines[i] is the i-th line, without its newline; a mark
// whose digest differs is ignored). A missing index holds no marks.
func ReplayMarks(path string, lines func(index int) ([]byte, bool)) (map[int]ReplayMark, error) {
	f, err := os.Open(ReplayIndexPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return map[int]ReplayMark{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replay index: %w", err)
	}
	defer f.Close()
	out := map[int]ReplayMark{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var mk ReplayMark
		if json.Unmarshal(sc.Bytes(), &mk) != nil {
			continue // a torn last line of a crash: its replay is not marked
		}
		if line, ok := lines(mk.Index); ok && lineDigest(line) == mk.SHA256 {
			out[mk.Index] = mk
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("replay index: read: %w", err)
	}
	return out, nil
}

func lineDigest(line []byte) string {
	h := sha256.Sum256(bytes.TrimSpace(line))
	return hex.EncodeToString(h[:16])
}

// replayJob is a replay waiting for its pipeline's loop, which runs it between two runs.
type replayJob struct {
	sel     ReplaySelection
	started atomic.Bool
	res     ReplayResult
	err     error
	done    chan struct{}
}

// ReplayDeadLetters feeds the selected dead letters of the named pipeline's file dead-letter
// sink back into the pipeline: the pipeline's current run is drained and checkpointed (as by
// Restart), the records run once through the pipeline's own transforms and sinks, from the
// stage that refused them (see RATIONALE.md), and the pipeline then runs again. A record
// refused again goes to the dead letters again with its new reason. The replayed letters are
// marked in the replay index (ReplayIndexPath) once delivered; selecting a marked letter fails
// with ErrAlreadyReplayed unless Force. A paused pipeline replays too and stays paused.
//
// It returns when the replay is done, or with ctx's error when ctx ends first (the replay then
// still completes and is marked). It fails with ErrUnknownPipeline, ErrNoDeadLetterFile,
// ErrReplayUnsupported, ErrNotRunning (Run is not running), ErrBadReplaySelection or
// ErrAlreadyReplayed. Safe for concurrent use: replays of one pipeline run one after another.
func (s *Supervisor) ReplayDeadLetters(ctx context.Context, name string, sel ReplaySelection) (ReplayResult, error) {
	m, err := s.lookup(name)
	if err != nil {
		return ReplayResult{}, err
	}
	if _, err := s.DeadLetterFile(name); err != nil {
		return ReplayResult{}, err
	}
	if err := replayable(m.cfg); err != nil {
		return ReplayResult{}, err
	}
	if !sel.All && len(sel.Indexes) == 0 {
		return ReplayResult{}, fmt.Errorf("%w: select dead letters by index, by range or all", ErrBadReplaySelection)
	}
	if len(sel.Indexes) > MaxReplay {
		return ReplayResult{}, fmt.Errorf("%w: %d dead letters selected, at most %d per replay", ErrBadReplaySelection, len(sel.Indexes), MaxReplay)
	}
	job := &replayJob{sel: sel, done: make(chan struct{})}
	s.mu.Lock()
	if s.runCtx == nil || s.runCtx.Err() != nil || s.live == 0 {
		s.mu.Unlock()
		return ReplayResult{}, fmt.Errorf("pipeline %q: %w", name, ErrNotRunning)
	}
	runCtx := s.runCtx
	m.mu.Lock()
	m.replays = append(m.replays, job)
	m.mu.Unlock()
	ended, err := m.restart()
	if err != nil {
		m.mu.Lock()
		m.replays = slices.DeleteFunc(m.replays, func(j *replayJob) bool { return j == job })
		m.mu.Unlock()
		s.mu.Unlock()
		return ReplayResult{}, err
	}
	if ended {
		s.launchLocked(m)
	}
	s.mu.Unlock()
	s.log.Info("dead-letter replay requested", "pipeline", name)

	select {
	case <-job.done:
		return job.res, job.err
	case <-ctx.Done():
		return ReplayResult{}, fmt.Errorf("pipeline %q: the replay goes on; its marks show in the dead letters: %w", name, ctx.Err())
	case <-runCtx.Done():
		if job.started.Load() {
			<-job.done
			return job.res, job.err
		}
		return ReplayResult{}, fmt.Errorf("pipeline %q: the runtime is stopping; nothing was replayed: %w", name, ErrNotRunning)
	}
}

// replayable refuses the configurations a one-shot replay run cannot serve.
func replayable(cfg *pipeline.Pipeline) error {
	if cfg.Delivery == pipeline.ExactlyOnce {
		return fmt.Errorf("pipeline %q: %w: with delivery exactly_once the sinks store the source's positions with the data, which replayed records do not have; replay into a pipeline with delivery at_least_once", cfg.Name, ErrReplayUnsupported)
	}
	for _, t := range cfg.Transforms {
		if t.Aggregate != nil {
			return fmt.Errorf("pipeline %q: %w: transform %q is an aggregate stage, whose state follows the source's positions", cfg.Name, ErrReplayUnsupported, t.Name)
		}
	}
	return nil
}

// runReplays runs the replays queued for m, between two runs of its pipeline (loop).
func (m *managed) runReplays(ctx context.Context) {
	for {
		m.mu.Lock()
		if len(m.replays) == 0 {
			m.mu.Unlock()
			return
		}
		j := m.replays[0]
		m.replays = m.replays[1:]
		j.started.Store(true)
		m.mu.Unlock()
		j.res, j.err = m.s.replay(ctx, m, j.sel)
		if j.err != nil {
			m.s.log.Warn("dead-letter replay refused", "pipeline", m.name, "err", j.err)
		} else {
			m.s.log.Info("dead letters replayed", "pipeline", m.name, "replay", j.res.Replay, "replayed", j.res.Replayed,
				"delivered", j.res.Delivered, "dead_lettered", j.res.DeadLettered, "skipped", len(j.res.Skipped))
		}
		close(j.done)
	}
}

// letter is one selected dead letter.
type letter struct {
	index int
	line  []byte
	env   engine.Envelope
}

// replayTimeout bounds one replay run; a cancelled run drains like any stop.
const replayTimeout = 5 * time.Minute

// replay runs one replay; the pipeline is not running meanwhile.
func (s *Supervisor) replay(ctx context.Context, m *managed, sel ReplaySelection) (ReplayResult, error) {
	path, err := s.DeadLetterFile(m.name)
	if err != nil {
		return ReplayResult{}, err
	}
	id := newReplayID()
	res := ReplayResult{Pipeline: m.name, File: path, Replay: id, NewDeadLetters: []int{}, Skipped: []SkippedLetter{}}
	want := map[int]bool{}
	for _, i := range sel.Indexes {
		if i < 0 {
			return res, fmt.Errorf("%w: index %d: indexes start at 0", ErrBadReplaySelection, i)
		}
		want[i] = true
	}
	lines, total, err := readLines(path, func(i int) bool { return sel.All || want[i] })
	if err != nil {
		return res, err
	}
	for i := range want {
		if i >= total {
			return res, fmt.Errorf("%w: index %d: the dead-letter file holds %d dead letters (indexes 0 to %d)", ErrBadReplaySelection, i, total, total-1)
		}
	}
	marks, err := ReplayMarks(path, func(i int) ([]byte, bool) { l, ok := lines[i]; return l, ok })
	if err != nil {
		return res, err
	}
	var letters []letter
	var again []int
	for _, i := range slices.Sorted(maps.Keys(lines)) {
		if _, done := marks[i]; done && !sel.Force {
			if sel.All {
				continue
			}
			again = append(again, i)
			continue
		}
		var e engine.Envelope
		if err := json.Unmarshal(lines[i], &e); err != nil {
			res.Skipped = append(res.Skipped, SkippedLetter{i, "not a dead-letter envelope: " + err.Error()})
			continue
		}
		if e.Pipeline != m.name {
			if !sel.All {
				res.Skipped = append(res.Skipped, SkippedLetter{i, fmt.Sprintf("a dead letter of pipeline %q, not of %q", e.Pipeline, m.name)})
			}
			continue
		}
		letters = append(letters, letter{index: i, line: lines[i], env: e})
	}
	if len(again) > 0 {
		return res, fmt.Errorf("%w: dead letters %s were replayed before (see their marks in the browse); send force: true to replay them again", ErrAlreadyReplayed, intList(again))
	}
	if len(letters) > MaxReplay {
		return res, fmt.Errorf("%w: %d dead letters selected, at most %d per replay: select a range", ErrBadReplaySelection, len(letters), MaxReplay)
	}
	res.Selected = len(letters) + len(res.Skipped)

	groups, skipped := groupLetters(m.cfg, letters)
	res.Skipped = append(res.Skipped, skipped...)
	slices.SortFunc(res.Skipped, func(a, b SkippedLetter) int { return a.Index - b.Index })
	before := total
	delivered := map[int]bool{}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replayTimeout)
	defer cancel()
	var runErrs []error
	for _, g := range groups {
		acked, err := s.runReplay(rctx, m, id, g)
		for _, l := range g.letters {
			if l.index <= acked {
				delivered[l.index] = true
			}
		}
		if err != nil {
			runErrs = append(runErrs, err)
			break // the next groups would most likely fail alike; they stay unreplayed
		}
	}
	// The letters the replay wrote again: the new lines of the file from this replay.
	again2 := map[int]int{}
	newLines, _, err := readLines(path, func(i int) bool { return i >= before })
	if err != nil {
		runErrs = append(runErrs, err)
	}
	part := replayPartition(id)
	for j, l := range newLines {
		var e engine.Envelope
		if json.Unmarshal(l, &e) == nil && e.Pipeline == m.name && e.Partition == part {
			again2[int(e.Offset)] = j
		}
	}
	var mks []ReplayMark
	now := time.Now().UTC()
	for _, g := range groups {
		for _, l := range g.letters {
			if !delivered[l.index] {
				res.NotDelivered++
				continue
			}
			mk := ReplayMark{Index: l.index, SHA256: lineDigest(l.line), Replay: id, At: now, Outcome: "delivered"}
			if j, ok := again2[l.index]; ok {
				mk.Outcome, mk.DeadLetter = "dead_lettered", &j
				res.DeadLettered++
				res.NewDeadLetters = append(res.NewDeadLetters, j)
			} else {
				res.Delivered++
			}
			res.Replayed++
			mks = append(mks, mk)
		}
	}
	slices.Sort(res.NewDeadLetters)
	if err := appendMarks(path, mks); err != nil {
		runErrs = append(runErrs, err)
	}
	if err := errors.Join(runErrs...); err != nil {
		res.Error = pipeline.Redact(err.Error(), m.cfg.Secrets())
	}
	return res, nil
}

// replayGroup is the dead letters that re-enter the pipeline at the same place.
type replayGroup struct {
	cfg     *pipeline.Pipeline // the pipeline the letters run through
	letters []letter
}

// groupLetters sorts the letters by where they re-enter the pipeline: a record a transform
// rejected goes through that transform and the ones after it; one the source could not decode,
// through all of them; one a sink refused (or could not encode), to that sink alone, as the
// other sinks have it; one no sink read, to the sinks of its port, if there are now.
func groupLetters(cfg *pipeline.Pipeline, letters []letter) ([]*replayGroup, []SkippedLetter) {
	var skipped []SkippedLetter
	byKey := map[string]*replayGroup{}
	var order []*replayGroup
	for _, l := range letters {
		key, c, why := reentry(cfg, l.env)
		if why != "" {
			skipped = append(skipped, SkippedLetter{l.index, why})
			continue
		}
		g := byKey[key]
		if g == nil {
			g = &replayGroup{cfg: c}
			byKey[key] = g
			order = append(order, g)
		}
		g.letters = append(g.letters, l)
	}
	return order, skipped
}

// reentry is the pipeline a letter runs through, a key naming it, or why the letter cannot be
// replayed.
func reentry(cfg *pipeline.Pipeline, e engine.Envelope) (string, *pipeline.Pipeline, string) {
	c := *cfg
	c.Source = pipeline.Component{Type: replaySourceType, Config: connector.Config{}}
	switch {
	case e.Stage == "source" && e.Kind == "malformed":
		return "", nil, "a malformed record: its dead letter holds only the start of the value"
	case e.Stage == "source":
		c.Source.Decode = cfg.Source.Decode
		return "source", &c, ""
	case e.Stage == "router":
		port, ok := unroutedPort(e.Reason)
		if !ok {
			return "", nil, "an unrouted record whose port is not known"
		}
		var sinks []pipeline.Sink
		for _, s := range cfg.Sinks {
			if s.Port() == port {
				s.From = ""
				sinks = append(sinks, s)
			}
		}
		if len(sinks) == 0 {
			return "", nil, fmt.Sprintf("still no sink reads output port %q: add one and replay again", port)
		}
		c.Transforms, c.Sinks = nil, sinks
		return "router:" + port, &c, ""
	}
	if i := slices.IndexFunc(cfg.Transforms, func(t pipeline.Transform) bool { return t.Name == e.Stage }); i >= 0 {
		c.Transforms = cfg.Transforms[i:]
		return "transform:" + e.Stage, &c, ""
	}
	if i := slices.IndexFunc(cfg.Sinks, func(s pipeline.Sink) bool { return s.Name == e.Stage }); i >= 0 {
		s := cfg.Sinks[i]
		s.From = ""
		if e.Kind == "sink_failed" {
			s.Encode = nil // the dead letter holds the value as the sink got it, encoded
		}
		c.Transforms, c.Sinks = nil, []pipeline.Sink{s}
		return "sink:" + e.Kind + ":" + e.Stage, &c, ""
	}
	return "", nil, fmt.Sprintf("stage %q is not in the pipeline any more", e.Stage)
}

// unroutedPort reads the port out of the router's reason: no sink reads output port "P".
func unroutedPort(reason string) (string, bool) {
	_, q, ok := strings.Cut(reason, "output port ")
	if !ok {
		return "", false
	}
	p, err := strconv.Unquote(q)
	return p, err == nil
}

// replaySourceType is the source type of a replay run's catalog.
const replaySourceType = "sluice.replay"

func replayPartition(id string) string { return "replay:" + id }

// runReplay runs the group's records once through its pipeline and returns the highest index
// delivered (-1 for none).
func (s *Supervisor) runReplay(ctx context.Context, m *managed, id string, g *replayGroup) (int, error) {
	src := &replaySource{acked: -1}
	part := replayPartition(id)
	for _, l := range g.letters {
		rec, err := envelopeRecord(l.env)
		if err != nil {
			return -1, fmt.Errorf("dead letter %d: %w", l.index, err)
		}
		rec.Position = connector.Position{Partition: part, Offset: int64(l.index)}
		src.recs = append(src.recs, rec)
	}
	comps := append(s.opts.Catalog.Components(), connector.SourceComponent(connector.Spec{Name: replaySourceType,
		Summary: "The dead letters of a replay.", Bounded: true},
		func(connector.Config, connector.Env) (connector.Source, error) { return src, nil }))
	cat, err := catalog.New(comps...)
	if err != nil {
		return -1, fmt.Errorf("replay: %w", err)
	}
	p, err := engine.New(g.cfg, engine.Options{Catalog: cat, Logger: s.log.With("replay", id), Metrics: s.m,
		DataDir: s.opts.DataDir, NewStage: s.wasm.newStage, DrainTimeout: s.opts.DrainTimeout, Checkpoints: &memCheckpoints{}})
	if err != nil {
		return -1, fmt.Errorf("replay: %w", err)
	}
	err = p.Run(ctx)
	return src.ackedIndex(), err
}

// envelopeRecord is the original record a dead-letter envelope holds (without its headers, which
// the envelope does not keep).
func envelopeRecord(e engine.Envelope) (connector.Record, error) {
	rec := connector.Record{Time: e.Time}
	if e.Key != "" {
		rec.Key = []byte(e.Key)
	}
	switch {
	case e.Value != nil:
		rec.Value = []byte(*e.Value)
	case e.ValueBase64 != "":
		v, err := base64.StdEncoding.DecodeString(e.ValueBase64)
		if err != nil {
			return rec, fmt.Errorf("value_base64: %w", err)
		}
		rec.Value = v
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	return rec, nil
}

// replaySource hands the dead letters on in one read, then ends.
type replaySource struct {
	recs []connector.Record
	read bool

	mu    sync.Mutex
	acked int64
}

func (r *replaySource) Open(context.Context, []connector.Position) error { return nil }

func (r *replaySource) Read(ctx context.Context) ([]connector.Record, error) {
	if r.read || len(r.recs) == 0 {
		return nil, io.EOF
	}
	r.read = true
	return r.recs, nil
}

func (r *replaySource) Ack(_ context.Context, ps []connector.Position) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		r.acked = max(r.acked, p.Offset)
	}
	return nil
}

func (r *replaySource) ackedIndex() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(r.acked)
}

func (r *replaySource) Close(context.Context) error { return nil }

// memCheckpoints keeps a replay run's positions away from its pipeline's checkpoint.
type memCheckpoints struct{}

func (*memCheckpoints) Load(string) ([]connector.Position, error) { return nil, nil }
func (*memCheckpoints) Save(string, []connector.Position) error   { return nil }

// readLines reads the complete lines of path (a last line without its newline is still being
// written) and keeps those keep selects. It returns them by index and the number of lines.
func readLines(path string, keep func(int) bool) (map[int][]byte, int, error) {
	out := map[int][]byte{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("dead letters: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	i := 0
	for ; ; i++ {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, 0, fmt.Errorf("dead letters: read %s: %w", path, err)
		}
		if keep(i) {
			out[i] = bytes.TrimSpace(line)
		}
	}
	return out, i, nil
}

// appendMarks appends the marks to the replay index and syncs it.
func appendMarks(path string, mks []ReplayMark) error {
	if len(mks) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for _, mk := range mks {
		b, _ := json.Marshal(mk)
		buf.Write(b)
		buf.WriteByte('\n')
	}
	f, err := os.OpenFile(ReplayIndexPath(path), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("replay index: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("replay index: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("replay index: %w", err)
	}
	return f.Close()
}

func newReplayID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

func intList(xs []int) string {
	var b strings.Builder
	for i, x := range xs {
		if i == 8 {
			fmt.Fprintf(&b, " and %d more", len(xs)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(x))
	}
	return b.String()
}
