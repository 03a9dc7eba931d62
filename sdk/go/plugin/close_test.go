package plugin_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/plugin"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// watched is a connector that notices Close while a Read or Write is still running, which the
// connector contract forbids. Its Read (or Write) reports that it started, waits for its context
// to be cancelled (a Write: for release), then for release or a Close, whichever comes first.
type watched struct {
	started chan struct{} // closed when the first Read or Write starts
	release chan struct{} // closed by the test to let it return
	closed  chan struct{} // closed by the first Close

	busy       atomic.Bool
	overlapped atomic.Bool // Close ran while Read or Write was running
	closes     atomic.Int32
	once       sync.Once
	startOnce  sync.Once
}

func newWatched() *watched {
	return &watched{started: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
}

func (w *watched) enter() {
	w.busy.Store(true)
	w.startOnce.Do(func() { close(w.started) })
}

func (w *watched) Open(context.Context, []connector.Position) error { return nil }

func (w *watched) Read(ctx context.Context) ([]connector.Record, error) {
	w.enter()
	defer w.busy.Store(false)
	<-ctx.Done()
	select {
	case <-w.release:
	case <-w.closed:
	}
	return nil, ctx.Err()
}

func (w *watched) Write(context.Context, []connector.Record) error {
	w.enter()
	defer w.busy.Store(false)
	select {
	case <-w.release:
	case <-w.closed:
	}
	return nil
}

func (w *watched) Ack(context.Context, []connector.Position) error { return nil }

func (w *watched) Close(context.Context) error {
	if w.busy.Load() {
		w.overlapped.Store(true)
	}
	w.closes.Add(1)
	w.once.Do(func() { close(w.closed) })
	return nil
}

type watchedSink struct{ *watched }

func (w watchedSink) Open(context.Context) error { return nil }

// closeWhileBusy calls Close with a context that is already done while the connector is busy:
// Close must give up waiting and leave the connector alone. Once the call returns, a Close with
// time to wait closes it.
func closeWhileBusy(t *testing.T, srv pb.ConnectorServer, w *watched) {
	t.Helper()
	<-w.started
	done, cancel := context.WithCancel(context.Background())
	cancel()
	resp, err := srv.Close(done, &pb.CloseRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if w.overlapped.Load() {
		t.Fatal("Close reached the connector while a call into it was still running")
	}
	if resp.Error == nil {
		t.Error("Close gave up waiting for the running call without saying so")
	}
	close(w.release)
	resp, err = srv.Close(context.Background(), &pb.CloseRequest{})
	if err != nil || resp.Error != nil {
		t.Fatalf("second Close: %v %v", err, resp.GetError())
	}
	if w.overlapped.Load() || w.closes.Load() == 0 {
		t.Fatalf("after the call returned: overlapped %v, closes %d; want a Close after it", w.overlapped.Load(), w.closes.Load())
	}
}

func TestCloseWaitsForRead(t *testing.T) {
	w := newWatched()
	srv := plugin.NewServer(plugin.Plugin{Components: []connector.Component{connector.SourceComponent(connector.Spec{Name: "w"},
		func(connector.Config, connector.Env) (connector.Source, error) { return w, nil })}}, nil)
	if resp, err := srv.OpenSource(context.Background(), &pb.OpenSourceRequest{Name: "w", ConfigJson: []byte("{}")}); err != nil || resp.Error != nil {
		t.Fatalf("open: %v %v", err, resp.GetError())
	}
	closeWhileBusy(t, srv, w)
}

func TestCloseWaitsForWrite(t *testing.T) {
	w := newWatched()
	srv := plugin.NewServer(plugin.Plugin{Components: []connector.Component{connector.SinkComponent(connector.Spec{Name: "w"},
		func(connector.Config, connector.Env) (connector.Sink, error) { return watchedSink{w}, nil })}}, nil)
	ctx := context.Background()
	if resp, err := srv.OpenSink(ctx, &pb.OpenSinkRequest{Name: "w", ConfigJson: []byte("{}")}); err != nil || resp.Error != nil {
		t.Fatalf("open: %v %v", err, resp.GetError())
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := srv.Write(ctx, &pb.WriteRequest{})
		wrote <- err
	}()
	closeWhileBusy(t, srv, w)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
