package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/runtime/supervisor"
)

type statusFlags struct {
	once, watch, json bool
	interval          time.Duration
}

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		var f statusFlags
		cmd := &cobra.Command{
			Use:   "status",
			Short: "Show the pipelines of a running sluice: state, rates, lag, dead letters, errors",
			Long: `Status reads the admin API of a running ` + "`sluice run`" + ` (--admin-addr, with the token of
--admin-token, --admin-token-file or $` + adminTokenEnv + `) and prints a table of its pipelines.

In a terminal the table is redrawn every --interval until Ctrl-C; when stdout is not a terminal,
or with --once, it is printed once. --json prints the API's answer instead of the table.
The same data, with throughput graphs, is on the status page at http://ADMIN-ADDR/.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if f.once && f.watch {
					return errors.New("--once and --watch are both set: pick one")
				}
				if f.interval < 100*time.Millisecond {
					return fmt.Errorf("--interval %s: want 100ms or more", f.interval)
				}
				tok, err := g.adminToken()
				if err != nil {
					return err
				}
				c, err := newStatusClient(g.AdminAddr, tok)
				if err != nil {
					return err
				}
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				out := cmd.OutOrStdout()
				watch := f.watch || (!f.once && !f.json && isTerminal(out))
				if !watch {
					return c.printOnce(ctx, out, f.json)
				}
				return c.watch(ctx, out, f.json, f.interval)
			},
		}
		fl := cmd.Flags()
		fl.BoolVar(&f.once, "once", false, "print the table once and exit (the default when stdout is not a terminal)")
		fl.BoolVar(&f.watch, "watch", false, "redraw the table every --interval until interrupted (the default in a terminal)")
		fl.BoolVar(&f.json, "json", false, "print the API's JSON (GET /api/v1/pipelines) instead of the table")
		fl.DurationVar(&f.interval, "interval", time.Second, "how often --watch redraws")
		return cmd
	})
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// statusClient reads GET /api/v1/pipelines of one admin server.
type statusClient struct {
	addr  string // as the user gave it, for messages
	base  *url.URL
	token string
	http  *http.Client
}

func newStatusClient(addr, token string) (*statusClient, error) {
	if strings.TrimSpace(addr) == "" {
		return nil, errors.New("--admin-addr is empty: give the address of the admin server of `sluice run` (default 127.0.0.1:9464)")
	}
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--admin-addr %q: want HOST:PORT (such as 127.0.0.1:9464) or an http(s):// URL", addr)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return nil, fmt.Errorf("--admin-addr %q: want HOST:PORT (such as 127.0.0.1:9464): %v", addr, err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &statusClient{addr: addr, base: u, token: token, http: &http.Client{Timeout: 5 * time.Second}}, nil
}

// fetch returns the pipelines and the raw JSON answer, or an error that says what to do.
func (c *statusClient) fetch(ctx context.Context) ([]supervisor.Info, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/api/v1/pipelines", nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, fmt.Errorf("no sluice is listening on %s: start one with `sluice run`, or point --admin-addr at it", c.addr)
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, nil, fmt.Errorf("cannot reach %s (%v): check --admin-addr, or start sluice there with `sluice run`", c.addr, op.Err)
		}
		return nil, nil, fmt.Errorf("status: ask %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("status: read the answer of %s: %w", c.addr, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized && c.token == "":
		return nil, nil, fmt.Errorf("the admin API on %s requires a token: give the token of `sluice run` with --admin-token-file, --admin-token or $%s", c.addr, adminTokenEnv)
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, nil, fmt.Errorf("the admin API on %s refused the token: give the one `sluice run` was started with (--admin-token-file, --admin-token or $%s)", c.addr, adminTokenEnv)
	case resp.StatusCode == http.StatusNotFound:
		return nil, nil, fmt.Errorf("%s answers but has no /api/v1/pipelines: is it the admin address of a sluice (of this version)?", c.addr)
	case resp.StatusCode != http.StatusOK:
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, nil, fmt.Errorf("the admin API on %s answered %d: %s", c.addr, resp.StatusCode, e.Error)
		}
		return nil, nil, fmt.Errorf("the admin API on %s answered %s", c.addr, resp.Status)
	}
	var list struct {
		Pipelines []supervisor.Info `json:"pipelines"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, nil, fmt.Errorf("%s answers but not with the admin API's JSON (%v): is it the admin address of a sluice?", c.addr, err)
	}
	return list.Pipelines, body, nil
}

func (c *statusClient) printOnce(ctx context.Context, out io.Writer, asJSON bool) error {
	ps, raw, err := c.fetch(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		_, err = out.Write(raw)
		return err
	}
	var b bytes.Buffer
	writeStatusTable(&b, c.addr, ps, time.Now())
	_, err = out.Write(b.Bytes())
	return err
}

// watch redraws the table every interval until ctx ends. The first failure to reach the server
// is returned; later ones are shown in place of the table while it keeps asking.
func (c *statusClient) watch(ctx context.Context, out io.Writer, asJSON bool, interval time.Duration) error {
	ps, raw, err := c.fetch(ctx)
	if err != nil {
		return err
	}
	const (
		home       = "\x1b[H"
		clearBelow = "\x1b[J"
		clearLine  = "\x1b[K"
		hideCursor = "\x1b[?25l"
		showCursor = "\x1b[?25h"
	)
	fmt.Fprint(out, hideCursor+"\x1b[2J")
	defer fmt.Fprint(out, showCursor)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var b bytes.Buffer
		switch {
		case err != nil:
			fmt.Fprintf(&b, "sluice status  %s  %s\n\n%v\n(retrying every %s; Ctrl-C to stop)\n", c.addr, time.Now().Format("15:04:05"), err, interval)
		case asJSON:
			b.Write(raw)
		default:
			writeStatusTable(&b, c.addr, ps, time.Now())
		}
		frame := strings.ReplaceAll(b.String(), "\n", clearLine+"\n")
		if _, werr := fmt.Fprint(out, home+frame+clearBelow); werr != nil {
			return werr
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ps, raw, err = c.fetch(ctx)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// writeStatusTable writes the admin address, then one row per pipeline.
func writeStatusTable(w io.Writer, addr string, ps []supervisor.Info, now time.Time) {
	fmt.Fprintf(w, "sluice at %s  %s  %s\n\n", addr, plural(len(ps), "pipeline", "pipelines"), now.Format("15:04:05"))
	if len(ps) == 0 {
		fmt.Fprintln(w, "no pipelines")
		return
	}
	rows := [][]string{{"PIPELINE", "STATE", "IN/S", "OUT/S", "LAG", "DEAD LETTERS", "ERRORS", "RESTARTS"}}
	var reasons []string
	for _, p := range ps {
		lag := "-"
		if p.Lag != nil {
			lag = count(*p.Lag)
		}
		state := string(p.State)
		if p.Paused && p.State != "paused" {
			state += " (paused)"
		}
		rows = append(rows, []string{sanitize(p.Name), state, rate(p.InPerSecond), rate(p.OutPerSecond),
			lag, count(p.DeadLetters), count(p.Errors), strconv.Itoa(p.Restarts)})
		why := p.Reason
		if why == "" {
			why = p.LastError
		}
		if why != "" {
			reasons = append(reasons, fmt.Sprintf("  %s: %s", sanitize(p.Name), strings.Join(strings.Fields(sanitize(why)), " ")))
		}
	}
	writeColumns(w, rows, 2)
	if len(reasons) > 0 {
		fmt.Fprintln(w)
		for _, r := range reasons {
			fmt.Fprintln(w, r)
		}
	}
}

// writeColumns writes rows as columns two spaces apart: the first leftCols left-aligned, the
// others (numbers) right-aligned.
func writeColumns(w io.Writer, rows [][]string, leftCols int) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < leftCols {
				b.WriteString(c)
				if i < len(r)-1 {
					b.WriteString(pad)
				}
			} else {
				b.WriteString(pad + c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

// rate formats records per second: one decimal below 100, whole numbers with thousands
// separators above.
func rate(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return count(v)
}

// count formats a whole number with thousands separators.
func count(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// sanitize keeps control characters (escape sequences, tabs, newlines) of names and reasons
// out of the terminal and the table's columns.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}
