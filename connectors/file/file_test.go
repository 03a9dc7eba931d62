package file_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func readAll(t *testing.T, s *file.Source) []connector.Record {
	t.Helper()
	var out []connector.Record
	for {
		recs, err := s.Read(context.Background())
		out = append(out, recs...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func values(recs []connector.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out
}

func newSource(t *testing.T, cfg connector.Config) *file.Source {
	t.Helper()
	s, err := file.NewSource(cfg, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestSourceReadsLinesAndResumesAfterPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(path, []byte("a\nbb\r\n\nccc"), 0o644) // CRLF ends a line, empty line kept, last line without newline
	s := newSource(t, connector.Config{"path": path, "read_buffer": int64(3)})
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, s)
	if got := strings.Join(values(recs), "|"); got != "a|bb||ccc" {
		t.Fatalf("values %q", got)
	}
	offs := []int64{2, 6, 7, 10}
	for i, r := range recs {
		if r.Position.Offset != offs[i] {
			t.Fatalf("record %d offset %d, want %d", i, r.Position.Offset, offs[i])
		}
	}
	// Resume after the second record.
	s2 := newSource(t, connector.Config{"path": path})
	if err := s2.Open(context.Background(), []connector.Position{recs[1].Position}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(values(readAll(t, s2)), "|"); got != "|ccc" {
		t.Fatalf("after resume: %q", got)
	}
}

func TestSourceRefusesCheckpointBeyondFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(path, []byte("a\n"), 0o644)
	abs, _ := filepath.Abs(path)
	s := newSource(t, connector.Config{"path": path})
	err := s.Open(context.Background(), []connector.Position{{Partition: abs, Offset: 100}})
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "reset the checkpoint") {
		t.Fatalf("err = %v", err)
	}
}

func TestSourceFollowsAppendsAndTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(path, []byte("one\n"), 0o644)
	s := newSource(t, connector.Config{"path": path, "follow": true, "poll_interval": 5 * time.Millisecond})
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	next := func() string {
		recs, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(values(recs), "|")
	}
	if got := next(); got != "one" {
		t.Fatalf("got %q", got)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("two\nthr")
	f.Close()
	if got := next(); got != "two" {
		t.Fatalf("got %q (a line without newline must wait)", got)
	}
	f, _ = os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("ee\n")
	f.Close()
	if got := next(); got != "three" {
		t.Fatalf("got %q", got)
	}
	os.WriteFile(path, []byte("new\n"), 0o644) // truncated and rewritten
	if got := next(); got != "new" {
		t.Fatalf("after truncation got %q", got)
	}
	// Read returns promptly on cancellation.
	cctx, ccancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); ccancel() }()
	if _, err := s.Read(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Read returned %v", err)
	}
}

// A line over max_line_bytes is not a reason to stop: it becomes one record marked malformed
// (its first bytes as the value, the reason naming its offset and max_line_bytes) and reading goes
// on after it, in a bounded and in a followed file, with and without a final newline,
// whether the line spans several reads or sits within one.
func TestSourceLineTooLongIsMarkedMalformed(t *testing.T) {
	for _, chunk := range []int64{16, 1 << 20} { // the line spans reads; the line is within one read
		for _, follow := range []bool{false, true} {
			for _, tail := range []string{"\nok2\n", "\r\nok2\n", ""} {
				path := filepath.Join(t.TempDir(), "in.txt")
				long := strings.Repeat("x", 3000)
				os.WriteFile(path, []byte("ok\n"+long+tail), 0o644)
				s := newSource(t, connector.Config{"path": path, "max_line_bytes": int64(50), "read_buffer": chunk, "follow": follow, "poll_interval": time.Millisecond})
				s.Open(context.Background(), nil)
				var got []connector.Record
				want := 2
				if tail != "" {
					want = 3
				} else if follow {
					want = 1 // a followed file's last line is read once its newline is written
				}
				for len(got) < want {
					recs, err := s.Read(context.Background())
					if err != nil {
						t.Fatalf("follow %v tail %q: after %d records: %v", follow, tail, len(got), err)
					}
					got = append(got, recs...)
				}
				if len(got) != want || string(got[0].Value) != "ok" {
					t.Fatalf("follow %v tail %q: got %d records", follow, tail, len(got))
				}
				if want == 1 {
					continue
				}
				bad := got[1]
				if len(bad.Headers) != 1 || bad.Headers[0].Key != connector.HeaderMalformed {
					t.Fatalf("follow %v tail %q: over-long line not marked malformed: %+v", follow, tail, bad.Headers)
				}
				reason := string(bad.Headers[0].Value)
				if !strings.Contains(reason, "offset 3") || !strings.Contains(reason, "3000 bytes") || !strings.Contains(reason, "max_line_bytes (50)") {
					t.Fatalf("reason %q", reason)
				}
				if string(bad.Value) != long[:50] {
					t.Fatalf("value %q, want the first max_line_bytes bytes", bad.Value)
				}
				if end := int64(3 + 3000 + len(tail) - len("ok2\n")); tail != "" && bad.Position.Offset != end {
					t.Fatalf("position %d, want %d (after the line)", bad.Position.Offset, end)
				}
				if tail != "" && (string(got[2].Value) != "ok2" || got[2].Headers != nil) {
					t.Fatalf("line after the long one: %q %v", got[2].Value, got[2].Headers)
				}
			}
		}
	}
}

func TestSinkAppendsAndCutsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "out.txt")
	s, err := file.NewSink(connector.Config{"path": path}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []connector.Record{{Value: []byte("a")}, {Value: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	s.Close(ctx) // idempotent
	// A crash in the middle of a write leaves a torn line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("tor")
	f.Close()
	s2, _ := file.NewSink(connector.Config{"path": path}, connector.Env{})
	if err := s2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.Write(ctx, []connector.Record{{Value: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	s2.Close(ctx)
	b, _ := os.ReadFile(path)
	if string(b) != "a\nb\nc\n" {
		t.Fatalf("file = %q", b)
	}
}

// Defect 10: a failed write said "write X: write X: no space left on device".
func TestSinkErrorNamesTheOperationOnce(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	s, err := file.NewSink(connector.Config{"path": "/dev/full", "fsync": true}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	err = s.Write(ctx, []connector.Record{{Value: []byte("x")}})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("write to /dev/full: %v", err)
	}
	if n := strings.Count(err.Error(), "write /dev/full"); n != 1 {
		t.Fatalf("%q names the write %d times, want once", err, n)
	}
}

func openTxSink(t *testing.T, path string, env connector.Env) *file.Sink {
	t.Helper()
	s, err := file.NewSink(connector.Config{"path": path, "fsync": true}, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func recs(vs ...string) []connector.Record {
	var out []connector.Record
	for _, v := range vs {
		out = append(out, connector.Record{Value: []byte(v)})
	}
	return out
}

func TestSinkTransactionCutsWhatWasNotCommitted(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "out.txt")
	env := connector.Env{Pipeline: "p", Component: "out"}
	s := openTxSink(t, path, env)
	if ps, err := s.StoredPositions(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("stored positions of a new file: %v, %v", ps, err)
	}
	if err := s.WriteTx(ctx, recs("a", "b"), []connector.Position{{Partition: "in", Offset: 2}}); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	// A crash after the records of the next transaction were appended, before its commit.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("c\nd\nto")
	f.Close()
	s = openTxSink(t, path, env)
	ps, err := s.StoredPositions(ctx)
	if err != nil || len(ps) != 1 || ps[0].Partition != "in" || ps[0].Offset != 2 {
		t.Fatalf("stored positions after the crash: %v, %v", ps, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "a\nb\n" {
		t.Fatalf("file = %q, want the committed records only", b)
	}
	if err := s.WriteTx(ctx, nil, []connector.Position{{Partition: "in", Offset: 9}}); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	// Another pipeline's sink of the same name stored nothing in this file.
	other := openTxSink(t, path, connector.Env{Pipeline: "q", Component: "out"})
	if ps, err := other.StoredPositions(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("positions of another pipeline: %v, %v", ps, err)
	}
}

func TestSinkExactlyOnceRefusals(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "out.txt")
	first := openTxSink(t, path, connector.Env{Pipeline: "p", Component: "a"})
	if _, err := first.StoredPositions(ctx); err != nil {
		t.Fatal(err)
	}
	second := openTxSink(t, path, connector.Env{Pipeline: "p", Component: "b"})
	if _, err := second.StoredPositions(ctx); !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "another sink") {
		t.Fatalf("a second sink writing the file exactly once: %v", err)
	}
	noSync, _ := file.NewSink(connector.Config{"path": path, "fsync": false}, connector.Env{})
	var ce *connector.ConfigError
	if err := noSync.CheckExactlyOnce(); !errors.As(err, &ce) || ce.Field != "fsync" {
		t.Fatalf("fsync: false for exactly_once: %v", err)
	}
}

func TestSinkWriteOutsideTransactionForgetsPositions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "out.txt")
	env := connector.Env{Pipeline: "p", Component: "out"}
	s := openTxSink(t, path, env)
	s.StoredPositions(ctx)
	if err := s.WriteTx(ctx, recs("a"), []connector.Position{{Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	s = openTxSink(t, path, env)
	if err := s.Write(ctx, recs("b")); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	// The positions no longer describe the file: an exactly-once run keeps "b" and starts over.
	s = openTxSink(t, path, env)
	if ps, err := s.StoredPositions(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("positions after a plain write: %v, %v", ps, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "a\nb\n" {
		t.Fatalf("file = %q", b)
	}
}

func TestSinkCrashInTheFirstTransactionKeepsNothingOfIt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "out.txt")
	if err := os.WriteFile(path, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := connector.Env{Pipeline: "p", Component: "out"}
	s := openTxSink(t, path, env)
	if _, err := s.StoredPositions(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	// The first transaction appended its records; the process died before the commit.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("1\n2\n")
	f.Close()
	s = openTxSink(t, path, env)
	if ps, err := s.StoredPositions(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("stored positions: %v, %v", ps, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "before\n" {
		t.Fatalf("file = %q, want what it held before the first transaction", b)
	}
}

func TestSourceRateIsPacedAndCancellable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(path, []byte("1\n2\n3\n4\n5\n6\n"), 0o644)
	if _, err := file.NewSource(connector.Config{"path": path, "rate": float64(-1)}, connector.Env{}); err == nil || !strings.Contains(err.Error(), "rate") {
		t.Fatalf("a negative rate: %v, want an error naming rate", err)
	}
	// At 1 line/s the first batch (six lines) is due after six seconds; cancelling ends the wait.
	s := newSource(t, connector.Config{"path": path, "rate": float64(1)})
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if recs, err := s.Read(ctx); !errors.Is(err, context.Canceled) || len(recs) != 0 {
		t.Fatalf("got %d records, err %v; want a wait ended by cancellation", len(recs), err)
	}
	// A rate above what is read hands every line on, in order.
	s = newSource(t, connector.Config{"path": path, "rate": float64(1e6), "read_buffer": int64(4)})
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(values(readAll(t, s)), ","); got != "1,2,3,4,5,6" {
		t.Fatalf("values %q", got)
	}
}
