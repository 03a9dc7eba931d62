package wasmhost

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMeta(t *testing.T) {
	const v10 = 0x00010000
	tests := []struct {
		name, meta string
		abi        uint32
		msg        string // "" = valid
	}{
		{"minimal", `{"name":"x","version":"1","abi":"1.0","kinds":["map"]}`, v10, ""},
		{"ports and schema", `{"name":"x","version":"1","abi":"1.0","kinds":["route"],"ports":["main","alerts"],"config_schema":{"type":"object"},"future":1}`, v10, ""},
		{"not JSON", `{"name":`, v10, "not a JSON object"},
		{"no name", `{"version":"1","abi":"1.0","kinds":["map"]}`, v10, "name"},
		{"bad name", `{"name":"a b","version":"1","abi":"1.0","kinds":["map"]}`, v10, "name"},
		{"no version", `{"name":"x","abi":"1.0","kinds":["map"]}`, v10, "version is required"},
		{"abi disagrees", `{"name":"x","version":"1","abi":"1.1","kinds":["map"]}`, v10, `abi "1.1", but tf_abi_version says 1.0`},
		{"no kinds", `{"name":"x","version":"1","abi":"1.0"}`, v10, "kinds must list"},
		{"unknown kind", `{"name":"x","version":"1","abi":"1.0","kinds":["reduce"]}`, v10, `unknown kind "reduce"`},
		{"main not first", `{"name":"x","version":"1","abi":"1.0","kinds":["map"],"ports":["alerts","main"]}`, v10, `ports[0] must be "main"`},
		{"duplicate port", `{"name":"x","version":"1","abi":"1.0","kinds":["map"],"ports":["main","a","a"]}`, v10, `port "a" must be unique`},
		{"bad port name", `{"name":"x","version":"1","abi":"1.0","kinds":["map"],"ports":["main","Alerts"]}`, v10, `port "Alerts"`},
		{"bad schema", `{"name":"x","version":"1","abi":"1.0","kinds":["map"],"config_schema":{"type":"nonsense"}}`, v10, "config_schema"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Module{}
			err := m.parseMeta([]byte(tc.meta), tc.abi)
			if tc.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.meta.Ports[0] != "main" {
					t.Fatalf("ports %v", m.meta.Ports)
				}
				return
			}
			if !errors.Is(err, ErrBadMeta) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want ErrBadMeta containing %q", err, tc.msg)
			}
		})
	}
}
