package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Batches sent with WriteAsync, several unanswered at a time, are written in order; each wait
// returns its batch's outcome, per-record failures included.
func TestSinkWriteAsyncInOrder(t *testing.T) {
	snk, path := openLines(t, Options{}, connector.Config{"sync": false})
	ctx := context.Background()
	var want []string
	var waits []func() error
	for b := range 40 {
		batch := make([]connector.Record, 25)
		for i := range batch {
			batch[i].Value = fmt.Appendf(nil, "b%d-r%d", b, i)
			if b == 17 && i == 3 {
				batch[i].Value = []byte("poison")
				continue
			}
			want = append(want, string(batch[i].Value))
		}
		waits = append(waits, snk.WriteAsync(ctx, batch))
		if len(waits) == 3 {
			checkWait(t, b-2, waits[0]())
			waits = waits[1:]
		}
	}
	for i, w := range waits {
		checkWait(t, 40-len(waits)+i, w())
	}
	var got []string
	for _, r := range readLines(t, path) {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("written out of order or incomplete: %d lines, want %d", len(got), len(want))
	}
}

func checkWait(t *testing.T, batch int, err error) {
	t.Helper()
	var be *connector.BatchError
	switch {
	case batch == 17:
		if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 3 {
			t.Fatalf("batch 17: %v; want record 3 failed", err)
		}
	case err != nil:
		t.Fatalf("batch %d: %v", batch, err)
	}
}

// openLines opens a lines sink of the seq test plugin on host options opts, writing to a fresh
// file whose path it returns; cfg adds settings. The sink is closed when the test ends.
func openLines(t *testing.T, opts Options, cfg connector.Config) (*Sink, string) {
	t.Helper()
	h := newHost(t, opts)
	p := discoverOne(t, h, pluginDir(t, "seq"))
	path := filepath.Join(t.TempDir(), "out")
	c := connector.Config{"path": path}
	for k, v := range cfg {
		c[k] = v
	}
	snk, err := h.NewSink(p, "lines", c, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snk.Close(ctx) })
	return snk, path
}
