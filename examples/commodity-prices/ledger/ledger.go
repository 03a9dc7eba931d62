// Package ledger reads back what the commodity-prices demo wrote (the Iceberg tables through
// iceberg-go, the dead-letter and alert files) and what the price API says it produced, and
// checks that every record is accounted for. The demo's summary program and its test use it.
package ledger

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// Lake is the demo's SQLite catalog. CatalogName is the name the manifests give it.
type Lake struct {
	cat catalog.Catalog
}

// CatalogName is the catalog name of the demo manifests (catalog.name); a SQL catalog shows a
// table only under the name it was created with.
const CatalogName = "demo"

// OpenLake opens the demo's SQLite catalog at dbPath whose warehouse is the directory warehouse.
func OpenLake(ctx context.Context, dbPath, warehouse string) (*Lake, error) {
	return OpenSQLiteCatalog(ctx, CatalogName, dbPath, warehouse)
}

// OpenSQLiteCatalog opens the SQLite catalog name (the manifest's catalog.name) at dbPath whose
// warehouse is the directory warehouse.
func OpenSQLiteCatalog(ctx context.Context, name, dbPath, warehouse string) (*Lake, error) {
	if _, err := os.Stat(dbPath); err != nil {
		return nil, fmt.Errorf("catalog %s: %w (did the pipelines run?)", dbPath, err)
	}
	wh, err := filepath.Abs(warehouse)
	if err != nil {
		return nil, err
	}
	cat, err := catalog.Load(ctx, name, ice.Properties{
		"type": "sql", "uri": "file:" + dbPath, "warehouse": "file://" + wh,
		sqlcat.DriverKey: sqliteshim.ShimName, sqlcat.DialectKey: string(sqlcat.SQLite),
	})
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", dbPath, err)
	}
	return &Lake{cat: cat}, nil
}

// Close releases the catalog's database.
func (l *Lake) Close() error {
	if c, ok := l.cat.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// Price is one row of market.prices.
type Price struct {
	Seq       int64
	Commodity string
	Price     float64
	TS        time.Time
}

// Window is one row of market.price_stats_1m.
type Window struct {
	Commodity   string
	Start, End  time.Time
	Count       int64
	Min, Max    float64
	First, Last float64
}

// Prices reads every row of the table market.prices.
func (l *Lake) Prices(ctx context.Context) ([]Price, error) {
	var out []Price
	err := l.scan(ctx, "market.prices", func(rec arrow.RecordBatch, col func(string) arrow.Array) {
		seq, com, price, ts := col("seq").(*array.Int64), col("commodity").(*array.String), col("price").(*array.Float64), col("ts").(*array.Timestamp)
		for i := range int(rec.NumRows()) {
			out = append(out, Price{Seq: seq.Value(i), Commodity: com.Value(i), Price: price.Value(i), TS: time.UnixMicro(int64(ts.Value(i))).UTC()})
		}
	})
	return out, err
}

// Windows reads every row of the table market.price_stats_1m.
func (l *Lake) Windows(ctx context.Context) ([]Window, error) {
	var out []Window
	err := l.scan(ctx, "market.price_stats_1m", func(rec arrow.RecordBatch, col func(string) arrow.Array) {
		com, start, end, count := col("commodity").(*array.String), col("window_start").(*array.Timestamp), col("window_end").(*array.Timestamp), col("count").(*array.Int64)
		mn, mx, first, last := col("min").(*array.Float64), col("max").(*array.Float64), col("first").(*array.Float64), col("last").(*array.Float64)
		for i := range int(rec.NumRows()) {
			out = append(out, Window{
				Commodity: com.Value(i), Start: time.UnixMicro(int64(start.Value(i))).UTC(), End: time.UnixMicro(int64(end.Value(i))).UTC(),
				Count: count.Value(i), Min: mn.Value(i), Max: mx.Value(i), First: first.Value(i), Last: last.Value(i),
			})
		}
	})
	return out, err
}

func (l *Lake) scan(ctx context.Context, name string, each func(arrow.RecordBatch, func(string) arrow.Array)) (err error) {
	tbl, err := l.cat.LoadTable(ctx, strings.Split(name, "."))
	if err != nil {
		return fmt.Errorf("load table %s: %w", name, err)
	}
	_, recs, err := tbl.Scan().ToArrowRecords(ctx)
	if err != nil {
		return fmt.Errorf("scan %s: %w", name, err)
	}
	defer func() {
		if r := recover(); r != nil { // a column of an unexpected type
			err = fmt.Errorf("read %s: %v", name, r)
		}
	}()
	for rec, err := range recs {
		if err != nil {
			return fmt.Errorf("scan %s: %w", name, err)
		}
		col := func(c string) arrow.Array {
			idx := rec.Schema().FieldIndices(c)
			if len(idx) == 0 {
				panic(fmt.Sprintf("no column %q", c))
			}
			return rec.Column(idx[0])
		}
		each(rec, col)
		rec.Release()
	}
	return nil
}

// Produced is what GET /v1/stats of the price API says it produced.
type Produced struct {
	Produced    int64 `json:"produced"`
	Valid       int64 `json:"valid"`
	Malformed   int64 `json:"malformed"`
	Outliers    int64 `json:"outliers"`
	Done        bool  `json:"done"`
	ByCommodity map[string]struct {
		Valid    int64 `json:"valid"`
		Outliers int64 `json:"outliers"`
	} `json:"by_commodity"`
	MalformedByKind map[string]int64 `json:"malformed_by_kind"`
	OutlierSeqs     []int64          `json:"outlier_seqs"`
	MalformedSeqs   []int64          `json:"malformed_seqs"`
}

// APIStats asks the price API at base (http://host:port) what it produced, with the seqs of
// its outliers and malformed records.
func APIStats(ctx context.Context, base string) (Produced, error) {
	var p Produced
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/stats?seqs=1", nil)
	if err != nil {
		return p, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return p, fmt.Errorf("price API stats: %w (is priceapi running?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("price API stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return p, fmt.Errorf("price API stats: %w", err)
	}
	return p, nil
}

// DeadLetter is one line of a dead-letter file: the reason and the original record.
type DeadLetter struct {
	Pipeline string `json:"pipeline"`
	Stage    string `json:"stage"`
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
	Value    string `json:"value"`
}

// Seq is the seq of the original record, or 0 when it has none.
func (d DeadLetter) Seq() int64 {
	var v struct {
		Seq int64 `json:"seq"`
	}
	_ = json.Unmarshal([]byte(d.Value), &v)
	return v.Seq
}

// Alert is one line of the anomaly stage's alerts file.
type Alert struct {
	Key   string  `json:"key"`
	Value float64 `json:"value"`
	Score float64 `json:"score"`
	TS    int64   `json:"ts"`
}

// ReadJSONLines decodes every line of the JSON-lines file path into T; a missing file is empty.
func ReadJSONLines[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// Commodity is the read-back summary of one commodity's rows.
type Commodity struct {
	Name             string
	Rows             int64
	Min, Max, Latest float64
	From, To         time.Time
	Windows          int
	WindowRecords    int64 // the sum of the windows' counts
	Alerts           int
}

// Summarize groups rows, windows and alerts per commodity, sorted by name.
func Summarize(rows []Price, windows []Window, alerts []Alert) []Commodity {
	by := map[string]*Commodity{}
	get := func(name string) *Commodity {
		c := by[name]
		if c == nil {
			c = &Commodity{Name: name}
			by[name] = c
		}
		return c
	}
	var latestSeq = map[string]int64{}
	for _, r := range rows {
		c := get(r.Commodity)
		if c.Rows == 0 || r.Price < c.Min {
			c.Min = r.Price
		}
		if c.Rows == 0 || r.Price > c.Max {
			c.Max = r.Price
		}
		if c.Rows == 0 || r.TS.Before(c.From) {
			c.From = r.TS
		}
		if r.TS.After(c.To) {
			c.To = r.TS
		}
		if r.Seq > latestSeq[r.Commodity] {
			latestSeq[r.Commodity], c.Latest = r.Seq, r.Price
		}
		c.Rows++
	}
	for _, w := range windows {
		c := get(w.Commodity)
		c.Windows++
		c.WindowRecords += w.Count
	}
	for _, a := range alerts {
		get(a.Key).Alerts++
	}
	out := make([]Commodity, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Account compares what the API produced with what landed: the rows of the table plus the
// dead letters of each pipeline must be every record produced, the rows every valid one, and the
// windows must count every row. It returns one line per problem; none means every record is
// accounted for.
func Account(p Produced, rows []Price, windows []Window, priceLetters, statsLetters []DeadLetter) []string {
	var problems []string
	if !p.Done {
		problems = append(problems, "the price API has not finished producing (start it with -total and enough -backfill)")
	}
	if got := int64(len(rows)) + int64(len(priceLetters)); got != p.Produced {
		problems = append(problems, fmt.Sprintf("prices: %d rows + %d dead letters = %d, the API produced %d", len(rows), len(priceLetters), got, p.Produced))
	}
	if int64(len(rows)) != p.Valid {
		problems = append(problems, fmt.Sprintf("prices: %d rows, the API produced %d valid records", len(rows), p.Valid))
	}
	var counted int64
	for _, w := range windows {
		counted += w.Count
	}
	if counted+int64(len(statsLetters)) != p.Produced {
		problems = append(problems, fmt.Sprintf("stats: windows count %d records + %d dead letters = %d, the API produced %d", counted, len(statsLetters), counted+int64(len(statsLetters)), p.Produced))
	}
	seen := map[int64]int{}
	for _, r := range rows {
		seen[r.Seq]++
	}
	for seq, n := range seen {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("prices: seq %d is in the table %d times", seq, n))
		}
	}
	return problems
}
