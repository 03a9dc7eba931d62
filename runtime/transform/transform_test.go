package transform_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestOutcomes(t *testing.T) {
	rec := func(v string) connector.Record { return connector.Record{Value: []byte(v)} }
	res := transform.Result{
		Actions: []transform.Action{transform.Pass, transform.Emit, transform.Reject, transform.Emit, transform.Reject, transform.Drop},
		Emitted: []transform.Emitted{{Input: 1, Record: rec("a")}, {Input: 1, Port: "side", Record: rec("b")}},
		// Input 4 has no Rejected entry: its outcome has code 0 and no reason.
		Rejected: []transform.Rejected{{Input: 2, Code: 3, Reason: "bad"}},
	}
	var got []string
	for o := range res.Outcomes() {
		s := fmt.Sprintf("%d:%v", o.Input, o.Action)
		for _, e := range o.Emitted {
			s += fmt.Sprintf(" %s@%q", e.Record.Value, e.Port)
		}
		if o.Action == transform.Reject {
			s += fmt.Sprintf(" %d/%d %q", o.Rejected.Input, o.Rejected.Code, o.Rejected.Reason)
		}
		got = append(got, s)
	}
	want := `0:PASS|1:EMIT a@"" b@"side"|2:REJECT 2/3 "bad"|3:EMIT|4:REJECT 4/0 ""|5:DROP`
	if strings.Join(got, "|") != want {
		t.Fatalf("outcomes\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	n := 0
	for range res.Outcomes() {
		if n++; n == 2 {
			break
		}
	}
	if n != 2 {
		t.Fatalf("break after %d outcomes", n)
	}
}
