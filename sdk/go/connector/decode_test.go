package connector_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

var testSpec = connector.Spec{Name: "t", Fields: []connector.Field{
	{Name: "path", Type: connector.TypeString, Required: true},
	{Name: "mode", Type: connector.TypeString, Default: "a", Enum: []string{"a", "b"}},
	{Name: "poll", Type: connector.TypeDuration, Default: 200 * time.Millisecond},
	{Name: "size", Type: connector.TypeByteSize, Default: int64(1 << 20)},
	{Name: "ratio", Type: connector.TypeFloat, Default: 0.5},
	{Name: "on", Type: connector.TypeBool, Default: true},
	{Name: "tags", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}},
	{Name: "headers", Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString}},
	{Name: "retry", Type: connector.TypeObject, Fields: []connector.Field{
		{Name: "attempts", Type: connector.TypeInt, Default: int64(3)},
	}},
}}

type retry struct {
	Attempts int `config:"attempts"`
}

type target struct {
	Path    string            `config:"path"`
	Mode    string            `config:"mode"`
	Poll    time.Duration     `config:"poll"`
	Size    int               `config:"size"`
	Ratio   float64           `config:"ratio"`
	On      bool              `config:"on"`
	Tags    []string          `config:"tags"`
	Headers map[string]string `config:"headers"`
	Retry   retry             `config:"retry"`
	Ignored int
}

func TestDecodeAppliesTheSpecDefaults(t *testing.T) {
	var got target
	if err := testSpec.Decode(connector.Config{"path": "/x", "size": int64(10), "tags": []any{"a", "b"}}, &got); err != nil {
		t.Fatal(err)
	}
	want := target{Path: "/x", Mode: "a", Poll: 200 * time.Millisecond, Size: 10, Ratio: 0.5, On: true, Tags: []string{"a", "b"}, Retry: retry{Attempts: 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestDecodeNamesTheField(t *testing.T) {
	var ce *connector.ConfigError
	var got target
	if err := testSpec.Decode(connector.Config{}, &got); !errors.As(err, &ce) || ce.Field != "path" {
		t.Fatalf("missing required: %v", err)
	}
	if err := testSpec.Decode(connector.Config{"path": "/x", "retry": map[string]any{"attempts": "many"}}, &got); !errors.As(err, &ce) || ce.Field != "retry.attempts" {
		t.Fatalf("wrong type: %v", err)
	}
	var bad struct {
		X string `config:"nope"`
	}
	if err := testSpec.Decode(connector.Config{"path": "/x"}, &bad); err == nil {
		t.Fatal("a tag the spec does not declare was accepted")
	}
}

func TestConfigIsWhatLoadingGives(t *testing.T) {
	cfg, err := testSpec.Config(map[string]any{"path": "/x", "size": 5})
	if err != nil {
		t.Fatal(err)
	}
	if cfg["size"] != int64(5) || cfg["mode"] != "a" || cfg["poll"] != 200*time.Millisecond || cfg.Object("retry").Int("attempts") != 3 {
		t.Fatalf("config = %v", cfg)
	}
	var ce *connector.ConfigError
	if _, err := testSpec.Config(map[string]any{"path": "/x", "extra": 1}); !errors.As(err, &ce) || ce.Field != "extra" {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := testSpec.Config(map[string]any{"path": "/x", "mode": "c"}); !errors.As(err, &ce) || ce.Field != "mode" {
		t.Fatalf("enum: %v", err)
	}
}
