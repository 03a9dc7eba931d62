package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/sluicehq/sluice/examples/rental-listings/truth"
)

// Report is what landed where, read back from every store, against the site's truth.
type Report struct {
	Truth truth.Truth

	Postgres, Redis, Iceberg int // listing rows, hashes, history rows
	DeadLetters              int // rows of rental_dead_letters
	RejectedByQuality        int // dead letters of the quality stage
	PageFailures             int // dead letters of the scraper (pages failing after their retries)
	DedupeIn, DedupeDropped  int // the dedupe stage's metrics
	PulsarEvents             int // events sent that are in the topic rental-events (at least once)
	ActivityWindows          int // Redis hashes rental-activity:*
	ActivityCounted          int // the sum of their counts
	PersonalChecked          int // values searched for personal data
	Kills                    int // times sluice run was killed with SIGKILL
	// Written twice by at-least-once delivery after a kill: Iceberg history rows, dead letters,
	// Pulsar events (distinct events are what must all be there). FeedLostInFlight counts the
	// feed's events lost with a killed process.
	IcebergTwice, DeadLettersTwice, PulsarTwice, FeedLostInFlight int
	FilesChecked                                                  int // files at rest searched for personal data (data directories, logs, warehouse)

	// Problems lists every record not accounted for; empty when everything is.
	Problems []string
}

// OK reports whether every record is accounted for.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < 40 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else if len(r.Problems) == 40 {
		r.Problems = append(r.Problems, "(more problems left out)")
	}
}

// Print writes the accounting.
func (r *Report) Print(w io.Writer) {
	t := r.Truth
	fmt.Fprintf(w, "Every record accounted for (the listing site's GET /truth against what landed):\n")
	fmt.Fprintf(w, "  site: %d pages, %d items = %d distinct valid listings + %d duplicates + %d to reject; %d error pages, %d pages answered 503 once\n",
		t.Pages, t.ItemsServed, len(t.Listings), t.Duplicates, len(t.Rejected), len(t.ErrorPages), t.FlakyPages)
	if r.Kills > 0 {
		fmt.Fprintf(w, "  faults: sluice run killed with SIGKILL %d times during the crawl, started again each time\n", r.Kills)
	}
	fmt.Fprintf(w, "  listings: %d in Postgres, %d in Redis, %d in Iceberg (of %d)\n", r.Postgres, r.Redis, r.Iceberg-r.IcebergTwice, len(t.Listings))
	if r.Kills > 0 {
		fmt.Fprintf(w, "    at least once after the kills: %d Iceberg history rows written twice (upserts and hashes overwrite)\n", r.IcebergTwice)
		fmt.Fprintf(w, "  dedupe:   not compared (its counters start again with each process)\n")
	} else {
		fmt.Fprintf(w, "  dedupe:   %d in, %d dropped (of %d duplicates)\n", r.DedupeIn, r.DedupeDropped, t.Duplicates)
	}
	fmt.Fprintf(w, "  dead letters: %d = %d rejected by quality (of %d) + %d failed pages (of %d)\n",
		r.DeadLetters, r.RejectedByQuality, len(t.Rejected), r.PageFailures, len(t.ErrorPages))
	kinds := map[string]int{}
	for _, x := range t.Rejected {
		kinds[x.Kind]++
	}
	var ks []string
	for k, n := range kinds {
		ks = append(ks, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(ks)
	fmt.Fprintf(w, "    rejected by kind: %s\n", strings.Join(ks, ", "))
	if r.Kills > 0 {
		fmt.Fprintf(w, "    at least once after the kills: %d dead letters written twice (not in the count above)\n", r.DeadLettersTwice)
	}
	fmt.Fprintf(w, "  events: %d sent (%d webhook, %d WebSocket feed), %d in Pulsar, %d counted in %d Redis windows\n",
		len(t.Events), t.WebhookSent, t.FeedSent, r.PulsarEvents, r.ActivityCounted, r.ActivityWindows)
	if r.Kills > 0 {
		fmt.Fprintf(w, "    after the kills: %d events published twice (counted once: activity.yaml dedupes by event_id); %d feed events lost in flight, all written by the site in the %s before a kill (the feed cannot be replayed)\n",
			r.PulsarTwice, r.FeedLostInFlight, inFlight)
	}
	fmt.Fprintf(w, "  personal data: %d values read back from Postgres, Redis, Iceberg, Pulsar and the dead letters, and %d files at rest (data directories, logs, warehouse); none holds a landlord's name, email or phone\n", r.PersonalChecked, r.FilesChecked)
	if r.OK() {
		fmt.Fprintf(w, "  OK: nothing lost, nothing counted twice, nothing personal in clear\n")
		return
	}
	fmt.Fprintf(w, "  NOT ACCOUNTED FOR:\n")
	for _, p := range r.Problems {
		fmt.Fprintf(w, "    - %s\n", p)
	}
}

// FetchTruth asks the site at base what it served.
func FetchTruth(ctx context.Context, base string) (truth.Truth, error) {
	var t truth.Truth
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/truth", nil)
	if err != nil {
		return t, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return t, fmt.Errorf("listing site truth: %w (is listingsite running?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return t, fmt.Errorf("listing site truth: %s", resp.Status)
	}
	return t, json.NewDecoder(resp.Body).Decode(&t)
}

// personal finds landlord data in clear: the site's emails and phones by their shape (every one
// it serves is @mail.example and +33 6 ...), names by value.
type personal struct {
	names []string
	shape *regexp.Regexp
}

func newPersonal(t truth.Truth) *personal {
	p := &personal{shape: regexp.MustCompile(`@mail\.example|\+33 6 \d\d`)}
	seen := map[string]bool{}
	for _, v := range t.Personal {
		if !strings.Contains(v, "@") && !strings.HasPrefix(v, "+") && !seen[v] {
			seen[v] = true
			p.names = append(p.names, v)
		}
	}
	return p
}

func (p *personal) find(s string) string {
	if m := p.shape.FindString(s); m != "" {
		return m
	}
	for _, n := range p.names {
		if strings.Contains(s, n) {
			return n
		}
	}
	return ""
}

// strings of a JSON text (decoded, so escapes hide nothing), or the text itself when it is not JSON.
func jsonStrings(b []byte) []string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return []string{string(b)}
	}
	out := []string{string(b)}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			for k, e := range x {
				out = append(out, k)
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

var hashRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// row is a listing as read back from one store.
type row struct {
	ID, Title, City                 string
	Price, Quality                  float64
	Rooms                           *int64
	Area                            *float64
	LandlordName, LandlordEmail, LP string
}

func (r *Report) checkListings(store string, rows []row, t truth.Truth, pii *personal, twiceOK bool) {
	byID := map[string][]row{}
	for _, x := range rows {
		byID[x.ID] = append(byID[x.ID], x)
		for _, s := range []string{x.ID, x.Title, x.City, x.LandlordName, x.LandlordEmail, x.LP} {
			r.PersonalChecked++
			if m := pii.find(s); m != "" {
				r.problem("%s: listing %s holds personal data in clear (%q)", store, x.ID, m)
			}
		}
		for _, s := range []string{x.LandlordName, x.LandlordEmail, x.LP} {
			if !hashRe.MatchString(s) {
				r.problem("%s: listing %s: a landlord field is %q, not a SHA-256 hash", store, x.ID, s)
			}
		}
	}
	want := map[string]bool{}
	for _, l := range t.Listings {
		want[l.ID] = true
		got := byID[l.ID]
		if twiceOK && len(got) > 1 && !slices.ContainsFunc(got, func(x row) bool { return !sameRow(x, got[0]) }) {
			r.IcebergTwice += len(got) - 1
			got = got[:1]
		}
		if len(got) != 1 {
			r.problem("%s: listing %s found %d times, want once", store, l.ID, len(got))
			continue
		}
		g := got[0]
		var rooms *int64
		if l.Rooms != nil {
			v := int64(*l.Rooms)
			rooms = &v
		}
		if g.Title != l.Title || g.City != l.City || g.Price != l.Price || g.Quality != l.Quality || !eqPtr(g.Rooms, rooms) || !eqPtr(g.Area, l.Area) {
			r.problem("%s: listing %s is %+v, the site served %+v", store, l.ID, g, l)
		}
	}
	for id := range byID {
		if !want[id] {
			r.problem("%s: listing %q is not a valid listing of the site", store, id)
		}
	}
}

// sameRow reports whether two rows of one listing hold the same values.
func sameRow(a, b row) bool {
	return a.ID == b.ID && a.Title == b.Title && a.City == b.City && a.Price == b.Price && a.Quality == b.Quality &&
		eqPtr(a.Rooms, b.Rooms) && eqPtr(a.Area, b.Area) && a.LandlordName == b.LandlordName && a.LandlordEmail == b.LandlordEmail && a.LP == b.LP
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// Services are the addresses of the stores.
type Services struct {
	PGDSN, RedisAddr, PulsarURL, PulsarAdminURL string
	CatalogPath, Warehouse                      string // the SQLite catalog and warehouse directory of the history table
	MetricsURL                                  string // the sluice process's /metrics
	// Killed holds when `sluice run` was killed with SIGKILL, if it was. Delivery is at least
	// once: what a killed process wrote and had not checkpointed is written again by the next,
	// so Iceberg history rows, dead letters and Pulsar events may then be there twice (counted,
	// not a problem; the upserted listings and the activity counts must still be exact). The
	// dedupe stage's counters start again with each process and are not compared. The WebSocket
	// feed cannot be replayed: an event the site wrote in the inFlight before a kill may be lost
	// with the killed process (counted, not a problem); any other missing event is one.
	Killed []time.Time
}

// inFlight is how long before a kill a WebSocket feed event may have been delivered and still be
// lost with the killed process.
const inFlight = 2 * time.Second

// Collect reads back everything the platform wrote and accounts for it against t.
func Collect(ctx context.Context, s Services, t truth.Truth) (*Report, error) {
	r := &Report{Truth: t, Kills: len(s.Killed)}
	pii := newPersonal(t)
	killed := len(s.Killed) > 0

	pg, err := pgx.Connect(ctx, s.PGDSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	defer pg.Close(context.Background())
	var pgRows []row
	rows, err := pg.Query(ctx, `SELECT listing_id, coalesce(title,''), coalesce(city,''), price, quality, rooms, area,
		coalesce(landlord_name,''), coalesce(landlord_email,''), coalesce(landlord_phone,'') FROM rental_listings`)
	if err == nil {
		for rows.Next() {
			var x row
			var rooms *int32
			if err := rows.Scan(&x.ID, &x.Title, &x.City, &x.Price, &x.Quality, &rooms, &x.Area, &x.LandlordName, &x.LandlordEmail, &x.LP); err != nil {
				return nil, fmt.Errorf("postgres: rental_listings: %w", err)
			}
			if rooms != nil {
				v := int64(*rooms)
				x.Rooms = &v
			}
			pgRows = append(pgRows, x)
		}
		err = rows.Err()
	}
	if err != nil {
		r.problem("postgres: rental_listings: %v", err)
	}
	r.Postgres = len(pgRows)
	r.checkListings("postgres", pgRows, t, pii, false)

	// Dead letters.
	type letter struct{ pipeline, stage, reason, value string }
	var letters []letter
	rows, err = pg.Query(ctx, `SELECT pipeline, stage, coalesce(reason,''), coalesce(value,''), coalesce(headers::text,''), coalesce(record_key,'') FROM rental_dead_letters`)
	if err == nil {
		for rows.Next() {
			var l letter
			var headers, key string
			if err := rows.Scan(&l.pipeline, &l.stage, &l.reason, &l.value, &headers, &key); err != nil {
				return nil, fmt.Errorf("postgres: rental_dead_letters: %w", err)
			}
			for _, s := range append(jsonStrings([]byte(l.value)), l.reason, headers, key) {
				r.PersonalChecked++
				if m := pii.find(s); m != "" {
					r.problem("dead letters: a letter of %s/%s holds personal data in clear (%q)", l.pipeline, l.stage, m)
				}
			}
			letters = append(letters, l)
		}
		err = rows.Err()
	}
	if err != nil {
		r.problem("postgres: rental_dead_letters: %v", err)
	}
	r.DeadLetters = len(letters)
	byTitle := map[string][]letter{}
	pages := map[string]int{}
	for _, l := range letters {
		switch {
		case l.pipeline == "rental-listings" && l.stage == "quality":
			r.RejectedByQuality++
			var v struct {
				Title string `json:"title"`
			}
			_ = json.Unmarshal([]byte(l.value), &v)
			byTitle[v.Title] = append(byTitle[v.Title], l)
		case l.pipeline == "rental-listings" && l.stage == "source":
			r.PageFailures++
			var v struct {
				URL string `json:"url"`
			}
			_ = json.Unmarshal([]byte(l.value), &v)
			pages[v.URL]++
		default:
			r.problem("dead letters: unexpected letter of %s/%s: %s: %s", l.pipeline, l.stage, l.reason, l.value)
		}
	}
	for _, x := range t.Rejected {
		got := byTitle[x.Title]
		if killed && len(got) > 1 && !slices.ContainsFunc(got, func(l letter) bool { return l != got[0] }) {
			r.DeadLettersTwice += len(got) - 1
			r.RejectedByQuality -= len(got) - 1
			got = got[:1]
		}
		switch {
		case len(got) != 1:
			r.problem("dead letters: rejected item %q (%s) found %d times, want once", x.Title, x.Kind, len(got))
		case !strings.Contains(got[0].reason, x.Reason):
			r.problem("dead letters: item %q (%s): reason %q, want one containing %q", x.Title, x.Kind, got[0].reason, x.Reason)
		}
		delete(byTitle, x.Title)
	}
	for title := range byTitle {
		r.problem("dead letters: %q rejected by quality, but the site served it as valid", title)
	}
	for _, u := range t.ErrorPages {
		if killed && pages[u] > 1 {
			r.DeadLettersTwice += pages[u] - 1
			r.PageFailures -= pages[u] - 1
			pages[u] = 1
		}
		if pages[u] != 1 {
			r.problem("dead letters: error page %s found %d times, want once", u, pages[u])
		}
		delete(pages, u)
	}
	for u, n := range pages {
		r.problem("dead letters: page %s failed %d times, but the site serves it", u, n)
	}
	r.DeadLetters -= r.DeadLettersTwice

	// Redis.
	rdb := redis.NewClient(&redis.Options{Addr: s.RedisAddr})
	defer rdb.Close()
	var redisRows []row
	keys, err := scanKeys(ctx, rdb, "listing:*")
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	for _, k := range keys {
		h, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: %s: %w", k, err)
		}
		x := row{ID: h["listing_id"], Title: h["title"], City: h["city"], LandlordName: h["landlord_name"], LandlordEmail: h["landlord_email"], LP: h["landlord_phone"]}
		x.Price, _ = strconv.ParseFloat(h["price"], 64)
		x.Quality, _ = strconv.ParseFloat(h["quality"], 64)
		if v, err := strconv.ParseInt(h["rooms"], 10, 64); err == nil {
			x.Rooms = &v
		}
		if v, err := strconv.ParseFloat(h["area"], 64); err == nil {
			x.Area = &v
		}
		if k != "listing:"+x.ID {
			r.problem("redis: hash %s holds listing %q", k, x.ID)
		}
		for _, v := range h {
			r.PersonalChecked++
			if m := pii.find(v); m != "" {
				r.problem("redis: %s holds personal data in clear (%q)", k, m)
			}
		}
		redisRows = append(redisRows, x)
	}
	r.Redis = len(redisRows)
	r.checkListings("redis", redisRows, t, pii, false)

	// Iceberg.
	iceRows, err := readHistory(ctx, s.CatalogPath, s.Warehouse)
	if err != nil {
		r.problem("iceberg: %v", err)
	}
	r.Iceberg = len(iceRows)
	r.checkListings("iceberg", iceRows, t, pii, killed)

	// The dedupe stage's metrics.
	if s.MetricsURL != "" && !killed {
		in, out, err := stageMetrics(ctx, s.MetricsURL, "rental-listings", "dedupe")
		if err != nil {
			r.problem("metrics: %v", err)
		}
		r.DedupeIn, r.DedupeDropped = in, in-out
		if r.DedupeDropped != t.Duplicates {
			r.problem("dedupe dropped %d records, the site served %d duplicates", r.DedupeDropped, t.Duplicates)
		}
	}

	// Events: Pulsar, then the counts in Redis.
	ids, err := readPulsar(ctx, s.PulsarURL, pii, r)
	if err != nil {
		r.problem("pulsar: %v", err)
	}
	want := map[string]int{}
	sent := map[string]bool{}
	for _, e := range t.Events {
		sent[e.ID] = true
		switch n := ids[e.ID]; {
		case n == 0 && killed && e.Via == "feed" && s.nearKill(e.TS):
			r.FeedLostInFlight++
			continue
		case n == 0:
			r.problem("pulsar: event %s (%s, via %s) is not in rental-events", e.ID, e.Kind, e.Via)
		case n > 1 && killed:
			r.PulsarTwice += n - 1
		case n > 1:
			r.problem("pulsar: event %s is in rental-events %d times", e.ID, n)
		}
		r.PulsarEvents++
		want[fmt.Sprintf("rental-activity:%s:%d", e.ListingID, e.TS-e.TS%int64(5*time.Minute/time.Millisecond))]++
	}
	for id, n := range ids {
		if !sent[id] {
			r.problem("pulsar: rental-events holds %d message(s) of event %q, which the site did not deliver", n, id)
		}
	}
	keys, err = scanKeys(ctx, rdb, "rental-activity:*")
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	got := map[string]int{}
	for _, k := range keys {
		c, err := rdb.HGet(ctx, k, "count").Int()
		if err != nil {
			r.problem("redis: %s: count: %v", k, err)
		}
		got[k] = c
		r.ActivityCounted += c
	}
	r.ActivityWindows = len(got)
	for k, w := range want {
		if got[k] != w {
			r.problem("redis: %s counts %d events, %d were sent", k, got[k], w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			r.problem("redis: %s counts %d events, none was sent", k, g)
		}
	}
	return r, nil
}

func scanKeys(ctx context.Context, rdb *redis.Client, pattern string) ([]string, error) {
	var keys []string
	it := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	return keys, it.Err()
}

// nearKill reports whether an event written by the site at ts (epoch ms) may have been in flight
// in a killed process: from inFlight before a kill to a second after it (a write into the socket
// of a process just killed can still succeed).
func (s Services) nearKill(ts int64) bool {
	at := time.UnixMilli(ts)
	for _, k := range s.Killed {
		if !at.Before(k.Add(-inFlight)) && !at.After(k.Add(time.Second)) {
			return true
		}
	}
	return false
}

// readPulsar reads the topic rental-events from its start to its end, checking each payload for
// personal data, and returns how many messages each event_id has.
func readPulsar(ctx context.Context, url string, pii *personal, r *Report) (map[string]int, error) {
	ids := map[string]int{}
	cl, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, OperationTimeout: 30 * time.Second, Logger: pulsarlog.DefaultNopLogger()})
	if err != nil {
		return ids, err
	}
	defer cl.Close()
	rd, err := cl.CreateReader(pulsar.ReaderOptions{Topic: EventsTopic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		return ids, err
	}
	defer rd.Close()
	for rd.HasNext() {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := rd.Next(rctx)
		cancel()
		if err != nil {
			return ids, err
		}
		var e struct {
			ID string `json:"event_id"`
		}
		if err := json.Unmarshal(m.Payload(), &e); err != nil || e.ID == "" {
			r.problem("pulsar: message %v is not an event with an event_id: %.200s", m.ID(), m.Payload())
		}
		ids[e.ID]++
		r.PersonalChecked++
		if x := pii.find(string(m.Payload())); x != "" {
			r.problem("pulsar: message %v holds personal data in clear (%q)", m.ID(), x)
		}
	}
	return ids, nil
}

// stageMetrics reads sluice_records_in_total and _out_total of one component from /metrics.
func stageMetrics(ctx context.Context, url, pipeline, component string) (in, out int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	labels := fmt.Sprintf(`{component=%q,pipeline=%q}`, component, pipeline)
	for _, line := range strings.Split(string(b), "\n") {
		for name, dst := range map[string]*int{"sluice_records_in_total": &in, "sluice_records_out_total": &out} {
			if rest, ok := strings.CutPrefix(line, name+labels+" "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				*dst = int(f)
			}
		}
	}
	return in, out, nil
}

// readHistory reads every row of rentals.listing_history.
func readHistory(ctx context.Context, dbPath, warehouse string) ([]row, error) {
	cat, err := catalog.Load(ctx, "rentals", ice.Properties{
		"type": "sql", "uri": "file:" + dbPath, "warehouse": "file://" + warehouse,
		sqlcat.DriverKey: sqliteshim.ShimName, sqlcat.DialectKey: string(sqlcat.SQLite),
	})
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", dbPath, err)
	}
	if c, ok := cat.(interface{ Close() error }); ok {
		defer c.Close()
	}
	tbl, err := cat.LoadTable(ctx, []string{"rentals", "listing_history"})
	if err != nil {
		return nil, fmt.Errorf("load table rentals.listing_history: %w", err)
	}
	_, recs, err := tbl.Scan().ToArrowRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan rentals.listing_history: %w", err)
	}
	var out []row
	for rec, err := range recs {
		if err != nil {
			return nil, fmt.Errorf("scan rentals.listing_history: %w", err)
		}
		col := func(name string) arrow.Array {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) == 0 {
				return nil
			}
			return rec.Column(idx[0])
		}
		str := func(name string, i int) string {
			if c, ok := col(name).(*array.String); ok && c.IsValid(i) {
				return c.Value(i)
			}
			return ""
		}
		f64 := func(name string, i int) *float64 {
			if c, ok := col(name).(*array.Float64); ok && c.IsValid(i) {
				v := c.Value(i)
				return &v
			}
			return nil
		}
		for i := range int(rec.NumRows()) {
			x := row{ID: str("listing_id", i), Title: str("title", i), City: str("city", i),
				LandlordName: str("landlord_name", i), LandlordEmail: str("landlord_email", i), LP: str("landlord_phone", i), Area: f64("area", i)}
			if p := f64("price", i); p != nil {
				x.Price = *p
			}
			if q := f64("quality", i); q != nil {
				x.Quality = *q
			}
			if c, ok := col("rooms").(*array.Int64); ok && c.IsValid(i) {
				v := c.Value(i)
				x.Rooms = &v
			}
			out = append(out, x)
		}
		rec.Release()
	}
	return out, nil
}

// CheckFilesAtRest searches every file under dir (the data directories, logs, catalog and
// warehouse; the WASM module cache left out) for personal data in clear. A compressed file could
// hide a value from it; the stores read back above cannot.
func (r *Report) CheckFilesAtRest(dir string) error {
	pii := newPersonal(r.Truth)
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "wasm-cache" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r.FilesChecked++
		if m := pii.find(string(b)); m != "" {
			r.problem("file %s holds personal data in clear (%q)", path, m)
		}
		return nil
	})
}
