// Command price_floor is the Go transform SDK example: a validator that rejects prices below a
// configured floor. Build it with `make wasm-go` (into build/wasm/examples/price_floor.wasm) or:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o price_floor.wasm .
package main

import (
	"encoding/json"

	"github.com/sluicehq/sluice/sdk/go/transform"
)

func main() {}

var cfg struct {
	MinPrice float64 `json:"min_price"`
}

func init() {
	transform.Register(transform.Meta{Name: "price_floor", Version: "0.1.0", Kinds: []transform.Kind{transform.KindValidate}},
		transform.Validate(func(r transform.Record) error {
			var v struct{ Price *float64 }
			if json.Unmarshal(r.Value, &v) != nil || v.Price == nil {
				return transform.Rejectf(transform.CodeSchema, "price: missing or not a number")
			}
			if *v.Price < cfg.MinPrice {
				return transform.Rejectf(transform.CodeOutOfRange, "price: %v is below the floor %v", *v.Price, cfg.MinPrice)
			}
			return nil
		}),
		transform.OnInit(func() error { return transform.Config(&cfg) }))
}
