package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/admin"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"

	"github.com/sluicehq/sluice/internal/testenv"
)

// pageRuntime answers Info and Status with fixed pipelines; the page reads nothing else.
type pageRuntime struct {
	admin.Runtime
	pipes []supervisor.Info
}

func (p pageRuntime) Info() []supervisor.Info { return p.pipes }
func (p pageRuntime) Status() []supervisor.Status {
	out := make([]supervisor.Status, len(p.pipes))
	for i, in := range p.pipes {
		out[i] = in.Status
	}
	return out
}

func pageServer(t *testing.T, token string, pipes ...supervisor.Info) string {
	t.Helper()
	return newServer(t, pageRuntime{pipes: pipes}, token).URL
}

func info(name string, state pipeline.State, reason string, in, out float64) supervisor.Info {
	return supervisor.Info{
		Status:      supervisor.Status{Name: name, Status: pipeline.Status{State: state, Reason: reason}},
		InPerSecond: in, OutPerSecond: out,
	}
}

// The page is served at / and /status without the token (it holds no data), while the API it
// reads still needs the token; other paths are not swallowed by /.
func TestStatusPageIsOpenAndHoldsNoData(t *testing.T) {
	base := pageServer(t, "s3cret", info("orders-secret-name", pipeline.StateRunning, "", 10, 10))
	for _, path := range []string{"/", "/status"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET %s = %d %q, want 200 text/html", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("GET %s: no %s header", path, h)
			}
		}
		code, body := do(t, "GET", base+path, "", "")
		if code != 200 || strings.Contains(body, "orders-secret-name") || !strings.Contains(body, "/api/v1/pipelines") {
			t.Errorf("GET %s = %d; the page must hold no data and read the API", path, code)
		}
	}
	if code, _ := do(t, "GET", base+"/api/v1/pipelines", "", ""); code != 401 {
		t.Errorf("the API without a token = %d, want 401", code)
	}
	for _, path := range []string{"/nothing", "/status/x", "/index.html"} {
		if code, _ := do(t, "GET", base+path, "s3cret", ""); code != 404 {
			t.Errorf("GET %s = %d, want 404 (the page is not a catch-all)", path, code)
		}
	}
	if code, _ := do(t, "POST", base+"/", "", ""); code != 405 && code != 401 {
		t.Errorf("POST / = %d, want 405 or 401", code)
	}
}

// The Content-Security-Policy allows exactly the page's inline style and script (by hash) and
// requests to its own origin; the script builds the page with DOM calls, never with markup
// strings, and loads nothing from elsewhere.
func TestStatusPageScriptAndPolicy(t *testing.T) {
	resp, err := http.Get(pageServer(t, "") + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, body := do(t, "GET", resp.Request.URL.String(), "", "")
	csp := resp.Header.Get("Content-Security-Policy")
	for _, tag := range []string{"style", "script"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(body, -1)
		if len(m) != 1 {
			t.Fatalf("want one inline <%s>, got %d", tag, len(m))
		}
		sum := sha256.Sum256([]byte(m[0][1]))
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "localStorage", "src=\"http", "href=\"http", "@import"} {
		if strings.Contains(body, bad) {
			t.Errorf("the page uses %q", bad)
		}
	}
	if !strings.Contains(body, "sessionStorage") || !strings.Contains(body, `"Authorization"`) {
		t.Error("the page does not keep the token in sessionStorage and send it as a header")
	}
}

// dumpDOM loads url in headless Chromium, lets its scripts run for a few seconds of virtual
// time and returns the serialized DOM.
func dumpDOM(t *testing.T, browser, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"--headless", "--disable-gpu", "--no-first-run", "--user-data-dir=" + testenv.ChromiumProfile(t), "--virtual-time-budget=3000", "--dump-dom", url}
	if os.Geteuid() == 0 {
		args = append([]string{"--no-sandbox"}, args...)
	}
	out, err := exec.CommandContext(ctx, browser, args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr)
	}
	return string(out)
}

// Names and reasons that look like markup are shown as text in a real browser: no element is
// made from them and no script of theirs runs.
func TestStatusPageEscapesInChromium(t *testing.T) {
	browser := testenv.Chromium(t)
	evilName := `<img src=x id=injected onerror="document.title='pwned'">`
	evilReason := `sink "x": <script>document.title='pwned'</script><b id=bold>`
	base := pageServer(t, "",
		info(evilName, pipeline.StateDegraded, evilReason, 12.5, 3),
		info("plain", pipeline.StateRunning, "", 1500, 1499))
	dom := dumpDOM(t, browser, base+"/")
	if !strings.Contains(dom, `<tr data-pipeline="plain">`) {
		t.Fatalf("the table has no row for the plain pipeline; DOM:\n%s", dom)
	}
	for _, bad := range []string{`id="injected"`, `id=injected>`, `id="bold"`, "pwned</title>"} {
		if strings.Contains(dom, bad) {
			t.Errorf("the page made markup of a name or reason (%s); DOM:\n%s", bad, dom)
		}
	}
	for _, want := range []string{
		`<td class="name">&lt;img src=x id=injected onerror="document.title='pwned'"&gt;</td>`,
		`sink "x": &lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;b id=bold&gt;`,
		`<td class="num in">1,500</td>`, `<td class="num in">12.5</td>`, `<span class="state degraded">degraded</span>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM lacks %s", want)
		}
	}
}

// With a token set and none given, the page asks for it instead of showing data.
func TestStatusPageAsksForTheTokenInChromium(t *testing.T) {
	browser := testenv.Chromium(t)
	base := pageServer(t, "s3cret", info("orders", pipeline.StateRunning, "", 10, 10))
	dom := dumpDOM(t, browser, base+"/status")
	if !strings.Contains(dom, `<form id="auth" autocomplete="off" class="shown">`) || !strings.Contains(dom, "token required") {
		t.Errorf("the page does not ask for the token; DOM:\n%s", dom)
	}
	if strings.Contains(dom, "orders") {
		t.Errorf("the page shows data without the token; DOM:\n%s", dom)
	}
}
