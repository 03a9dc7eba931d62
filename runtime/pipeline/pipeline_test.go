package pipeline_test

import (
	"testing"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

func TestWithDefaultsFillsZeroValuesOnly(t *testing.T) {
	p := &pipeline.Pipeline{
		Name:       "p",
		Batch:      pipeline.BatchPolicy{MaxRecords: 10},
		Transforms: []pipeline.Transform{{Name: "t", Limits: pipeline.Limits{Instances: 2}}},
	}
	d := p.WithDefaults()
	if d.Batch.MaxRecords != 10 || d.Batch.MaxBytes != pipeline.DefaultBatchBytes || d.Batch.Linger != pipeline.DefaultBatchLinger {
		t.Errorf("batch = %+v", d.Batch)
	}
	if d.Buffer.MaxRecords != pipeline.DefaultBufferRecords || d.Buffer.MaxBytes != pipeline.DefaultBufferBytes {
		t.Errorf("buffer = %+v", d.Buffer)
	}
	if d.FailureLimit.Ratio != pipeline.DefaultFailureRatio || d.FailureLimit.Window != pipeline.DefaultFailureWindow {
		t.Errorf("failure limit = %+v", d.FailureLimit)
	}
	if d.Delivery != pipeline.AtLeastOnce || d.StuckAfter != pipeline.DefaultStuckAfter {
		t.Errorf("delivery %q, stuck after %s", d.Delivery, d.StuckAfter)
	}
	tr := d.Transforms[0]
	if tr.Limits.Instances != 2 || tr.Limits.MemoryBytes != pipeline.DefaultTransformMemory || tr.Limits.Timeout != pipeline.DefaultTransformTimeout ||
		tr.Limits.Mode != pipeline.ModeMetered || tr.OnReject != pipeline.RejectToDeadLetter || string(tr.Config) != "{}" {
		t.Errorf("transform = %+v", tr)
	}
	if p.Batch.MaxBytes != 0 || p.Transforms[0].Limits.MemoryBytes != 0 {
		t.Error("WithDefaults changed its receiver")
	}
}

func TestSinkBatchTakesThePipelinesValues(t *testing.T) {
	p := &pipeline.Pipeline{
		Name:  "p",
		Batch: pipeline.BatchPolicy{MaxRecords: 10},
		Sinks: []pipeline.Sink{{Name: "plain"}, {Name: "lake", Batch: &pipeline.BatchPolicy{MaxRecords: 500}}},
	}
	d := p.WithDefaults()
	if d.Sinks[0].Batch != nil {
		t.Errorf("a sink without a batch got %+v", d.Sinks[0].Batch)
	}
	if b := d.Sinks[1].Batch; b.MaxRecords != 500 || b.MaxBytes != pipeline.DefaultBatchBytes || b.Linger != pipeline.DefaultBatchLinger {
		t.Errorf("sink batch = %+v", b)
	}
	if p.Sinks[1].Batch.MaxBytes != 0 {
		t.Error("WithDefaults changed the receiver's sink batch")
	}
}

func TestSinkPortDefaultsToMain(t *testing.T) {
	if got := (&pipeline.Sink{}).Port(); got != pipeline.DefaultPort {
		t.Fatalf("port = %q", got)
	}
}

func TestRedactHidesLongestSecretsFirst(t *testing.T) {
	got := pipeline.Redact("user secret-long and secret", []string{"secret", "secret-long", ""})
	if got != "user [redacted] and [redacted]" {
		t.Fatalf("got %q", got)
	}
}

func TestSecretsComeLongestFirst(t *testing.T) {
	p := &pipeline.Pipeline{
		Source: pipeline.Component{Secrets: []string{"secret"}},
		Sinks:  []pipeline.Sink{{Component: pipeline.Component{Secrets: []string{"secret-long"}}}},
	}
	secrets := p.Secrets()
	if len(secrets) != 2 || secrets[0] != "secret-long" || secrets[1] != "secret" {
		t.Fatalf("secrets = %q, want longest first", secrets)
	}
	if got := pipeline.Redact("user secret-long and secret", secrets); got != "user [redacted] and [redacted]" {
		t.Fatalf("got %q", got)
	}
}
