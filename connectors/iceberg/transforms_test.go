package iceberg_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/murmur3"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestPartitionTransformsIntegration writes commodity records into tables partitioned by each
// transform the sink offers besides day and identity (TestCommodities100k*): year, month and hour
// of a timestamp, bucket of a long and truncate of a string. PyIceberg must read every row back
// and see the partition spec and, per partition, the record counts computed here from the
// transforms' definitions in the Iceberg spec.
func TestPartitionTransformsIntegration(t *testing.T) {
	testenv.Require(t, "PYICEBERG_PYTHON")
	const n = 3_000
	epoch := time.Unix(0, 0).UTC()
	for _, tc := range []struct {
		partition, spec, field string
		step                   time.Duration // between the records' timestamps; 0: commodityRecord's 2.5 s
		value                  func(ts time.Time, seq int64, commodity string) string
	}{
		{"year(ts)", "year(ts)", "ts_year", 24 * time.Hour, func(ts time.Time, _ int64, _ string) string { return fmt.Sprint(ts.Year() - 1970) }},
		{"month(ts)", "month(ts)", "ts_month", 24 * time.Hour, func(ts time.Time, _ int64, _ string) string {
			return fmt.Sprint((ts.Year()-1970)*12 + int(ts.Month()) - 1)
		}},
		{"hour(ts)", "hour(ts)", "ts_hour", 0, func(ts time.Time, _ int64, _ string) string { return fmt.Sprint(int64(ts.Sub(epoch) / time.Hour)) }},
		{"bucket(8, seq)", "bucket[8](seq)", "seq_bucket", 0, func(_ time.Time, seq int64, _ string) string {
			var b [8]byte // a long hashes as its 8 little-endian bytes (murmur3 x86 32, seed 0)
			binary.LittleEndian.PutUint64(b[:], uint64(seq))
			return fmt.Sprint((murmur3.Sum32(b[:]) & 0x7fffffff) % 8)
		}},
		{"truncate(3, commodity)", "truncate[3](commodity)", "commodity_trunc", 0, func(_ time.Time, _ int64, c string) string { return string([]rune(c)[:min(3, len([]rune(c)))]) }},
	} {
		t.Run(tc.partition, func(t *testing.T) {
			d := sqliteDest(t)
			name := uniqueTable(t, d)
			cfg := map[string]any{"catalog": d.catalog, "table": name, "schema": commoditySchema, "partition": []any{tc.partition}}
			s := openSink(t, cfg, env("transforms"))
			recs := make([]connector.Record, n)
			want := map[string]int{}
			for i := range recs {
				recs[i] = commodityRecord(i)
				if tc.step != 0 { // the same record a day apart: 3,000 days span 9 years
					var m map[string]any
					_ = json.Unmarshal(recs[i].Value, &m)
					m["ts"] = commodityBase.Add(time.Duration(i) * tc.step).Format(time.RFC3339)
					recs[i].Value, _ = json.Marshal(m)
				}
				var v struct {
					Commodity string    `json:"commodity"`
					TS        time.Time `json:"ts"`
					Seq       int64     `json:"seq"`
				}
				if err := json.Unmarshal(recs[i].Value, &v); err != nil {
					t.Fatal(err)
				}
				want[tc.value(v.TS.UTC(), v.Seq, v.Commodity)]++
			}
			for i := 0; i < n; i += 1_000 {
				if err := s.Write(ctx(t), recs[i:i+1_000]); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			if err := s.Close(ctx(t)); err != nil {
				t.Fatal(err)
			}
			got := readWithPyIceberg(t, d, name, "seq")
			if len(got.Rows) != n {
				t.Fatalf("pyiceberg reads %d rows, want %d", len(got.Rows), n)
			}
			for i, row := range got.Rows {
				if tc.step != 0 {
					if seq, _ := row["seq"].(json.Number).Int64(); seq != int64(i) {
						t.Fatalf("row %d has seq %v", i, row["seq"])
					}
					continue
				}
				if err := checkCommodityRow(i, row); err != nil {
					t.Fatalf("row %d: %v", i, err)
				}
			}
			if len(got.PartitionSpec) != 1 || got.PartitionSpec[0] != tc.spec {
				t.Fatalf("partition spec %v, want [%s]", got.PartitionSpec, tc.spec)
			}
			counts := map[string]int{}
			for _, p := range got.Partitions {
				counts[fmt.Sprint(p.Partition[tc.field])] += p.Records
			}
			if len(want) < 2 {
				t.Fatalf("the records fall in %d partition(s): the test data does not exercise %s", len(want), tc.partition)
			}
			if fmt.Sprint(counts) != fmt.Sprint(want) {
				t.Fatalf("records per partition (pyiceberg) %v, want %v", counts, want)
			}
			t.Logf("%s: %d partitions, as computed from the spec", tc.partition, len(want))
		})
	}
}
