// Command guest is a test module for the SDK, run through the host by internal/wasmhost's
// TestSDKGuestThroughHost: each record value is a command.
package main

import (
	"bytes"
	"strings"

	"github.com/sluicehq/sluice/sdk/go/transform"
)

func main() {}

var prefix string

func init() {
	transform.Register(transform.Meta{Name: "sdk_guest", Version: "0.0.1", Kinds: []transform.Kind{transform.KindFlatMap}, Ports: []string{"side"}},
		transform.ProcessFunc(process),
		transform.OnInit(func() error {
			var c struct {
				Prefix string `json:"prefix"`
				Fail   bool   `json:"fail"`
			}
			if err := transform.Config(&c); err != nil {
				return err
			}
			if c.Fail {
				return transform.Rejectf(0, "refusing to start: fail is set")
			}
			prefix = c.Prefix
			return nil
		}))
}

func process(b *transform.Batch) error {
	transform.Logf(transform.LevelInfo, "batch of %d", b.Len())
	transform.Count("batches", 1)
	for i := 0; i < b.Len(); i++ {
		r := b.Record(i)
		cmd, arg, _ := strings.Cut(string(r.Value), " ")
		switch cmd {
		case "pass":
		case "drop":
			b.Drop(i)
		case "reject":
			b.Reject(i, 42, arg)
		case "panic":
			panic("poison record " + arg)
		case "header":
			h, ok := r.Header(arg)
			if !ok {
				b.Reject(i, 7, "no header "+arg)
				continue
			}
			b.Emit(i, "", nil, h)
		case "split":
			for _, part := range strings.Split(arg, ",") {
				port := ""
				if strings.HasPrefix(part, "side:") {
					port, part = "side", strings.TrimPrefix(part, "side:")
				}
				b.Emit(i, port, []byte("k-"+part), []byte(prefix+part))
			}
		case "upper":
			b.AppendEmit(i, "", nil, func(dst []byte) []byte { return append(dst, bytes.ToUpper([]byte(arg))...) })
		case "full":
			b.EmitRecord(i, transform.Out{Port: "side", KeyNull: true, Value: []byte("full"), Timestamp: 1700000000000,
				HasTimestamp: true, Headers: []transform.Header{{Key: []byte("x"), Value: []byte("y")}}})
		case "count":
			transform.Count("counted", int64(len(arg)))
		default:
			b.Reject(i, 1, "unknown command "+cmd)
		}
	}
	return nil
}
