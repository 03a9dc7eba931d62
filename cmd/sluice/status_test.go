package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluicehq/sluice/internal/testenv"
)

// statusPipelines writes one manifest per name into dir: a generator at the given rate into a
// drop sink (a file sink for the second, so both kinds show).
func statusPipelines(t *testing.T, dir string, names []string, rates []int) {
	t.Helper()
	for i, name := range names {
		sink := "{name: out, type: drop}"
		if i == 1 {
			sink = fmt.Sprintf("{name: out, type: file, config: {path: %q}}", filepath.Join(dir, name+".out"))
		}
		writeFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {type: generate, config: {rate: %d, template: "{{seq}}"}}
  sinks: [%s]
`, name, rates[i], sink))
	}
}

// waitFlowing waits until the admin API reports every named pipeline running with records
// coming in.
func waitFlowing(t *testing.T, r *running, base, token string, names []string) {
	t.Helper()
	r.waitFor(t, "every pipeline running with a rate", func() bool {
		code, body := call(t, "GET", base+"/api/v1/pipelines", token, "")
		if code != 200 {
			return false
		}
		var list struct {
			Pipelines []struct {
				Name  string  `json:"name"`
				State string  `json:"state"`
				In    float64 `json:"records_in_per_second"`
			}
		}
		if json.Unmarshal([]byte(body), &list) != nil {
			return false
		}
		ok := 0
		for _, p := range list.Pipelines {
			for _, n := range names {
				if p.Name == n && p.State == "running" && p.In > 0 {
					ok++
				}
			}
		}
		return ok == len(names)
	})
}

// missing fails the test under CI=true and skips it otherwise.
func missing(t *testing.T, what string) {
	t.Helper()
	testenv.Missing(t, what+": run `make chromium` (scripts/setup-chromium.sh)")
}

// headless runs the browser on url with args and returns its stdout.
func headless(t *testing.T, chrome, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := []string{"--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + testenv.ChromiumProfile(t)}
	if os.Geteuid() == 0 {
		all = append(all, "--no-sandbox") // Chromium refuses to run as root with its sandbox
	}
	all = append(append(all, args...), url)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, chrome, all...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", chrome, strings.Join(all, " "), err, stderr.String())
	}
	return out
}

var rowRE = regexp.MustCompile(`<tr data-pipeline="([^"]*)"><td class="name">([^<]*)</td><td class="state-cell"><span class="state [a-z]+">([a-z]+)</span>.*?<td class="num in">([0-9.,]+)</td><td class="num out">([0-9.,]+)</td>`)

// TestStatusPageInChromium runs `sluice run` with three pipelines and loads the status page in
// headless Chromium: the rendered table holds every pipeline, running, with its rates, and a
// screenshot of the page is a PNG of the window's size whose text (read back by Tesseract) names
// every pipeline.
func TestStatusPageInChromium(t *testing.T) {
	chrome := testenv.Chromium(t)
	dir := t.TempDir()
	names := []string{"orders-feed", "clicks-stream", "audit-trail"}
	statusPipelines(t, dir, names, []int{1500, 800, 300})
	addr := freeAddr(t)
	r := startSluice(t, nil, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, "--log-level", "warn", dir)
	base := "http://" + addr
	waitFlowing(t, r, base, "", names)

	// The DOM once the page's script ran: one row per pipeline, with numbers.
	var dom string
	r.waitFor(t, "the page's table to show every pipeline with its rates", func() bool {
		dom = string(headless(t, chrome, base+"/", "--virtual-time-budget=3000", "--dump-dom"))
		rows := map[string]bool{}
		for _, m := range rowRE.FindAllStringSubmatch(dom, -1) {
			in, err := strconv.ParseFloat(strings.ReplaceAll(m[4], ",", ""), 64)
			if err == nil && m[1] == m[2] && m[3] == "running" && in > 0 {
				rows[m[2]] = true
			}
		}
		for _, n := range names {
			if !rows[n] {
				return false
			}
		}
		return len(rows) == len(names)
	})
	if !strings.Contains(dom, addr) || !strings.Contains(dom, `<polyline`) {
		t.Errorf("the page lacks the admin address or the graphs:\n%s", dom)
	}

	// The screenshot: a PNG of the window's size with more than a blank page in it.
	const w, h = 1280, 720
	shot := filepath.Join(dir, "status.png")
	var text string
	tesseract, _ := exec.LookPath("tesseract")
	r.waitFor(t, "a screenshot naming every pipeline", func() bool {
		headless(t, chrome, base+"/", fmt.Sprintf("--window-size=%d,%d", w, h), "--virtual-time-budget=5000", "--screenshot="+shot)
		checkScreenshot(t, shot, w, h)
		if tesseract == "" {
			return true
		}
		out, err := exec.Command(tesseract, shot, "-").Output()
		if err != nil {
			t.Fatalf("tesseract %s: %v", shot, err)
		}
		text = string(out)
		for _, n := range append([]string{"PIPELINE", "running"}, names...) {
			if !strings.Contains(text, n) {
				return false
			}
		}
		return true
	})
	if tesseract == "" {
		missing(t, "no tesseract on PATH to read the screenshot (the DOM and the PNG were checked)")
	}
	if keep := os.Getenv("SLUICE_STATUS_SCREENSHOT"); keep != "" {
		b, err := os.ReadFile(shot)
		if err != nil || os.WriteFile(keep, b, 0o644) != nil {
			t.Fatalf("keeping the screenshot in %s: %v", keep, err)
		}
	}
	t.Logf("the screenshot's text:\n%s", text)
	r.stop(t)
}

// checkScreenshot fails unless path is a PNG of w×h pixels of reasonable size with text and
// lines on it (many colours, not a blank or single-colour page).
func checkScreenshot(t *testing.T, path string, w, h int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 5<<10 || len(b) > 2<<20 {
		t.Fatalf("%s is %d bytes; a screenshot of the page is between 5 KB and 2 MB", path, len(b))
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	if img.Bounds() != image.Rect(0, 0, w, h) {
		t.Fatalf("%s is %v, want %dx%d", path, img.Bounds(), w, h)
	}
	colours := map[[3]uint32]bool{}
	for y := 0; y < h; y += 2 {
		for x := 0; x < w; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
		}
	}
	if len(colours) < 16 {
		t.Fatalf("%s has %d colours: a blank page", path, len(colours))
	}
}

// status runs `sluice status` with args and env added to the test's, and returns its stdout,
// stderr and exit code.
func status(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildSluice(t), append([]string{"status"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("sluice status: %v", err)
	return "", "", 0
}

// TestStatusCommand runs `sluice status` against a running sluice with a token: the table (once,
// since stdout is not a terminal), JSON, the token from a file and from the environment, the
// errors for a missing or wrong token and for an address where nothing listens, and --watch
// redrawing until the server goes away and then saying so.
func TestStatusCommand(t *testing.T) {
	dir := t.TempDir()
	names := []string{"clicks-stream", "orders-feed"} // in the order of their files, as sluice lists them
	statusPipelines(t, dir, names, []int{700, 1200})
	const token = "status-token-42"
	tokenFile := writeFile(t, filepath.Join(dir, "token"), token+"\n")
	addr := freeAddr(t)
	r := startSluice(t, nil, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, "--admin-token-file", tokenFile, "--log-level", "warn", dir)
	waitFlowing(t, r, "http://"+addr, token, names)

	out, errOut, code := status(t, nil, "--admin-addr", addr, "--admin-token-file", tokenFile)
	if code != 0 {
		t.Fatalf("sluice status = %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "sluice at "+addr+"  2 pipelines") || strings.Contains(out, "\x1b") {
		t.Errorf("the table does not start with the admin address, or has escape codes:\n%q", out)
	}
	if len(lines) != 5 || !strings.HasPrefix(lines[2], "PIPELINE") {
		t.Fatalf("want a heading, a header and two rows:\n%s", out)
	}
	for i, name := range names {
		f := strings.Fields(lines[3+i])
		if len(f) != 8 || f[0] != name || f[1] != "running" || f[4] != "-" || f[7] != "0" {
			t.Errorf("row %d = %q, want %s running with its rates, no lag, no restarts", i, lines[3+i], name)
			continue
		}
		in, err := strconv.ParseFloat(strings.ReplaceAll(f[2], ",", ""), 64)
		if err != nil || in <= 0 {
			t.Errorf("row %d: in/s %q, want a positive rate", i, f[2])
		}
	}

	out, errOut, code = status(t, []string{"SLUICE_ADMIN_TOKEN=" + token}, "--admin-addr", addr, "--json")
	var list struct {
		Pipelines []struct {
			Name string  `json:"name"`
			In   float64 `json:"records_in"`
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Pipelines) != 2 || list.Pipelines[0].In <= 0 {
		t.Errorf("--json with the token from the environment = %d %s %s", code, out, errOut)
	}

	for _, tc := range []struct {
		what string
		env  []string
		args []string
		want string
	}{
		{"no token", nil, []string{"--admin-addr", addr}, "the admin API on " + addr + " requires a token: give the token of `sluice run` with --admin-token-file"},
		{"a wrong token", []string{"SLUICE_ADMIN_TOKEN=wrong"}, []string{"--admin-addr", addr}, "the admin API on " + addr + " refused the token"},
		{"nothing listening", nil, []string{"--admin-addr", freeAddr(t)}, "no sluice is listening on 127.0.0.1:"},
		{"an empty address", nil, []string{"--admin-addr", ""}, "--admin-addr is empty"},
		{"a bad address", nil, []string{"--admin-addr", "localhost"}, `--admin-addr "localhost": want HOST:PORT`},
		{"both modes", nil, []string{"--admin-addr", addr, "--once", "--watch"}, "--once and --watch are both set"},
	} {
		out, errOut, code := status(t, tc.env, tc.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.what, code, out, errOut, tc.want)
		}
	}
	if _, errOut, _ := status(t, nil, "--admin-addr", freeAddr(t)); !strings.Contains(errOut, "start one with `sluice run`, or point --admin-addr at it") {
		t.Errorf("nothing listening: %q lacks the fix", errOut)
	}

	// --watch redraws in place; when the server goes away it says so and keeps asking.
	w := startWatch(t, "--admin-addr", addr, "--admin-token-file", tokenFile, "--watch", "--interval", "200ms")
	frames := func() []string { return strings.Split(w.stdout.String(), "\x1b[H")[1:] }
	w.waitFor(t, "two frames naming both pipelines", func() bool {
		n := 0
		for _, f := range frames() {
			if strings.Contains(f, names[0]) && strings.Contains(f, names[1]) && strings.Contains(f, "\x1b[J") {
				n++
			}
		}
		return n >= 2
	})
	r.stop(t)
	w.waitFor(t, "the watch to say nothing listens any more", func() bool {
		f := frames()
		return len(f) > 0 && strings.Contains(f[len(f)-1], "no sluice is listening on "+addr)
	})
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	<-w.done
	if w.err != nil {
		t.Fatalf("sluice status --watch after SIGTERM: %v, want exit 0; stderr:\n%s", w.err, w.stderr)
	}
	if !strings.HasSuffix(w.stdout.String(), "\x1b[?25h") {
		t.Errorf("--watch did not show the cursor again on exit: %q", tail(w.stdout.String(), 80))
	}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// watching is a `sluice status` process started by startWatch.
type watching struct {
	*running
	stdout *testenv.Buffer
}

// startWatch starts `sluice status` in the background with its stdout kept; it is killed when
// the test ends, if it still runs.
func startWatch(t *testing.T, args ...string) watching {
	t.Helper()
	w := watching{&running{stderr: &testenv.Buffer{}, done: make(chan struct{})}, &testenv.Buffer{}}
	w.cmd = exec.Command(buildSluice(t), append([]string{"status"}, args...)...)
	w.cmd.Stdout, w.cmd.Stderr = w.stdout, w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.err = w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	})
	return w
}

// devtools is a page of a headless Chromium driven over the DevTools protocol.
type devtools struct {
	t    *testing.T
	conn *websocket.Conn
	next int
}

// openDevtools starts Chromium with a DevTools port and connects to its first page.
func openDevtools(t *testing.T, chrome string) *devtools {
	t.Helper()
	args := []string{"--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--window-size=1280,720",
		"--remote-debugging-port=0", "--user-data-dir=" + testenv.ChromiumProfile(t)}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox")
	}
	cmd := exec.Command(chrome, append(args, "about:blank")...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helper processes go with it
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "DevTools listening on "); ok {
				found <- u
			}
		}
	}()
	var browserURL string
	select {
	case browserURL = <-found:
	case <-time.After(time.Minute):
		t.Fatal("Chromium did not print its DevTools address within a minute")
	}
	u, err := neturl.Parse(browserURL)
	if err != nil {
		t.Fatal(err)
	}
	var pageWS string
	for deadline := time.Now().Add(time.Minute); pageWS == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Chromium lists no page target")
		}
		code, body := call(t, "GET", "http://"+u.Host+"/json/list", "", "")
		var targets []struct{ Type, WebSocketDebuggerURL string }
		if code != 200 || json.Unmarshal([]byte(body), &targets) != nil {
			continue
		}
		for _, tg := range targets {
			if tg.Type == "page" {
				pageWS = tg.WebSocketDebuggerURL
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, pageWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(64 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &devtools{t: t, conn: conn}
}

// do sends one DevTools command and returns its result, skipping the events in between.
func (d *devtools) do(method string, params any) json.RawMessage {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.next++
	msg, _ := json.Marshal(map[string]any{"id": d.next, "method": method, "params": params})
	if err := d.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		d.t.Fatalf("DevTools %s: %v", method, err)
	}
	for {
		_, b, err := d.conn.Read(ctx)
		if err != nil {
			d.t.Fatalf("DevTools %s: %v", method, err)
		}
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{ Message string }
		}
		if json.Unmarshal(b, &resp) != nil || resp.ID != d.next {
			continue
		}
		if resp.Error != nil {
			d.t.Fatalf("DevTools %s: %s", method, resp.Error.Message)
		}
		return resp.Result
	}
}

// eval runs a JavaScript expression in the page and returns its value as JSON.
func (d *devtools) eval(expr string) string {
	d.t.Helper()
	var res struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails *struct{ Text string }
	}
	if err := json.Unmarshal(d.do("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &res); err != nil {
		d.t.Fatal(err)
	}
	if res.ExceptionDetails != nil {
		d.t.Fatalf("%s: %s", expr, res.ExceptionDetails.Text)
	}
	return string(res.Result.Value)
}

// TestStatusPageTokenInChromium runs `sluice run` with a token and drives the status page in
// headless Chromium as a person would: the page asks for the token, a wrong one is refused and
// forgotten, the right one shows the pipelines, stays in the tab's session storage across a
// reload and never appears in the URL or in sluice's log.
func TestStatusPageTokenInChromium(t *testing.T) {
	chrome := testenv.Chromium(t)
	dir := t.TempDir()
	names := []string{"clicks-stream", "orders-feed"}
	statusPipelines(t, dir, names, []int{400, 900})
	const token = "page-token-7f3a9c"
	tokenFile := writeFile(t, filepath.Join(dir, "token"), token)
	addr := freeAddr(t)
	r := startSluice(t, nil, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, "--admin-token-file", tokenFile, "--log-level", "debug", dir)
	base := "http://" + addr
	waitFlowing(t, r, base, token, names)

	d := openDevtools(t, chrome)
	d.do("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": false})
	d.do("Page.navigate", map[string]any{"url": base + "/"})
	r.waitFor(t, "the page to ask for the token", func() bool {
		return d.eval(`document.getElementById("conn")?.textContent`) == `"token required"`
	})
	if rows := d.eval(`document.querySelectorAll("#rows tr").length`); rows != "0" {
		t.Fatalf("%s rows shown without the token", rows)
	}
	submit := func(tok string) {
		d.eval(fmt.Sprintf(`document.getElementById("token").value = %q; document.getElementById("auth").requestSubmit(); true`, tok))
	}
	submit("not-the-token")
	r.waitFor(t, "the wrong token to be refused", func() bool {
		return d.eval(`document.getElementById("autherr").textContent`) == `"The token was refused."`
	})
	if got := d.eval(`sessionStorage.getItem("sluice.adminToken")`); got != "null" {
		t.Errorf("a refused token stays in session storage: %s", got)
	}

	submit(token)
	showsPipelines := func() bool {
		return d.eval(`Array.from(document.querySelectorAll("#rows tr td.name")).map(e => e.textContent).join(",")`) == `"`+strings.Join(names, ",")+`"` &&
			d.eval(`document.getElementById("conn")?.textContent`) == `"live"`
	}
	r.waitFor(t, "the pipelines with the right token", showsPipelines)
	if got := d.eval(`sessionStorage.getItem("sluice.adminToken")`); got != `"`+token+`"` {
		t.Errorf("session storage holds %s, want the token", got)
	}
	if got := d.eval(`localStorage.length`); got != "0" {
		t.Errorf("local storage holds %s items; the token belongs to the tab only", got)
	}
	d.do("Page.reload", map[string]any{})
	r.waitFor(t, "the pipelines after a reload, without asking again", showsPipelines)
	r.waitFor(t, "graphs with a few samples", func() bool {
		return d.eval(`(document.querySelectorAll("#graphs polyline.in")[1]?.getAttribute("points") || "").split(" ").length >= 3`) == "true"
	})
	if href := d.eval(`location.href`); strings.Contains(href, token) || href != `"`+base+`/"` {
		t.Errorf("the page's URL is %s", href)
	}

	var shot struct{ Data []byte }
	if err := json.Unmarshal(d.do("Page.captureScreenshot", map[string]any{"format": "png"}), &shot); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "status-token.png")
	if err := os.WriteFile(path, shot.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, path, 1280, 720)
	tesseract, err := exec.LookPath("tesseract")
	if err == nil {
		out, err := exec.Command(tesseract, path, "-").Output()
		if err != nil {
			t.Fatalf("tesseract: %v", err)
		}
		for _, n := range names {
			if !strings.Contains(string(out), n) {
				t.Errorf("the screenshot's text lacks %s:\n%s", n, out)
			}
		}
	}
	r.stop(t)
	if strings.Contains(r.stderr.String(), token) {
		t.Errorf("sluice's log holds the token:\n%s", r.stderr)
	}
	if tesseract == "" {
		missing(t, "no tesseract on PATH to read the screenshot (the page was checked through the DOM)")
	}
}
