package engine_test

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

// BenchmarkGenerateToDrop measures records/s of generate → drop through the whole engine with
// 100-byte records.
func BenchmarkGenerateToDrop(b *testing.B) {
	const n = 1_000_000
	tmpl := `{"seq":{{seq}},"commodity":"{{pick gold silver copper}}","price":{{rand_float 10 99}},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`
	for b.Loop() {
		p := spec("bench", genSource(n, tmpl), pipeline.Sink{Name: "d", From: pipeline.DefaultPort, Component: pipeline.Component{Type: "drop"}})
		store := openStoreB(b)
		e, err := newEngine(p, store)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		store.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
