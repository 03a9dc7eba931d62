package aggregate_test

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"

	"github.com/sluicehq/sluice/sdk/go/aggregate"
)

// registerOnce keeps this test binary to the one Register a module may call (go test -count=N
// runs the example N times).
var registerOnce sync.Once

// A count per key and window, run natively through real ABI frames with Local. In a module, the
// Register call goes in an init function of package main, next to an empty func main.
func Example() {
	registerOnce.Do(func() {
		aggregate.Register(aggregate.Meta{Name: "count", Version: "1.0.0", StateVersion: 1}, aggregate.Funcs{
			// The state is a little-endian uint64; a new slot's is empty.
			Accumulate: func(s *aggregate.Step, state []byte) ([]byte, error) {
				if len(s.Record.Value) == 0 {
					return state, aggregate.Reject(aggregate.CodeInvalidInput, "empty record")
				}
				if len(state) == 0 {
					state = binary.LittleEndian.AppendUint64(state, 0)
				}
				binary.LittleEndian.PutUint64(state, binary.LittleEndian.Uint64(state)+1)
				return state, nil // the record is dropped (absorbed), the default
			},
			Emit: func(e *aggregate.Emitter, state []byte) error {
				e.AppendEmit("main", func(dst []byte) []byte {
					dst = append(dst, `{"count":`...)
					dst = strconv.AppendUint(dst, binary.LittleEndian.Uint64(state), 10)
					return append(dst, '}')
				})
				return nil
			},
			Merge: func(_ *aggregate.Slot, state, other []byte) ([]byte, error) {
				binary.LittleEndian.PutUint64(state, binary.LittleEndian.Uint64(state)+binary.LittleEndian.Uint64(other))
				return state, nil
			},
		})
	})
	var host aggregate.Local
	corn := aggregate.LocalSlot{Key: "corn", Start: 0, End: 60_000}
	wheat := aggregate.LocalSlot{Key: "wheat", Start: 0, End: 60_000}
	outcomes, err := host.Step([]aggregate.LocalRecord{
		{Slot: corn, Value: []byte("a")}, {Slot: wheat, Value: []byte("b")},
		{Slot: corn, Value: []byte("c")}, {Slot: corn, Value: nil},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range outcomes {
		fmt.Printf("%v %q\n", o.Action, o.Reason)
	}
	out, err := host.Emit(true, corn, wheat)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range out {
		fmt.Printf("slot %d: %s\n", e.Slot, e.Value)
	}
	// Output:
	// DROP ""
	// DROP ""
	// DROP ""
	// REJECT "empty record"
	// slot 0: {"count":2}
	// slot 1: {"count":1}
}
