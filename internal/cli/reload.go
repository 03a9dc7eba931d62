package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

// Defaults of the manifest watch of `sluice run`.
const (
	// defaultWatchInterval is how often the manifests' sizes and modification times are looked at.
	defaultWatchInterval = time.Second
	// watchQuiet is how long the manifests must stay as they are before a change is applied:
	// an editor's save is often several writes (truncate, write, rename).
	watchQuiet = 200 * time.Millisecond
	// watchSettleRounds bounds the wait for a quiet moment; then the change is applied anyway.
	watchSettleRounds = 25
)

// stamp is what the watch compares of a file: a change of any field is a change of the file.
type stamp struct {
	size    int64
	modTime time.Time
	missing bool
}

func stampOf(path string) stamp {
	st, err := os.Stat(path) // follows symbolic links: a Kubernetes ConfigMap swaps their target
	if err != nil {
		return stamp{missing: errors.Is(err, fs.ErrNotExist)}
	}
	return stamp{size: st.Size(), modTime: st.ModTime()}
}

// runningPipeline is what the reloader knows of a pipeline the supervisor runs.
type runningPipeline struct {
	file string
	pos  manifests.Pos
	hash string   // of its configuration and module bytes; "" never matches
	deps []string // the WASM modules it loads
}

// reloader watches the manifests `sluice run` was given and applies their changes to the
// supervisor: only the pipelines of the files that changed are validated, and only those whose
// configuration changed are replaced, added or removed. A file with a problem changes nothing:
// its running pipelines stay as they were and the problems are reported in the log, the
// metrics and GET /api/v1/reload until the file is fixed.
type reloader struct {
	g        *Globals
	log      *slog.Logger
	sup      *supervisor.Supervisor
	args     []string
	interval time.Duration
	met      reloadMetrics

	// seen and depSeen hold the stamps of the last scan, of the manifests and of the modules of
	// the running pipelines; only the watch goroutine touches them.
	seen, depSeen map[string]stamp

	// step serializes reloads (the watch and SIGHUP); mu guards the state below, which the
	// admin API reads.
	step     sync.Mutex
	mu       sync.Mutex
	pipes    map[string]*runningPipeline       // by name
	broken   map[string][]manifests.Diagnostic // by file: the problems of its last change
	last     *reloadReport
	okCount  int
	errCount int
}

// reloadMetrics are the reloader's metrics.
type reloadMetrics struct {
	total       *prometheus.CounterVec
	lastOK      prometheus.Gauge
	lastError   prometheus.Gauge
	lastSeconds prometheus.Gauge
	fileErrors  *prometheus.GaugeVec
}

func newReloadMetrics(reg prometheus.Registerer) (reloadMetrics, error) {
	m := reloadMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_reload_total",
			Help: "Reloads of the manifests (on a change or SIGHUP), by result: ok, or error when a changed manifest had a problem and was not applied."}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_reload_last_success_timestamp_seconds",
			Help: "Unix time of the last reload that applied every changed manifest."}),
		lastError: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_reload_last_error_timestamp_seconds",
			Help: "Unix time of the last reload that left a changed manifest unapplied; 0 when none did."}),
		lastSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_reload_last_duration_seconds",
			Help: "How long the last reload took, from the change seen to the changed pipelines running again."}),
		fileErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_manifest_errors",
			Help: "Problems of a manifest whose last change was not applied (its pipelines run as before); the series goes once the file is fixed."}, []string{"file"}),
	}
	for _, c := range []prometheus.Collector{m.total, m.lastOK, m.lastError, m.lastSeconds, m.fileErrors} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("reload metrics: %w", err)
		}
	}
	m.total.WithLabelValues("ok")
	m.total.WithLabelValues("error")
	return m, nil
}

// newReloader returns a reloader of the pipelines specs loaded from args, running on sup. seen
// holds the stamps scanned before the manifests were read.
func newReloader(g *Globals, log *slog.Logger, m *metrics.Metrics, sup *supervisor.Supervisor, args []string, specs []*manifests.Pipeline,
	seen map[string]stamp, interval time.Duration) (*reloader, error) {
	met, err := newReloadMetrics(m.Registry)
	if err != nil {
		return nil, err
	}
	if interval <= 0 {
		interval = defaultWatchInterval
	}
	r := &reloader{g: g, log: log, sup: sup, args: args, interval: interval, met: met, seen: seen, depSeen: map[string]stamp{},
		pipes: map[string]*runningPipeline{}, broken: map[string][]manifests.Diagnostic{}}
	for _, s := range specs {
		hash, deps := configHash(s)
		r.pipes[s.Name] = &runningPipeline{file: s.Pos.File, pos: s.Pos, hash: hash, deps: deps}
		for _, d := range deps {
			r.depSeen[d] = stampOf(d)
		}
	}
	return r, nil
}

// configHash digests a pipeline's configuration as loaded (references resolved, relative paths
// made absolute) with the bytes of its WASM modules, and lists the modules.
func configHash(p *manifests.Pipeline) (string, []string) {
	cfg := p.Config()
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", nil // cannot tell: treat it as changed
	}
	h := sha256.New()
	h.Write(b)
	var deps []string
	for _, t := range cfg.Transforms {
		deps = append(deps, t.Module)
		data, err := os.ReadFile(t.Module)
		if err != nil {
			return "", deps
		}
		sum := sha256.Sum256(data)
		h.Write(sum[:])
	}
	return hex.EncodeToString(h.Sum(nil)), deps
}

// watchedFiles lists the manifest files args stand for, as Load reads them. ok is false when a
// directory cannot be listed: a scan then decides nothing (a directory that vanished for a moment
// while it is remounted must not remove every pipeline).
func watchedFiles(args []string) (files []string, ok bool) {
	for _, a := range args {
		st, err := os.Stat(a)
		switch {
		case err == nil && st.IsDir():
			list, err := manifests.DirFiles(a)
			if err != nil {
				return nil, false
			}
			files = append(files, list...)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return nil, false
		default:
			files = append(files, a) // a file, or one that vanished
		}
	}
	return files, true
}

// scanStamps stamps the manifest files of args.
func scanStamps(args []string) map[string]stamp {
	files, _ := watchedFiles(args)
	out := make(map[string]stamp, len(files))
	for _, f := range files {
		out[f] = stampOf(f)
	}
	return out
}

// run watches the manifests every interval, and reloads every manifest on a signal from hup,
// until ctx is done.
func (r *reloader) run(ctx context.Context, hup <-chan os.Signal) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.log.Info("SIGHUP: reloading every manifest")
			r.scan() // take the stamps, so the watch does not reload the same change again
			r.reload(ctx, "signal", nil)
		case <-t.C:
			changed := r.scan()
			if len(changed) == 0 {
				continue
			}
			seenAt := time.Now()
			for range watchSettleRounds { // wait for the writes to stop
				select {
				case <-ctx.Done():
					return
				case <-time.After(watchQuiet):
				}
				more := r.scan()
				if len(more) == 0 {
					break
				}
				changed = append(changed, more...)
			}
			r.reloadSince(ctx, "watch", changed, seenAt)
		}
	}
}

// scan stamps the manifests and the modules of the running pipelines, and returns the manifests
// that changed, appeared or disappeared since the last scan (a manifest whose module changed
// counts as changed).
func (r *reloader) scan() []string {
	files, ok := watchedFiles(r.args)
	if !ok {
		return nil
	}
	var changed []string
	now := map[string]bool{}
	for _, f := range files {
		now[f] = true
		st := stampOf(f)
		if old, ok := r.seen[f]; !ok || old != st {
			changed = append(changed, f)
		}
		r.seen[f] = st
	}
	for f := range r.seen {
		if !now[f] { // gone from its directory
			changed = append(changed, f)
			delete(r.seen, f)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pipes {
		for _, d := range p.deps {
			st := stampOf(d)
			if old, ok := r.depSeen[d]; ok && old != st {
				changed = append(changed, p.file)
			}
			r.depSeen[d] = st
		}
	}
	return changed
}

// reloadReport says what one reload did; GET /api/v1/reload shows the last one.
type reloadReport struct {
	At              time.Time `json:"at"`
	Trigger         string    `json:"trigger"` // watch or signal
	Result          string    `json:"result"`  // ok or error
	DurationSeconds float64   `json:"duration_seconds"`
	// ValidateSeconds and ApplySeconds are the parts of DurationSeconds spent validating the
	// changed manifests and draining and starting their pipelines.
	ValidateSeconds float64  `json:"validate_seconds"`
	ApplySeconds    float64  `json:"apply_seconds"`
	Files           []string `json:"files"`
	Restarted       []string `json:"restarted"`
	Added           []string `json:"added"`
	Removed         []string `json:"removed"`
	Unchanged       []string `json:"unchanged"`
	Errors          []string `json:"errors,omitempty"`
}

// fileResult is one changed manifest, validated.
type fileResult struct {
	file  string
	gone  bool
	specs []*manifests.Pipeline
	diags manifests.Diagnostics
}

// reload applies the changes of the manifests files (nil: every manifest, and every file a
// running pipeline came from).
func (r *reloader) reload(ctx context.Context, trigger string, files []string) *reloadReport {
	return r.reloadSince(ctx, trigger, files, time.Now())
}

func (r *reloader) reloadSince(ctx context.Context, trigger string, files []string, since time.Time) *reloadReport {
	r.step.Lock()
	defer r.step.Unlock()
	set := map[string]bool{}
	if files == nil {
		all, _ := watchedFiles(r.args)
		files = all
		r.mu.Lock()
		for _, p := range r.pipes {
			files = append(files, p.file)
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	for f := range r.broken { // a change elsewhere may resolve their problem (a pipeline moved)
		files = append(files, f)
	}
	r.mu.Unlock()
	for _, f := range files {
		set[f] = true
	}
	list := make([]string, 0, len(set))
	for f := range set {
		list = append(list, f)
	}
	sort.Strings(list)

	results := map[string]*fileResult{}
	validating := time.Now()
	for _, f := range list {
		results[f] = r.validate(ctx, f)
	}
	validated := time.Since(validating)
	rep := &reloadReport{At: time.Now(), Trigger: trigger, Files: list, Restarted: []string{}, Added: []string{}, Removed: []string{}, Unchanged: []string{}}
	r.mu.Lock()
	r.resolveConflicts(results)
	plan := r.planLocked(results)
	r.mu.Unlock()

	applying := time.Now()
	problems := r.apply(ctx, plan, rep)
	applied := time.Since(applying)

	r.mu.Lock()
	for _, res := range results {
		if len(res.diags) == 0 {
			delete(r.broken, res.file)
			r.met.fileErrors.DeleteLabelValues(res.file)
			continue
		}
		r.broken[res.file] = res.diags
		r.met.fileErrors.WithLabelValues(res.file).Set(float64(len(res.diags)))
	}
	for file, diags := range problems {
		r.broken[file] = append(r.broken[file], diags...)
		r.met.fileErrors.WithLabelValues(file).Set(float64(len(r.broken[file])))
	}
	rep.Result = "ok"
	for _, f := range list {
		for _, d := range r.broken[f] {
			rep.Errors = append(rep.Errors, d.String())
		}
	}
	took := time.Since(since)
	rep.DurationSeconds, rep.ValidateSeconds, rep.ApplySeconds = took.Seconds(), validated.Seconds(), applied.Seconds()
	if len(rep.Errors) > 0 {
		rep.Result = "error"
		r.errCount++
		r.met.lastError.SetToCurrentTime()
	} else {
		r.okCount++
		r.met.lastOK.SetToCurrentTime()
	}
	r.met.total.WithLabelValues(rep.Result).Inc()
	r.met.lastSeconds.Set(took.Seconds())
	r.last = rep
	r.mu.Unlock()

	for _, f := range list {
		for _, d := range results[f].diags {
			r.log.Error("manifest change not applied: the pipelines it defined keep running as they were", "problem", d.String())
		}
	}
	for file, diags := range problems {
		for _, d := range diags {
			r.log.Error("pipeline change not applied", "file", file, "problem", d.String())
		}
	}
	r.log.Info("manifests reloaded", "trigger", trigger, "result", rep.Result, "restarted", rep.Restarted, "added", rep.Added,
		"removed", rep.Removed, "unchanged", len(rep.Unchanged), "took", took.Round(time.Millisecond),
		"validating", validated.Round(time.Millisecond), "applying", applied.Round(time.Millisecond))
	return rep
}

// validate loads one manifest and builds its pipelines without I/O, as `sluice validate` does.
func (r *reloader) validate(ctx context.Context, file string) *fileResult {
	res := &fileResult{file: file}
	if stampOf(file).missing {
		res.gone = true
		return res
	}
	l, err := r.g.buildPipelines(ctx, r.log, metrics.New(), supervisor.Options{}, func(o manifests.LoadOptions) ([]*manifests.Pipeline, manifests.Diagnostics) {
		return manifests.Load([]string{file}, o)
	})
	if err != nil {
		res.diags = manifests.Diagnostics{{Pos: manifests.Pos{File: file}, Message: err.Error()}}
		return res
	}
	_ = l.sup.Close(context.Background())
	res.specs, res.diags = l.specs, l.diags
	if len(res.diags) > 0 {
		res.specs = nil
	}
	return res
}

// resolveConflicts turns a pipeline name defined by two manifests into a problem of each changed
// manifest that claims it, until no name is claimed twice; r.mu is held. A manifest with a
// problem keeps its pipelines, so that setting one aside can make another conflict.
func (r *reloader) resolveConflicts(results map[string]*fileResult) {
	for {
		type claim struct {
			file string
			pos  manifests.Pos
		}
		claims := map[string][]claim{}
		for name, p := range r.pipes {
			if res := results[p.file]; res == nil || len(res.diags) > 0 {
				claims[name] = append(claims[name], claim{p.file, p.pos})
			}
		}
		for _, res := range results {
			if len(res.diags) > 0 {
				continue
			}
			for _, s := range res.specs {
				claims[s.Name] = append(claims[s.Name], claim{res.file, s.Pos})
			}
		}
		conflict := false
		for name, cs := range claims {
			if len(cs) < 2 {
				continue
			}
			for _, c := range cs {
				res := results[c.file]
				if res == nil || len(res.diags) > 0 {
					continue // not changed, or already set aside: it keeps the name
				}
				var others []string
				for _, o := range cs {
					if o != c {
						others = append(others, o.pos.String())
					}
				}
				res.diags = append(res.diags, manifests.Diagnostic{Pos: c.pos,
					Message: fmt.Sprintf("pipeline %q is also defined at %s", name, joinComma(others)),
					Hint:    "pipeline names are unique across the manifests of a process: rename one; to move a pipeline to another file, remove it from the first file in the same change (or before)"})
				res.specs = nil
				conflict = true
			}
		}
		if !conflict {
			return
		}
	}
}

func joinComma(s []string) string {
	slices.Sort(s)
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// reloadPlan is what a reload does to the supervisor.
type reloadPlan struct {
	replace, add map[string]*manifests.Pipeline
	remove       []string
	unchanged    []string
	next         map[string]*runningPipeline // the state once applied
}

// planLocked decides, per pipeline of the changed manifests without problems, whether it is
// unchanged, changed, added or removed; r.mu is held.
func (r *reloader) planLocked(results map[string]*fileResult) *reloadPlan {
	plan := &reloadPlan{replace: map[string]*manifests.Pipeline{}, add: map[string]*manifests.Pipeline{}, next: map[string]*runningPipeline{}}
	applied := map[string]bool{}
	for _, res := range results {
		if len(res.diags) == 0 {
			applied[res.file] = true
		}
	}
	for name, p := range r.pipes {
		if !applied[p.file] {
			plan.next[name] = p
		}
	}
	for _, res := range results {
		if !applied[res.file] {
			continue
		}
		for _, s := range res.specs {
			hash, deps := configHash(s)
			plan.next[s.Name] = &runningPipeline{file: res.file, pos: s.Pos, hash: hash, deps: deps}
			switch cur := r.pipes[s.Name]; {
			case cur == nil:
				plan.add[s.Name] = s
			case cur.hash == "" || cur.hash != hash:
				plan.replace[s.Name] = s
			default:
				plan.unchanged = append(plan.unchanged, s.Name)
			}
		}
	}
	for name, p := range r.pipes {
		if applied[p.file] && plan.next[name] == nil {
			plan.remove = append(plan.remove, name)
		}
	}
	sort.Strings(plan.remove)
	sort.Strings(plan.unchanged)
	return plan
}

// apply carries out plan: the removals first (a new pipeline may write where a removed one
// did), then the replacements and additions, each pipeline on its own goroutine so that their
// drains overlap. It returns the problems the supervisor found, by file (their pipelines stay
// as they were), and records the new state.
func (r *reloader) apply(ctx context.Context, plan *reloadPlan, rep *reloadReport) map[string]manifests.Diagnostics {
	var wg sync.WaitGroup
	var mu sync.Mutex
	problems := map[string]manifests.Diagnostics{}
	failed := map[string]bool{}
	fail := func(s *manifests.Pipeline, pp []supervisor.Problem) {
		mu.Lock()
		defer mu.Unlock()
		failed[s.Name] = true
		problems[s.Pos.File] = append(problems[s.Pos.File], problemDiagnostics(pp, []*manifests.Pipeline{s})...)
	}
	for _, name := range plan.remove {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.sup.Remove(ctx, name); err != nil && !errors.Is(err, supervisor.ErrUnknownPipeline) {
				r.log.Error("removing a pipeline", "pipeline", name, "err", err)
			}
		}()
	}
	wg.Wait()
	for _, s := range plan.replace {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if pp := r.sup.Replace(ctx, s.Config()); len(pp) > 0 {
				if errors.Is(pp[0].Err, supervisor.ErrUnknownPipeline) { // gone meanwhile: add it
					pp = r.sup.Add(ctx, s.Config())
				}
				if len(pp) > 0 {
					fail(s, pp)
				}
			}
		}()
	}
	for _, s := range plan.add {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if pp := r.sup.Add(ctx, s.Config()); len(pp) > 0 {
				fail(s, pp)
			}
		}()
	}
	wg.Wait()

	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range failed {
		if old := r.pipes[name]; old != nil {
			plan.next[name] = old // still running as it was
		} else {
			delete(plan.next, name)
		}
	}
	r.pipes = plan.next
	rep.Removed = append(rep.Removed, plan.remove...)
	rep.Unchanged = append(rep.Unchanged, plan.unchanged...)
	for name := range plan.replace {
		if !failed[name] {
			rep.Restarted = append(rep.Restarted, name)
		}
	}
	for name := range plan.add {
		if !failed[name] {
			rep.Added = append(rep.Added, name)
		}
	}
	sort.Strings(rep.Restarted)
	sort.Strings(rep.Added)
	return problems
}

// reloadState is the answer of GET /api/v1/reload.
type reloadState struct {
	Watching        bool     `json:"watching"`
	IntervalSeconds float64  `json:"interval_seconds"`
	Paths           []string `json:"paths"`
	// Reloads counts the reloads by result since the process started.
	Reloads map[string]int `json:"reloads"`
	// Last is the last reload; null before the first.
	Last *reloadReport `json:"last"`
	// Errors are the problems of the manifests whose last change was not applied: their
	// pipelines run as they were. Empty once every manifest is fixed.
	Errors []reloadError `json:"errors"`
	// Pipelines says which manifest each running pipeline comes from.
	Pipelines []reloadPipeline `json:"pipelines"`
}

type reloadError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

type reloadPipeline struct {
	Name string `json:"name"`
	File string `json:"file"`
}

// state reports the reloader for the admin API.
func (r *reloader) state() any {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := reloadState{Watching: true, IntervalSeconds: r.interval.Seconds(), Paths: r.args,
		Reloads: map[string]int{"ok": r.okCount, "error": r.errCount}, Last: r.last, Errors: []reloadError{}, Pipelines: []reloadPipeline{}}
	files := make([]string, 0, len(r.broken))
	for f := range r.broken {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		for _, d := range r.broken[f] {
			file := d.Pos.File
			if file == "" {
				file = f
			}
			st.Errors = append(st.Errors, reloadError{File: file, Line: d.Pos.Line, Col: d.Pos.Col, Message: d.Message, Hint: d.Hint})
		}
	}
	for name, p := range r.pipes {
		st.Pipelines = append(st.Pipelines, reloadPipeline{Name: name, File: p.file})
	}
	sort.Slice(st.Pipelines, func(i, j int) bool { return st.Pipelines[i].Name < st.Pipelines[j].Name })
	return st
}

// watchSignals starts catching SIGHUP (which would otherwise end the process) and stamps the
// manifests, before they are read, when watch is set. The channel is never nil.
func watchSignals(args []string, watch bool) (chan os.Signal, map[string]stamp) {
	hup := make(chan os.Signal, 1)
	if !watch {
		return hup, nil
	}
	signal.Notify(hup, syscall.SIGHUP)
	return hup, scanStamps(args)
}

// reloading is the reloader of a `sluice run`, running on its own goroutine.
type reloading struct {
	r    *reloader
	stop func()
}

// startReloader starts watching the manifests of l (loaded from args) when f.watch is set; it
// returns nil otherwise. stop ends the watch and waits for a reload under way.
func startReloader(ctx context.Context, g *Globals, log *slog.Logger, m *metrics.Metrics, l *loaded, args []string,
	seen map[string]stamp, hup <-chan os.Signal, f runFlags) (*reloading, error) {
	if !f.watch {
		return nil, nil
	}
	r, err := newReloader(g, log, m, l.sup, args, l.specs, seen, f.watchInterval)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx, hup)
	}()
	log.Info("watching the manifests for changes", "paths", args, "interval", r.interval)
	return &reloading{r: r, stop: func() { cancel(); <-done }}, nil
}

// stop ends the watch; nil (not watching) does nothing.
func (rl *reloading) stopWatch() {
	if rl != nil {
		rl.stop()
	}
}

// adminState is the admin API's view of reloading; nil when not watching.
func (rl *reloading) adminState() func() any {
	if rl == nil {
		return nil
	}
	return rl.r.state
}
