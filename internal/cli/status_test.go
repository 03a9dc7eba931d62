package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

func TestStatusNumbers(t *testing.T) {
	for _, tc := range []struct {
		v         float64
		rate, cnt string
	}{
		{0, "0.0", "0"}, {0.04, "0.0", "0"}, {12.345, "12.3", "12"}, {99.94, "99.9", "100"},
		{100, "100", "100"}, {1234.5, "1,234", "1,234"}, {999999, "999,999", "999,999"}, {1234567, "1,234,567", "1,234,567"},
	} {
		if got := rate(tc.v); got != tc.rate {
			t.Errorf("rate(%v) = %q, want %q", tc.v, got, tc.rate)
		}
		if got := count(tc.v); got != tc.cnt {
			t.Errorf("count(%v) = %q, want %q", tc.v, got, tc.cnt)
		}
	}
	if got := count(-1234); got != "-1,234" {
		t.Errorf("count(-1234) = %q", got)
	}
}

// The table: the address on top, names and states left-aligned, numbers right-aligned under
// their headers, a missing lag as "-", reasons below with control characters (a terminal's
// escape sequences, tabs, newlines) made harmless.
func TestStatusTable(t *testing.T) {
	lag := 1500.0
	ps := []supervisor.Info{
		{Status: supervisor.Status{Name: "orders", Status: pipeline.Status{State: pipeline.StateRunning, Ready: true}},
			Counts: supervisor.Counts{DeadLetters: 3, Errors: 12345, Lag: &lag}, InPerSecond: 2500.4, OutPerSecond: 2499.6},
		{Status: supervisor.Status{Name: "evil\x1b[2J", Status: pipeline.Status{State: pipeline.StateDegraded, Reason: "sink \"pg\":\n\tconnect:\x1b[31m refused"}, Restarts: 4},
			InPerSecond: 0.5},
	}
	var b bytes.Buffer
	writeStatusTable(&b, "127.0.0.1:9464", ps, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	want := `sluice at 127.0.0.1:9464  2 pipelines  03:04:05

PIPELINE  STATE      IN/S  OUT/S    LAG  DEAD LETTERS  ERRORS  RESTARTS
orders    running   2,500  2,500  1,500             3  12,345         0
evil [2J  degraded    0.5    0.0      -             0       0         4

  evil [2J: sink "pg": connect: [31m refused
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if strings.ContainsRune(b.String(), 0x1b) {
		t.Error("an escape character reached the terminal")
	}
	b.Reset()
	writeStatusTable(&b, "x:1", nil, time.Time{})
	if !strings.Contains(b.String(), "sluice at x:1  0 pipelines") || !strings.Contains(b.String(), "no pipelines") {
		t.Errorf("no pipelines:\n%s", b.String())
	}
}

func TestStatusClientAddress(t *testing.T) {
	for _, tc := range []struct{ addr, base, err string }{
		{"127.0.0.1:9464", "http://127.0.0.1:9464", ""},
		{"http://[::1]:9464/", "http://[::1]:9464", ""},
		{"https://sluice.example:443", "https://sluice.example:443", ""},
		{"", "", "--admin-addr is empty"},
		{"localhost", "", "want HOST:PORT"},
		{"ftp://x:1", "", "want HOST:PORT"},
	} {
		c, err := newStatusClient(tc.addr, "")
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: err %v, want %q", tc.addr, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.addr, err)
		case tc.err == "" && c.base.String() != tc.base:
			t.Errorf("%q: base %s, want %s", tc.addr, c.base, tc.base)
		}
	}
}
