package manifests

import (
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// minLeaseRetry is the shortest lease retry: a standby tries, and the holder checks, at most
// ten times a second.
const minLeaseRetry = 100 * time.Millisecond

// Kubernetes object names: a namespace is a DNS label, a Lease's name a DNS subdomain.
var (
	dnsLabelRe     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomainRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// leaseDesc documents spec.lease.
const leaseDesc = "Makes the pipeline a singleton across replicas: of the processes running a pipeline with the same lease, only the one holding it runs it; the others stand by (state starting, ready, reason standby) and take the lease within seconds when the holder dies or stops. The lease is a Postgres session advisory lock (postgres:) or a Kubernetes Lease object (kubernetes:), exactly one of them; while it is held, the source positions are kept there too (Postgres: table sluice_lease_positions; Kubernetes: an annotation of the Lease), so the next holder resumes where the last one committed. Not with aggregate stages (their state stays in the local store)."

// leaseFields are the keys of spec.lease.
var leaseFields = []connector.Field{
	{Name: "postgres", Type: connector.TypeObject, Description: "The Postgres database that holds the lease and the positions. Connect to Postgres itself (or a session-pooling proxy): a session advisory lock does not survive transaction pooling.",
		Fields: []connector.Field{
			{Name: "dsn", Type: connector.TypeString, Required: true, Secret: true, Description: "Connection string: `postgres://USER:PASSWORD@HOST:PORT/DB` or `key=value` pairs."},
		}},
	{Name: "kubernetes", Type: connector.TypeObject, Description: "A Lease object (coordination.k8s.io/v1) named after the lease, in the cluster the process runs in, reached with its service account (which needs get, create and update on leases). The holder renews it every retry and stops after two thirds of duration without a renewal; a standby takes it once it has seen no renewal for duration. Tested against a fake API server only.",
		Fields: []connector.Field{
			{Name: "namespace", Type: connector.TypeString, Description: "Namespace of the Lease. Unset: the service account's namespace."},
			{Name: "server", Type: connector.TypeString, Description: "The API server's https:// URL, to reach a cluster from outside it. Unset: the in-cluster address."},
			{Name: "token_file", Type: connector.TypeString, Description: "File holding the bearer token, read again for every request; relative to the manifest's directory. Unset: the service account's token."},
			{Name: "ca_file", Type: connector.TypeString, Description: "PEM file of the certificates the API server's must chain to; relative to the manifest's directory. Unset: the service account's ca.crt."},
			{Name: "duration", Type: connector.TypeDuration, Default: pipeline.DefaultLeaseDuration, Description: "The Lease's leaseDurationSeconds: how long a holder that stopped renewing keeps the lease. Whole seconds, at least 1s and at least three times retry."},
		}},
	{Name: "name", Type: connector.TypeString, Description: "Name of the lease: pipelines with the same lease name in the same database exclude each other and share positions. Unset: the pipeline's name."},
	{Name: "retry", Type: connector.TypeDuration, Default: pipeline.DefaultLeaseRetry, Description: "How often a standby tries to take the lease and the holder checks it still holds it; at least 100ms. A holder that lost its connection stops within about this long."},
}

// lease decodes spec.lease.
func (d *docDecoder) lease(p *Pipeline, e entry) {
	l := loc{path: "spec.lease"}
	fields := map[string]Pos{}
	col := &collector{fields: fields, prefix: "spec.lease.", doc: &d.secrets}
	v, ok := d.object(e.val, e.key, leaseFields, l, false, col)
	if !ok {
		return
	}
	at := func(field string) Pos {
		if p, ok := fields[field]; ok {
			return p
		}
		return d.pos(e.key)
	}
	_, pgSet := fields["postgres"]
	_, k8sSet := fields["kubernetes"]
	if pgSet == k8sSet {
		msg := "spec.lease: set postgres or kubernetes"
		if pgSet {
			msg = "spec.lease: set postgres or kubernetes, not both"
		}
		d.report(d.pos(e.key), "postgres: {dsn: ...} for an advisory lock, or kubernetes: {} for a Lease object in the cluster", "%s", msg)
		return
	}
	var dsn string
	if pgSet {
		pg, _ := v["postgres"].(map[string]any)
		dsn, _ = pg["dsn"].(string)
		if why := checkDSN(dsn); why != "" {
			d.report(at("postgres.dsn"), "write postgres://USER:PASSWORD@HOST:PORT/DB or key=value pairs (host=... dbname=...)", "spec.lease.postgres.dsn: %s", why)
			ok = false
		}
	}
	name, _ := v["name"].(string)
	if _, set := fields["name"]; set && strings.TrimSpace(name) == "" {
		d.report(at("name"), "remove name: to use the pipeline's name", "spec.lease.name: must not be empty")
		ok = false
	}
	retry, _ := v["retry"].(time.Duration)
	if retry < minLeaseRetry {
		d.report(at("retry"), "use 100ms or more; the default is "+pipeline.DefaultLeaseRetry.String(), "spec.lease.retry: must be at least %s, got %s", minLeaseRetry, retry)
		ok = false
	}
	var k8s *pipeline.KubernetesLease
	if k8sSet {
		kv, _ := v["kubernetes"].(map[string]any)
		k8s = &pipeline.KubernetesLease{}
		k8s.Namespace, _ = kv["namespace"].(string)
		k8s.Duration, _ = kv["duration"].(time.Duration)
		k8s.Server, _ = kv["server"].(string)
		k8s.TokenFile, _ = kv["token_file"].(string)
		k8s.CAFile, _ = kv["ca_file"].(string)
		if u, err := url.Parse(k8s.Server); k8s.Server != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
			d.report(at("kubernetes.server"), "write https://HOST:PORT, as in a kubeconfig's server:", "spec.lease.kubernetes.server: must be an https:// URL")
			ok = false
		}
		k8s.TokenFile, k8s.CAFile = abs(d.file, k8s.TokenFile), abs(d.file, k8s.CAFile)
		if ns := k8s.Namespace; ns != "" && !dnsLabelRe.MatchString(ns) {
			d.report(at("kubernetes.namespace"), "a namespace is lowercase letters, digits and '-', at most 63", "spec.lease.kubernetes.namespace: %q is not a valid namespace", ns)
			ok = false
		}
		if du := k8s.Duration; du < time.Second || du%time.Second != 0 || du < 3*retry {
			d.report(at("kubernetes.duration"), "the Lease counts whole seconds; give the holder at least three retries per duration", "spec.lease.kubernetes.duration: must be whole seconds, at least 1s and at least three times retry (%s), got %s", retry, du)
			ok = false
		}
		objName := name
		if objName == "" {
			objName = p.Name
		}
		if !dnsSubdomainRe.MatchString(objName) || len(objName) > 253 {
			d.report(at("name"), "set lease.name to lowercase letters, digits, '-' and '.'", "spec.lease: %q cannot name a Kubernetes Lease object", objName)
			ok = false
		}
	}
	for _, t := range p.Transforms {
		if t.Aggregate != nil {
			d.report(d.pos(e.key), "run aggregate stages in a pipeline without lease:, reading what the leased pipeline writes",
				"spec.lease: transform %q is an aggregate stage, whose state stays in the local checkpoint store and would not move with the lease", t.Name)
			ok = false
			break
		}
	}
	if ok {
		p.Lease = &pipeline.Lease{Postgres: dsn, Kubernetes: k8s, Name: name, Retry: retry, Secrets: col.secrets}
	}
}

// checkDSN says what is wrong with a Postgres connection string, without quoting it (it holds
// a password), or returns "".
func checkDSN(dsn string) string {
	switch {
	case strings.TrimSpace(dsn) == "":
		return "is empty"
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if u, err := url.Parse(dsn); err != nil || u.Host == "" && u.Query().Get("host") == "" {
			return "is not a valid postgres:// URL"
		}
	case strings.Contains(dsn, "://"):
		return "is a URL of another scheme; use postgres://"
	case !strings.Contains(dsn, "="):
		return "is neither a postgres:// URL nor key=value pairs"
	}
	return ""
}

// abs resolves path relative to the manifest file's directory, like wasm: paths.
func abs(manifest, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(manifest), path)
}
