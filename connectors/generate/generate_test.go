package generate_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestTemplateRendersEveryPlaceholder(t *testing.T) {
	s, err := generate.New(connector.Config{"count": int64(500), "seed": int64(7), "batch_size": int64(200), "key": "{{pick a b}}",
		"template": `{"seq":{{seq}},"now":"{{now}}","ms":{{now_ms}},"i":{{rand_int 5 7}},"f":{{rand_float 1 2}},"s":"{{rand_string 4}}","p":"{{pick x y}}"}`}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	s.Open(context.Background(), nil)
	var n int
	for {
		recs, err := s.Read(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > 200 {
			t.Fatalf("batch of %d > batch_size", len(recs))
		}
		for _, r := range recs {
			n++
			var v struct {
				Seq  int64   `json:"seq"`
				Now  string  `json:"now"`
				Ms   int64   `json:"ms"`
				I    int     `json:"i"`
				F    float64 `json:"f"`
				S, P string
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("record %d: %v: %s", n, err, r.Value)
			}
			if v.Seq != int64(n) || r.Position.Offset != int64(n) {
				t.Fatalf("seq %d offset %d, want %d", v.Seq, r.Position.Offset, n)
			}
			if _, err := time.Parse(time.RFC3339, v.Now); err != nil || v.Ms <= 0 {
				t.Fatalf("bad time: %s", r.Value)
			}
			if v.I < 5 || v.I > 7 || v.F < 1 || v.F >= 2.005 || len(v.S) != 4 || (v.P != "x" && v.P != "y") {
				t.Fatalf("bad random values: %s", r.Value)
			}
			if k := string(r.Key); k != "a" && k != "b" {
				t.Fatalf("key %q", k)
			}
		}
	}
	if n != 500 {
		t.Fatalf("generated %d, want 500", n)
	}
}

func TestResumeContinuesSequence(t *testing.T) {
	s, _ := generate.New(connector.Config{"count": int64(10), "template": "{{seq}}"}, connector.Env{})
	s.Open(context.Background(), []connector.Position{{Partition: "generate", Offset: 7}})
	recs, err := s.Read(context.Background())
	if err != nil || len(recs) != 3 || string(recs[0].Value) != "8" {
		t.Fatalf("got %d records (%v), first %q", len(recs), err, recs[0].Value)
	}
}

func TestBadTemplates(t *testing.T) {
	for tmpl, want := range map[string]string{
		"{{seq":                 "unclosed placeholder",
		"{{nope}}":              "unknown placeholder {{nope}}",
		"{{rand_int 1}}":        "takes 2 argument(s)",
		"{{rand_int 9 1}}":      "MAX is below MIN",
		"{{rand_float a 1}}":    `"a" is not a number`,
		"{{pick}}":              "needs at least one word",
		"{{}}":                  "empty placeholder",
		"{{rand_string 99999}}": "N must be in",
	} {
		_, err := generate.New(connector.Config{"template": tmpl}, connector.Env{})
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != "template" || !strings.Contains(err.Error(), want) {
			t.Errorf("template %q: err = %v, want a template ConfigError containing %q", tmpl, err, want)
		}
	}
}

func TestRateIsPacedAndCancellable(t *testing.T) {
	s, _ := generate.New(connector.Config{"rate": float64(1), "template": "x"}, connector.Env{})
	s.Open(context.Background(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	// At 1 record/s the first Read waits; cancelling must end it.
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	recs, err := s.Read(ctx)
	if !errors.Is(err, context.Canceled) || len(recs) != 0 {
		t.Fatalf("got %d records, err %v; want a wait ended by cancellation", len(recs), err)
	}
}
