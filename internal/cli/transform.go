package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		cmd := &cobra.Command{
			Use:   "transform",
			Short: "Test and inspect WASM transform modules outside any pipeline",
		}
		cmd.AddCommand(newTransformTestCmd(g), newTransformInspectCmd(g))
		return cmd
	})
}

// defaultMaxLine bounds one line of a --input file by default: the default max_line_bytes of the
// file source (connectors/file), so that a file transform test reads is a file a pipeline reads.
const defaultMaxLine = 16 << 20

type transformTestFlags struct {
	config    string
	input     string
	rejects   string
	batch     int
	mode      string
	fuel      int64
	timeout   time.Duration
	memoryMiB int64
	maxLine   string
	agg       aggTestFlags // aggregate modules (aggtest.go)
}

func newTransformTestCmd(g *Globals) *cobra.Command {
	var f transformTestFlags
	cmd := &cobra.Command{
		Use:   "test MODULE.wasm --input FILE.jsonl [--config JSON|@FILE] [--rejects FILE]",
		Short: "Run a transform module over a file of records",
		Long: `Runs MODULE.wasm over the records of --input, one record value per line, in batches, exactly
as a pipeline stage would. Lines are read as the file source reads them: a line ends at "\n" or
"\r\n" (the "\r" is not part of the value), and every line, empty or blank ones too, is a record;
a line longer than --max-line-bytes (16MiB, the file source's max_line_bytes default) stops the test.
--config takes what a manifest's config: takes (JSON or YAML), and the module receives the same
bytes a pipeline gives it. Values of passed and emitted records go to stdout, one per line, in
input order. Each rejected input goes to --rejects (stderr when not given) as one JSON object per
line: {"line": N, "value": "<the input line>", "code": C, "reason": "..."}. A summary goes to
stderr. Exits 0 when the module ran over the whole input, whatever it decided, and non-zero with a
message when it could not run (module does not load, config refused, input unreadable, module
broken).

An aggregate module (ABI 1.1) runs through the same host side as in an aggregate: stage, in
memory: --key, --time, --window (tumbling:1m, hopping:5m/1m or session:30s), --allowed-lateness
and --ttl play the manifest's key, time, window, allowed_lateness and ttl. Window rows go to
stdout as windows close, the open ones when the input ends; late records go with the rejects
(code 65287).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTransformTest(cmd.Context(), g, args[0], f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "config object as JSON or YAML (as under a transform's config: in a manifest), or @FILE to read it from a file (default {})")
	fl.StringVar(&f.input, "input", "", "JSON lines file of record values (- for stdin)")
	fl.StringVar(&f.rejects, "rejects", "", "file to write rejected records to as JSON lines (default stderr)")
	fl.IntVar(&f.batch, "batch", 1024, "records per Process call")
	fl.StringVar(&f.mode, "mode", pipeline.DefaultTransformMode, "metered (counts the guest's work, which lets the host stop it; close to full speed), strict (the runtime's own interruption, slower) or trusted (full speed; a runaway guest cannot be stopped); see sdk/abi/v1/ABI.md section 11")
	fl.Int64Var(&f.fuel, "fuel", 0, "metered mode: most units of work a call may use per record (as a manifest's limits.fuel; 0: no bound)")
	fl.DurationVar(&f.timeout, "timeout", wasmhost.DefaultTimeout, "deadline of one guest call")
	fl.Int64Var(&f.memoryMiB, "memory-mib", wasmhost.DefaultMemoryBytes>>20, fmt.Sprintf("memory limit per instance in MiB (1 to %d, as a manifest's limits.memory)", pipeline.MaxTransformMemory>>20))
	fl.StringVar(&f.maxLine, "max-line-bytes", manifests.FormatByteSize(defaultMaxLine), "longest accepted input line, as the file source's max_line_bytes (a size such as 16MiB)")
	f.agg.register(fl)
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

// readConfigFlag turns --config (a JSON or YAML object, or @FILE) into the bytes a pipeline's
// module receives for the same text under `config:` (manifests.ConfigJSON: keys in written
// order, number text as written, no HTML escaping, ${env:...} and ${file:...} resolved).
func readConfigFlag(v string) ([]byte, error) {
	text, name := []byte(v), "--config"
	if path, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if text, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		name = path
	}
	js, diags := manifests.ConfigJSON(text, name, manifests.LoadOptions{})
	if len(diags) > 0 {
		return nil, diags // each names "--config" or the file, with line and column
	}
	return js, nil
}

// check validates the numeric flags, with the ranges of a manifest's limits, and returns
// --max-line-bytes in bytes.
func (f *transformTestFlags) check() (int, error) {
	if f.batch < 1 {
		return 0, fmt.Errorf("--batch must be at least 1, got %d", f.batch)
	}
	if f.timeout <= 0 {
		return 0, fmt.Errorf("--timeout must be more than 0, got %s", f.timeout)
	}
	if maxMiB := int64(pipeline.MaxTransformMemory >> 20); f.memoryMiB < 1 || f.memoryMiB > maxMiB {
		return 0, fmt.Errorf("--memory-mib must be at least 1 and at most %d (4GiB), got %d", maxMiB, f.memoryMiB)
	}
	n, err := manifests.ParseByteSize(f.maxLine)
	if err != nil {
		return 0, fmt.Errorf("--max-line-bytes: %w", err)
	}
	if n < 1 || n > maxLineLimit {
		return 0, fmt.Errorf("--max-line-bytes must be at least 1 and at most %s, got %s", manifests.FormatByteSize(maxLineLimit), f.maxLine)
	}
	return int(n), nil
}

// maxLineLimit is the largest --max-line-bytes: a line is held whole in memory.
const maxLineLimit = 1 << 30

type rejectLine struct {
	Line   int    `json:"line"`
	Value  string `json:"value"`
	Code   uint16 `json:"code"`
	Reason string `json:"reason"`
}

func runTransformTest(ctx context.Context, g *Globals, path string, f transformTestFlags, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	maxLine, err := f.check()
	if err != nil {
		return err
	}
	cfg, err := readConfigFlag(f.config)
	if err != nil {
		return err
	}
	log, err := g.Logger(stderr)
	if err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if f.input != "-" {
		file, err := os.Open(f.input)
		if err != nil {
			return fmt.Errorf("--input: %w", err)
		}
		defer file.Close()
		in = file
	}
	rejOut := stderr
	if f.rejects != "" {
		rf, err := os.Create(f.rejects)
		if err != nil {
			return fmt.Errorf("--rejects: %w", err)
		}
		defer rf.Close()
		rejOut = rf
	}

	h, err := newCLIHost(ctx, g, log)
	if err != nil {
		return err
	}
	defer h.Close(context.Background())
	m, err := h.Load(ctx, path, "")
	if err != nil {
		return err
	}
	name := m.Meta().Name
	scfg := wasmhost.StageConfig{Name: name, Config: cfg, Mode: wasmhost.Mode(f.mode),
		Timeout: f.timeout, MemoryBytes: f.memoryMiB << 20, Instances: 1, Fuel: f.fuel}
	for _, p := range m.Check(scfg) {
		if p.Setting == "memory" {
			return fmt.Errorf("--memory-mib: %s: give at least %d", p.Message, (m.MinMemoryBytes()+1<<20-1)>>20)
		}
	}
	stage, err := h.NewStage(ctx, m, scfg)
	if err != nil {
		return fmt.Errorf("transform %q: %w", name, err)
	}
	defer stage.Close(context.Background())
	process, finish, err := f.agg.processor(m, stage)
	if err != nil {
		return err
	}

	out := bufio.NewWriterSize(stdout, 1<<16)
	rej := bufio.NewWriter(rejOut)
	enc := json.NewEncoder(rej)
	enc.SetEscapeHTML(false)
	var counts struct{ in, passed, emitted, dropped, rejected int }

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<16), maxLine+2) // room for the "\r\n"; longer lines are refused below
	batch := make([]connector.Record, 0, f.batch)
	lines := make([]int, 0, f.batch)
	lineNo := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := process(ctx, batch)
		if err != nil {
			return fmt.Errorf("transform %q: %w", name, err)
		}
		if err := res.write(out, enc, lines, &counts.emitted, &counts.rejected); err != nil {
			return err
		}
		for o := range res.Outcomes() {
			switch o.Action {
			case transform.Pass:
				counts.passed++
				out.Write(batch[o.Input].Value)
				out.WriteByte('\n')
			case transform.Drop:
				counts.dropped++
			case transform.Emit:
				for _, e := range o.Emitted {
					counts.emitted++
					out.Write(e.Record.Value)
					out.WriteByte('\n')
				}
			case transform.Reject:
				counts.rejected++
				r := rejectLine{Line: lines[o.Input], Value: string(batch[o.Input].Value), Code: o.Rejected.Code, Reason: o.Rejected.Reason}
				if err := enc.Encode(r); err != nil {
					return fmt.Errorf("--rejects: %w", err)
				}
			}
		}
		batch, lines = batch[:0], lines[:0]
		return nil
	}
	// bufio.ScanLines ends a line at "\n" and drops one "\r" before it (or at the end of the
	// input), as connectors/file does: the same file gives the same record values both ways.
	for sc.Scan() {
		lineNo++
		v := sc.Bytes()
		if len(v) > maxLine {
			return fmt.Errorf("--input: line %d is longer than --max-line-bytes (%d bytes)", lineNo, maxLine)
		}
		counts.in++
		batch = append(batch, connector.Record{Value: append([]byte(nil), v...),
			Position: connector.Position{Partition: f.input, Offset: int64(lineNo)}})
		lines = append(lines, lineNo)
		if len(batch) == f.batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("--input: line %d is longer than --max-line-bytes (%d bytes)", lineNo+1, maxLine)
		}
		return fmt.Errorf("--input: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	if finish != nil {
		res, err := finish(ctx)
		if err != nil {
			return fmt.Errorf("transform %q: %w", name, err)
		}
		if err := res.write(out, enc, nil, &counts.emitted, &counts.rejected); err != nil {
			return err
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	if err := rej.Flush(); err != nil {
		return fmt.Errorf("--rejects: %w", err)
	}
	st := stage.Stats()
	fmt.Fprintf(stderr, "%s %s: %d in, %d passed, %d emitted, %d dropped, %d rejected (%d isolated by the host)\n",
		m.Meta().Name, m.Meta().Version, counts.in, counts.passed, counts.emitted, counts.dropped, counts.rejected, st.Poison)
	if scfg.Mode == wasmhost.Metered && counts.in > 0 {
		fmt.Fprintf(stderr, "fuel: %d units in successful calls, %d per record\n", st.Fuel, st.Fuel/uint64(counts.in))
	}
	return nil
}

// newCLIHost builds a host whose compilation cache lives in DATA_DIR/wasm-cache, as `sluice run`'s
// does, so repeated runs over the same module skip the compile (about a second for a Go module).
func newCLIHost(ctx context.Context, g *Globals, log *slog.Logger) (*wasmhost.Host, error) {
	cache := ""
	if g.DataDir != "" {
		cache = filepath.Join(g.DataDir, "wasm-cache")
	}
	return wasmhost.New(ctx, wasmhost.Options{CacheDir: cache, Logger: log})
}

func newTransformInspectCmd(g *Globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect MODULE.wasm",
		Short: "Print a transform module's name, version, ABI version, kinds, ports and config schema",
		Long: `Loads MODULE.wasm, checks it against the transform ABI and prints what it says about
itself (tf_meta) and its sha256 digest. Exits non-zero with a message when the module does not load.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			log, err := g.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			h, err := newCLIHost(ctx, g, log)
			if err != nil {
				return err
			}
			defer h.Close(context.Background())
			m, err := h.Load(ctx, args[0], "")
			if err != nil {
				return err
			}
			return printMeta(cmd.OutOrStdout(), m.Meta(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the metadata as one JSON object")
	return cmd
}

func printMeta(w io.Writer, meta wasmhost.Meta, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(meta)
	}
	schema := "(none)"
	if len(meta.ConfigSchema) > 0 {
		var b bytes.Buffer
		if err := json.Indent(&b, meta.ConfigSchema, "  ", "  "); err == nil {
			schema = "\n  " + b.String()
		} else {
			schema = string(meta.ConfigSchema)
		}
	}
	_, err := fmt.Fprintf(w, "name:          %s\nversion:       %s\nabi:           %s\nkinds:         %s\nports:         %s\nsha256:        %s\nconfig_schema: %s\n",
		meta.Name, meta.Version, meta.ABI, strings.Join(meta.Kinds, ", "), strings.Join(meta.Ports, ", "), meta.Digest, schema)
	return err
}
