// Package plaincheck holds the work the benchmarks' plain programs do where a pipeline runs a
// transform: validate_price written the way a plain Go program would write it.
package plaincheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ValidatePrice is validate_price's check as a plain Go program would write it: encoding/json
// into a struct, then the rules of transforms/validate_price/SPEC.md for its default config.
func ValidatePrice(v []byte) error {
	var p struct {
		Commodity *string         `json:"commodity"`
		Price     *float64        `json:"price"`
		TS        json.RawMessage `json:"ts"`
	}
	if err := json.Unmarshal(v, &p); err != nil {
		return err
	}
	switch {
	case p.Commodity == nil || *p.Commodity == "":
		return errors.New("commodity: must be a non-empty string")
	case p.Price == nil || !(*p.Price > 0) || *p.Price > 1e9:
		return errors.New("price: must be in (0, 1e9]")
	case len(p.TS) == 0:
		return errors.New("ts: missing")
	}
	if p.TS[0] == '"' {
		var s string
		if err := json.Unmarshal(p.TS, &s); err != nil {
			return err
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("ts: %w", err)
		}
		return nil
	}
	if _, err := strconv.ParseInt(string(p.TS), 10, 64); err != nil {
		return fmt.Errorf("ts: %w", err)
	}
	return nil
}
