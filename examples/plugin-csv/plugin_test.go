package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/examples/plugin-csv/csvconn/csvtest"
	"github.com/sluicehq/sluice/runtime/pluginhost"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// The same conformance suite as csvconn's, through the plugin binary and the Sluice plugin host.
func TestConformanceAsPlugin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice-plugin-csv")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build plugin: %v", err)
	}
	sum, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host := pluginhost.New(pluginhost.Options{Logger: logger, Pins: []string{fmt.Sprintf("%x", sha256.Sum256(sum))}})
	t.Cleanup(host.Close)
	plugins, err := host.Discover(context.Background(), dir)
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	if len(plugins) != 1 || len(plugins[0].Specs) != 2 {
		t.Fatalf("discovered %+v; want one plugin with a source and a sink", plugins)
	}
	p := plugins[0]
	env := connector.Env{Pipeline: "test", Component: "csv", Logger: logger}
	t.Run("Source", func(t *testing.T) {
		conntest.TestSource(t, csvtest.SourceHarness(func(cfg connector.Config) (connector.Source, error) {
			return host.NewSource(p, "csv", cfg, env)
		}))
	})
	t.Run("Sink", func(t *testing.T) {
		conntest.TestSink(t, csvtest.SinkHarness(func(cfg connector.Config) (connector.Sink, error) {
			return host.NewSink(p, "csv", cfg, env)
		}))
	})
}
