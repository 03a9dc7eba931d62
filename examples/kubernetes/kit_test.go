// Package kubernetes_test checks the sidecar kit against the runtime it describes: the
// Deployment's sidecar arguments, mounts and probes against sluice's flags and admin server, its
// pipelines run for real (Kafka and Postgres of `make services`) with the Deployment's own
// arguments and environment, and every metric and label the Grafana dashboard and the alert rules
// use against a scrape of that running sluice. mk/kubernetes.mk adds the schema validation and
// promtool's checks.
package kubernetes_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/internal/testenv"
)

// The parts of the Deployment the tests read.
type deployment struct {
	Spec struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
	Containers                    []container `yaml:"containers"`
	Volumes                       []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
		EmptyDir *struct{} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type container struct {
	Name string   `yaml:"name"`
	Args []string `yaml:"args"`
	Env  []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             bool  `yaml:"runAsNonRoot"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type kustomization struct {
	Resources          []string `yaml:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `yaml:"name"`
		Files []string `yaml:"files"`
	} `yaml:"configMapGenerator"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func sidecar(t *testing.T) (podSpec, container) {
	t.Helper()
	var d deployment
	readYAML(t, "deploy/deployment.yaml", &d)
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "sluice" {
			return d.Spec.Template.Spec, c
		}
	}
	t.Fatal("deploy/deployment.yaml has no container named sluice")
	return podSpec{}, container{}
}

// flagValue returns the value of --name=VALUE among args, and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func (c container) mountOf(path string) (string, bool) {
	for _, m := range c.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/") {
			return m.Name, true
		}
	}
	return "", false
}

// TestDeploymentMatchesTheRuntime checks what the Deployment tells the sidecar against what sluice
// does with it: the probes reach the admin server from outside the pod, the API is guarded, the
// grace period covers the drain, the manifests directory is the ConfigMap kustomize builds from
// pipelines/, and every path the sidecar writes or reads is a volume.
func TestDeploymentMatchesTheRuntime(t *testing.T) {
	pod, c := sidecar(t)
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Fatalf("sidecar args %q: want `run ...`", c.Args)
	}

	addr, ok := flagValue(c.Args, "admin-addr")
	host, port, err := net.SplitHostPort(addr)
	if !ok || err != nil || host != "0.0.0.0" {
		t.Errorf("--admin-addr=%q: the kubelet probes the pod IP, so the admin server must listen on 0.0.0.0", addr)
	}
	tokenFile, ok := flagValue(c.Args, "admin-token-file")
	if !ok {
		t.Error("no --admin-token-file: an admin server beyond loopback needs a token")
	} else if v, ok := c.mountOf(tokenFile); !ok || !isSecretVolume(pod, v) {
		t.Errorf("--admin-token-file %s is not in a mounted Secret", tokenFile)
	}

	var adminPort string
	for _, p := range c.Ports {
		if strconv.Itoa(p.ContainerPort) == port {
			adminPort = p.Name
		}
	}
	if adminPort == "" {
		t.Errorf("no container port %s (the admin address) declared", port)
	}
	for name, pr := range map[string]struct {
		p    *probe
		path string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}, "startup": {c.StartupProbe, "/healthz"}} {
		if pr.p == nil {
			t.Errorf("no %s probe", name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path || pr.p.HTTPGet.Port != adminPort {
			t.Errorf("%s probe GET %s on port %q: want %s on %q", name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path, adminPort)
		}
	}

	drainArg, ok := flagValue(c.Args, "drain-timeout")
	if !ok {
		t.Fatal("no --drain-timeout: the grace period must be matched to it")
	}
	drain, err := time.ParseDuration(drainArg)
	if err != nil {
		t.Fatalf("--drain-timeout=%s: %v", drainArg, err)
	}
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= drain {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than --drain-timeout %v: the kubelet would kill sluice while it drains", grace, drain)
	}

	dataDir, ok := flagValue(c.Args, "data-dir")
	if v, mounted := c.mountOf(dataDir); !ok || !mounted || v == "" {
		t.Errorf("--data-dir %q is not a mounted volume (the root file system is read-only)", dataDir)
	}
	if !c.SecurityContext.ReadOnlyRootFilesystem || !c.SecurityContext.RunAsNonRoot ||
		c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("sidecar securityContext %+v: want a read-only root, non-root, no privilege escalation", c.SecurityContext)
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("no %s request", r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("no memory limit")
	}

	// The last argument is the manifests directory: the ConfigMap of pipelines/*.yaml.
	dir := c.Args[len(c.Args)-1]
	vol, ok := c.mountOf(dir)
	if !ok {
		t.Fatalf("manifests directory %s is not mounted", dir)
	}
	var cm string
	for _, v := range pod.Volumes {
		if v.Name == vol && v.ConfigMap != nil {
			cm = v.ConfigMap.Name
		}
	}
	var k kustomization
	readYAML(t, "deploy/kustomization.yaml", &k)
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join("deploy", r)); err != nil {
			t.Errorf("kustomization resource: %v", err)
		}
	}
	want, _ := filepath.Glob("deploy/pipelines/*.yaml")
	var got []string
	for _, g := range k.ConfigMapGenerator {
		if g.Name == cm {
			for _, f := range g.Files {
				got = append(got, filepath.Join("deploy", f))
			}
		}
	}
	slices.Sort(got)
	if cm == "" || !slices.Equal(got, want) {
		t.Errorf("the manifests directory is ConfigMap %q built from %q; want a ConfigMap of every file of pipelines/ %q", cm, got, want)
	}
}

func isSecretVolume(pod podSpec, name string) bool {
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v.Secret != nil
		}
	}
	return false
}

// containerFiles maps the paths the kit's manifests name inside the container to files of this
// repository: what the Dockerfile copies into the image.
var containerFiles = map[string]string{
	"/usr/share/sluice/transforms/validate_price.wasm": "transforms/validate_price/c/validate_price.wasm",
}

// TestKitPipelinesRunAndExportTheMetricsTheKitUses runs the sidecar as the Deployment does (its
// arguments and environment, the Secret's files, the ConfigMap's manifests), with the paths of
// the container mapped to temporary ones and Kafka and Postgres of `make services`. It posts
// prices as the application would, waits for every valid one in Postgres and every negative one in
// the dead letters, checks the admin server's guard, breaks and fixes a manifest, then checks every
// metric name and label of the dashboard and the alert rules against the running sluice's
// /metrics. Last, it stops sluice with SIGTERM and starts it again on an empty data directory, as
// a new pod with a fresh emptyDir: every valid price is archived exactly once.
func TestKitPipelinesRunAndExportTheMetricsTheKitUses(t *testing.T) {
	kafkaAddr := testenv.Require(t, "KAFKA_BOOTSTRAP")
	dsn := testenv.Require(t, "PG_DSN")
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for inImage, src := range containerFiles {
		if !bytes.Contains(dockerfile, []byte(src)) || !bytes.Contains(dockerfile, []byte(filepath.Base(inImage))) {
			t.Fatalf("the Dockerfile does not copy %s to %s", src, inImage)
		}
	}

	_, c := sidecar(t)
	tmp := t.TempDir()
	secrets := filepath.Join(tmp, "secrets")
	manifests := filepath.Join(tmp, "pipelines")
	for _, d := range []string{secrets, manifests} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const token = "kit-test-token"
	tokenFile, _ := flagValue(c.Args, "admin-token-file")
	secretDir := filepath.Dir(tokenFile)
	writeFile(t, filepath.Join(secrets, filepath.Base(tokenFile)), token+"\n")
	writeFile(t, filepath.Join(secrets, "postgres-dsn"), dsn)

	webhook := freeAddr(t)
	admin := freeAddr(t)
	files, _ := filepath.Glob("deploy/pipelines/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), secretDir+"/", secrets+"/")
		for inImage, src := range containerFiles {
			s = strings.ReplaceAll(s, inImage, filepath.Join(repo, src))
		}
		if !strings.Contains(s, "127.0.0.1:8080") && strings.Contains(s, "type: webhook") {
			t.Fatalf("%s: the webhook no longer listens on 127.0.0.1:8080; update this test", f)
		}
		s = strings.ReplaceAll(s, "127.0.0.1:8080", webhook)
		writeFile(t, filepath.Join(manifests, filepath.Base(f)), s)
	}

	// The Deployment's environment, with unique names for this run.
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	env := os.Environ()
	vars := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			continue // GOMEMLIMIT from the container's limit
		}
		v := e.Value
		switch e.Name {
		case "KAFKA_BROKERS":
			v = kafkaAddr
		case "PRICES_TOPIC", "REJECTED_TOPIC", "ARCHIVE_GROUP":
			v = "kit-" + strings.ReplaceAll(v, ".", "-") + "-" + suffix
		case "ARCHIVE_TABLE":
			v = "kit_" + v + "_" + suffix
		}
		vars[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	for _, k := range []string{"KAFKA_BROKERS", "PRICES_TOPIC", "REJECTED_TOPIC", "ARCHIVE_GROUP", "ARCHIVE_TABLE"} {
		if vars[k] == "" {
			t.Fatalf("the sidecar's environment has no %s", k)
		}
	}
	createTopics(t, kafkaAddr, vars["PRICES_TOPIC"], vars["REJECTED_TOPIC"])
	t.Cleanup(func() { dropTables(dsn, vars["ARCHIVE_TABLE"], vars["ARCHIVE_TABLE"]+"_dead_letters") })

	// The Deployment's arguments, with the container's paths and address replaced.
	args := slices.Clone(c.Args)
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--admin-addr="):
			args[i] = "--admin-addr=" + admin
		case strings.HasPrefix(a, "--admin-token-file="):
			args[i] = "--admin-token-file=" + filepath.Join(secrets, filepath.Base(tokenFile))
		case strings.HasPrefix(a, "--data-dir="):
			args[i] = "--data-dir=" + filepath.Join(tmp, "data")
		}
	}
	args[len(args)-1] = manifests
	bin := buildSluice(t, repo)
	proc := start(t, bin, env, args)

	base := "http://" + admin
	proc.waitFor(t, "/readyz to answer 200", func() bool { return status(base+"/readyz", "") == 200 }, nil)
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", 200}, {"/metrics", "", 200},
		{"/api/v1/pipelines", "", 401}, {"/api/v1/pipelines", "wrong", 401}, {"/api/v1/pipelines", token, 200},
	} {
		if got := status(base+tc.path, tc.token); got != tc.want {
			t.Errorf("GET %s with token %q: %d, want %d", tc.path, tc.token, got, tc.want)
		}
	}

	// The application's posts: requests of 25 prices, every fifth one negative.
	wantSeqs := map[int]bool{}
	post := func(first, requests int) (valid, rejected int) {
		t.Helper()
		for r := 0; r < requests; r++ {
			var body strings.Builder
			for i := 0; i < 25; i++ {
				seq := first + r*25 + i
				price := fmt.Sprintf("%d.5", 10+i)
				if i%5 == 0 {
					price = "-" + price
					rejected++
				} else {
					valid++
					wantSeqs[seq] = true
				}
				fmt.Fprintf(&body, `{"commodity":"gold","price":%s,"ts":"2026-01-02T03:04:05Z","seq":%d}`+"\n", price, seq)
			}
			resp, err := http.Post("http://"+webhook+"/prices", "application/x-ndjson", strings.NewReader(body.String()))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("POST /prices: %s", resp.Status)
			}
		}
		return valid, rejected
	}
	valid, rejected := post(0, 40)

	var scrape metricsScrape
	proc.waitFor(t, fmt.Sprintf("%d dead letters of ingest-prices and %d records out of archive-prices", rejected, valid), func() bool {
		scrape = scrapeMetrics(t, base+"/metrics")
		return scrape.value(`sluice_dead_letters_total{pipeline="ingest-prices"}`) == float64(rejected) &&
			scrape.value(`sluice_records_out_total{component="postgres",pipeline="archive-prices"}`) == float64(valid)
	}, func() string { return scrape.counts() })
	if n := countRows(t, dsn, vars["ARCHIVE_TABLE"]); n != valid {
		t.Errorf("%s holds %d rows, want %d", vars["ARCHIVE_TABLE"], n, valid)
	}

	// An update of the ConfigMap with a mistake in it: the sidecar keeps the pipeline as it was and
	// says so in the metrics SluiceManifestRejected and the dashboard use; fixed, it reloads.
	archive := filepath.Join(manifests, "archive.yaml")
	good, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "type: postgres", "type: postgress", 1)
	if bad == string(good) {
		t.Fatal("archive.yaml has no postgres sink to break")
	}
	writeFile(t, archive, bad)
	proc.waitFor(t, "the broken manifest to be reported", func() bool {
		scrape = scrapeMetrics(t, base+"/metrics")
		return scrape.sum("sluice_manifest_errors", "archive.yaml") > 0 && scrape.sum("sluice_reload_total", `result="error"`) > 0
	}, func() string { return scrape.counts() })
	broken := scrape
	writeFile(t, archive, string(good))
	proc.waitFor(t, "the fixed manifest to be reloaded", func() bool {
		scrape = scrapeMetrics(t, base+"/metrics")
		return scrape.sum("sluice_manifest_errors", "") == 0 && scrape.sum("sluice_reload_total", `result="ok"`) > 0
	}, func() string { return scrape.counts() })
	// The series of sluice_manifest_errors went with the problem: the names are checked against
	// both scrapes.
	scrape.merge(broken)

	used := usedNames(t)
	if len(used.metrics) < 15 {
		t.Fatalf("found only %d metric names in the dashboard and the rules: %v", len(used.metrics), used.metrics)
	}
	for name, where := range used.metrics {
		if scrape.has(name) || name == "up" { // up: Prometheus's own series of each target
			continue
		}
		if why, ok := conditionalMetrics[name]; ok {
			if !sourceRegisters(t, repo, name) {
				t.Errorf("%s (used in %s) is not registered anywhere in the runtime's source", name, where)
			}
			t.Logf("%s is not in the scrape (%s); the runtime's source registers it", name, why)
			continue
		}
		t.Errorf("%s, used in %s, is not exported by a running sluice", name, where)
	}
	for label, where := range used.labels {
		if !scrape.labels[label] && !targetLabels[label] {
			t.Errorf("label %s, used in %s, is on no exported series and is not a target label of prometheus/prometheus.yaml", label, where)
		}
	}

	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-proc.done:
		if proc.err != nil {
			t.Fatalf("sluice after SIGTERM: %v\n%s", proc.err, proc.stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("sluice did not exit after SIGTERM\n%s", proc.stderr.String())
	}

	// A new pod: a fresh emptyDir for the data directory. Nothing the application was answered 2xx
	// for is lost, and nothing is archived twice: the consumer group's offsets, committed by the
	// drain, say where to resume.
	if err := os.RemoveAll(filepath.Join(tmp, "data")); err != nil {
		t.Fatal(err)
	}
	proc = start(t, bin, env, args)
	proc.waitFor(t, "/readyz to answer 200 after the restart", func() bool { return status(base+"/readyz", "") == 200 }, nil)
	valid2, _ := post(1000, 10)
	proc.waitFor(t, fmt.Sprintf("%d records out of archive-prices after the restart", valid2), func() bool {
		scrape = scrapeMetrics(t, base+"/metrics")
		return scrape.value(`sluice_records_out_total{component="postgres",pipeline="archive-prices"}`) >= float64(valid2)
	}, func() string { return scrape.counts() })
	seen := archivedSeqs(t, dsn, vars["ARCHIVE_TABLE"])
	for seq := range wantSeqs {
		if seen[seq] != 1 {
			t.Errorf("seq %d archived %d times, want once", seq, seen[seq])
		}
	}
	if len(seen) != len(wantSeqs) {
		t.Errorf("%d distinct seqs archived, want %d", len(seen), len(wantSeqs))
	}
}

// archivedSeqs counts the rows of the archive table by the seq of their price.
func archivedSeqs(t *testing.T, dsn, table string) map[int]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT (price->>'seq')::int FROM "+pgx.Identifier{table}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for rows.Next() {
		var seq int
		if err := rows.Scan(&seq); err != nil {
			t.Fatal(err)
		}
		seen[seq]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}

// conditionalMetrics are the names the kit uses that a healthy run does not export: their series
// appear once the event they count happens.
var conditionalMetrics = map[string]string{
	"sluice_transform_broken_total": "exported once a transform reported itself broken",
}

// targetLabels are the labels prometheus/prometheus.yaml puts on every series of a sidecar, plus
// the histogram bucket label.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true, "app": true, "le": true}

// sourceRegisters reports whether a non-test Go file of the runtime names the metric.
func sourceRegisters(t *testing.T, repo, name string) bool {
	t.Helper()
	found := false
	for _, dir := range []string{"internal", "runtime", "connectors"} {
		filepath.WalkDir(filepath.Join(repo, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || found || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			b, _ := os.ReadFile(p)
			found = bytes.Contains(b, []byte(`"`+name+`"`))
			return nil
		})
	}
	return found
}

type namesUsed struct {
	metrics map[string]string // name → the file that uses it
	labels  map[string]string
}

var (
	metricName   = regexp.MustCompile(`\b(?:sluice|process|go)_[a-z0-9_]+\b|\bup\{`)
	groupingList = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	matcherLabel = regexp.MustCompile(`[{,]\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
)

// usedNames collects the metric and label names of every PromQL expression of the dashboard and
// the alert rules.
func usedNames(t *testing.T) namesUsed {
	t.Helper()
	u := namesUsed{metrics: map[string]string{}, labels: map[string]string{}}
	add := func(where, expr string) {
		for _, m := range metricName.FindAllString(expr, -1) {
			u.metrics[strings.TrimSuffix(m, "{")] = where
		}
		for _, g := range groupingList.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					u.labels[l] = where
				}
			}
		}
		for _, m := range matcherLabel.FindAllStringSubmatch(expr, -1) {
			u.labels[m[1]] = where
		}
	}
	for _, e := range dashboardExprs(t) {
		add("grafana/sluice-dashboard.json", e)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "prometheus/alerts.yaml", &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			add("prometheus/alerts.yaml "+r.Alert, r.Expr)
		}
	}
	return u
}

// dashboardExprs returns the PromQL of every panel target and every query variable of the
// dashboard, in order.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana/sluice-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/sluice-dashboard.json: %v", err)
	}
	var exprs []string
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("dashboard: panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type == "query" {
			exprs = append(exprs, v.Definition) // label_values(SELECTOR, LABEL): names only
		}
	}
	return exprs
}

// grafanaVars are values for the dashboard's variables that make its queries plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h",
	"$namespace", ".*", "$pod", ".*", "$pipeline", ".*", "$job", "sluice")

// TestDashboardQueriesParse runs every PromQL expression of the dashboard, its variables replaced,
// through `promtool check rules` as recording rules. $SLUICE_PROMTOOL names promtool
// (`make test-kubernetes` installs it and sets it); without it, the test asks
// scripts/kubernetes-tools.sh for the promtool `make test` installed. When there is none, the test
// is skipped, and fails when CI=true.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := os.Getenv("SLUICE_PROMTOOL")
	if promtool == "" {
		promtool = installedPromtool(t)
	}
	if promtool == "" {
		msg := "SLUICE_PROMTOOL is not set and no promtool is installed: `make test-kubernetes` installs promtool and runs this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, e := range dashboardExprs(t) {
		if strings.HasPrefix(e, "label_values(") {
			continue
		}
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", len(rules)+1), Expr: grafanaVars.Replace(e)})
	}
	if len(rules) < 15 {
		t.Fatalf("only %d queries in the dashboard", len(rules))
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	writeFile(t, file, string(b))
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules (the dashboard's queries): %v\n%s\n%s", err, out, b)
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d rules found", len(rules))) {
		t.Fatalf("promtool did not check the %d queries:\n%s", len(rules), out)
	}
}

// metricsScrape is one scrape of /metrics: the families with samples, each sample's value by its
// series text, and every label name seen.
type metricsScrape struct {
	families map[string]bool
	values   map[string]float64
	labels   map[string]bool
}

func (s metricsScrape) has(name string) bool {
	if s.families[name] {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && s.families[base] {
			return true
		}
	}
	return false
}

func (s metricsScrape) value(series string) float64 { return s.values[series] }

// sum adds the values of the series of the metric name whose text contains substr.
func (s metricsScrape) sum(name, substr string) float64 {
	var n float64
	for k, v := range s.values {
		if strings.HasPrefix(k, name+"{") && strings.Contains(k, substr) {
			n += v
		}
	}
	return n
}

// merge adds the families and labels of o to s.
func (s metricsScrape) merge(o metricsScrape) {
	for k := range o.families {
		s.families[k] = true
	}
	for k := range o.labels {
		s.labels[k] = true
	}
}

// counts lists the record and dead-letter counters, for failure messages.
func (s metricsScrape) counts() string {
	var lines []string
	for k, v := range s.values {
		if strings.HasPrefix(k, "sluice_records_") || strings.HasPrefix(k, "sluice_dead_letters") || strings.HasPrefix(k, "sluice_pipeline_") ||
			strings.HasPrefix(k, "sluice_reload_total") || strings.HasPrefix(k, "sluice_manifest_errors") {
			lines = append(lines, fmt.Sprintf("%s %g", k, v))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)`)
var labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)

func scrapeMetrics(t *testing.T, url string) metricsScrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := metricsScrape{families: map[string]bool{}, values: map[string]float64{}, labels: map[string]bool{}}
	histograms := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && (f[3] == "histogram" || f[3] == "summary") {
			histograms[f[2]] = true
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		name := m[1]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && histograms[base] {
				name = base
			}
		}
		s.families[name] = true
		v, err := strconv.ParseFloat(m[3], 64)
		if err == nil {
			s.values[m[1]+m[2]] = v
		}
		for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
			s.labels[l[1]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func status(url, token string) int {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func buildSluice(t *testing.T, repo string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sluice")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/sluice: %v\n%s", err, out)
	}
	return bin
}

func createTopics(t *testing.T, addr string, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, 3, 1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		cl.Close()
		t.Fatalf("create topics %v: %v", topics, err)
	}
	t.Cleanup(func() {
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, topics...)
	})
}

func countRows(t *testing.T, dsn, table string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func dropTables(dsn string, tables ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	for _, tb := range tables {
		_, _ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{tb}.Sanitize())
	}
}

// process is a running sluice whose stderr is kept for failure messages.
type process struct {
	cmd    *exec.Cmd
	stderr *testenv.Buffer
	done   chan struct{}
	err    error
}

func start(t *testing.T, bin string, env, args []string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), stderr: &testenv.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitFor polls cond until it holds; it fails when the process exits first, or after two minutes,
// with what state (when not nil) says.
func (p *process) waitFor(t *testing.T, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		var now string
		if state != nil {
			now = state()
		}
		select {
		case <-p.done:
			t.Fatalf("sluice exited (%v) while waiting for %s\n%s\n%s", p.err, what, now, p.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s\n%s\n%s", what, now, p.stderr.String())
		}
	}
}

// TestScrapeAndExpressionParsing checks the text the metric-name check relies on: names and
// labels found in PromQL, and families found in the exposition format (histogram suffixes folded).
func TestScrapeAndExpressionParsing(t *testing.T) {
	expr := `histogram_quantile(0.99, sum by (le, pipeline) (rate(sluice_batch_duration_seconds_bucket{namespace=~"$namespace", component!="x"}[5m]))) and on (pipeline) up{job="sluice"} / go_memstats_heap_inuse_bytes`
	var names, labels []string
	for _, m := range metricName.FindAllString(expr, -1) {
		names = append(names, strings.TrimSuffix(m, "{"))
	}
	for _, g := range groupingList.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			labels = append(labels, strings.TrimSpace(l))
		}
	}
	for _, m := range matcherLabel.FindAllStringSubmatch(expr, -1) {
		labels = append(labels, m[1])
	}
	if want := []string{"sluice_batch_duration_seconds_bucket", "up", "go_memstats_heap_inuse_bytes"}; !slices.Equal(names, want) {
		t.Errorf("metric names %q, want %q", names, want)
	}
	if want := []string{"le", "pipeline", "pipeline", "namespace", "component", "job"}; !slices.Equal(labels, want) {
		t.Errorf("labels %q, want %q", labels, want)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "# TYPE sluice_batch_duration_seconds histogram\n"+
			`sluice_batch_duration_seconds_bucket{pipeline="p",le="+Inf"} 3`+"\n"+
			`sluice_batch_duration_seconds_count{pipeline="p"} 3`+"\n"+
			"# TYPE sluice_dead_letters_total counter\n"+
			`sluice_dead_letters_total{pipeline="p"} 7`+"\n")
	}))
	defer srv.Close()
	s := scrapeMetrics(t, srv.URL)
	for name, want := range map[string]bool{
		"sluice_batch_duration_seconds": true, "sluice_batch_duration_seconds_bucket": true,
		"sluice_dead_letters_total": true, "sluice_dead_letters": false, "sluice_records_in_total": false,
	} {
		if s.has(name) != want {
			t.Errorf("has(%s) = %v, want %v", name, !want, want)
		}
	}
	if v := s.value(`sluice_dead_letters_total{pipeline="p"}`); v != 7 {
		t.Errorf("dead letters %v, want 7", v)
	}
	if !s.labels["le"] || !s.labels["pipeline"] || s.labels["component"] {
		t.Errorf("labels %v: want le and pipeline only", s.labels)
	}
}

// installedPromtool returns the promtool that scripts/kubernetes-tools.sh installed under build/tools
// (a `make test` prerequisite), or "" when there is none. Under CI=true it runs the script, which
// answers at once when the tool is built, and builds it otherwise.
func installedPromtool(t *testing.T) string {
	t.Helper()
	script := filepath.Join("..", "..", "scripts", "kubernetes-tools.sh")
	if os.Getenv("CI") != "true" {
		if m, _ := filepath.Glob(filepath.Join("..", "..", "build", "tools", "promtool-*", "promtool")); len(m) == 0 {
			return ""
		}
	}
	out, err := exec.Command("bash", script, "promtool").Output()
	if err != nil {
		t.Logf("%s promtool: %v", script, err)
		return ""
	}
	return strings.TrimSpace(string(out))
}
