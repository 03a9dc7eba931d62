// Package admin serves the runtime's admin HTTP API: liveness, readiness, Prometheus metrics and
// the list of pipelines.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/runtime/supervisor"
)

// Server is the admin HTTP server.
type Server struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
}

// Start listens on addr and serves in the background:
//   - GET /healthz: 200 while the process runs;
//   - GET /readyz: 200 when every pipeline is ready, else 503 with the ones that are not and why;
//   - GET /metrics: Prometheus metrics from the given handler;
//   - GET /pipelines: JSON list of pipelines: name, state, ready and the reason when not ready.
//
// pipelines (typically a Supervisor's Status method) is called on every request and must be safe for concurrent use.
func Start(addr string, metrics http.Handler, pipelines func() []supervisor.Status, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		var notReady []supervisor.Status
		ps := pipelines()
		for _, p := range ps {
			if !p.Ready {
				notReady = append(notReady, p)
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		if len(ps) == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: no pipelines")
			return
		}
		if len(notReady) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range notReady {
				fmt.Fprintf(w, "not ready: %s: %s\n", p.Name, p.Reason)
			}
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /pipelines", func(w http.ResponseWriter, _ *http.Request) {
		out := pipelines()
		if out == nil {
			out = []supervisor.Status{}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln, log: log}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close shuts the server down.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
