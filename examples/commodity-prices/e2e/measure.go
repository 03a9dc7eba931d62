package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
)

// latencyMetric is the runtime's end-to-end latency histogram (internal/metrics).
const latencyMetric = "sluice_end_to_end_latency_seconds"

// hist is a histogram's buckets, not cumulative: counts[i] observations at most bounds[i] and
// above bounds[i-1]; the last bound is +Inf.
type hist struct {
	bounds []float64
	counts []float64
}

func (h *hist) add(o hist) {
	if h.bounds == nil {
		h.bounds = o.bounds
		h.counts = make([]float64, len(o.counts))
	}
	for i := range o.counts {
		if i < len(h.counts) {
			h.counts[i] += o.counts[i]
		}
	}
}

func (h hist) total() float64 {
	var n float64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// quantile interpolates linearly inside the bucket holding the q-th observation, as PromQL's
// histogram_quantile does; NaN when the histogram is empty.
func (h hist) quantile(q float64) float64 {
	n := h.total()
	if n == 0 {
		return math.NaN()
	}
	rank := q * n
	var acc float64
	for i, c := range h.counts {
		if acc+c >= rank && c > 0 {
			lo := 0.0
			if i > 0 {
				lo = h.bounds[i-1]
			}
			hi := h.bounds[i]
			if math.IsInf(hi, 1) {
				return lo // above the largest bound: its lower edge is all we know
			}
			return lo + (hi-lo)*(rank-acc)/c
		}
		acc += c
	}
	return h.bounds[len(h.bounds)-2]
}

// max is the upper bound of the highest bucket holding an observation.
func (h hist) max() float64 {
	for i := len(h.counts) - 1; i >= 0; i-- {
		if h.counts[i] > 0 {
			return h.bounds[i]
		}
	}
	return math.NaN()
}

// sample is what the driver saw at one moment.
type sample struct {
	at        time.Time
	lag       map[string]int64   // per group, records between the committed offsets and the end
	lagSec    map[string]float64 // per group, age of the oldest record not yet committed
	committed map[string]int64   // per group, the sum of the committed offsets
	produced  int64
	// latency is, per sink (pipeline/sink), the observations since the previous sample, summed
	// over the processes.
	latency map[string]hist
}

// scrapeState is the previous cumulative histogram of each process and sink.
type scrapeState map[int]map[string]hist

func (d *driver) sampleLoop(ctx context.Context, adm *kadm.Client) {
	prev := scrapeState{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := sample{at: time.Now(), produced: d.producedN.Load(), latency: map[string]hist{}}
		c, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		lag, committed, behind, err := d.lag(c, adm)
		cancel()
		if err == nil {
			s.lag, s.committed = lag, committed
			s.lagSec = d.lagSeconds(behind, s.at)
		}
		for _, p := range d.procs {
			cur, err := scrape(ctx, p.metricsURL())
			if err != nil {
				continue // down (killed) or busy: its next scrape covers this interval
			}
			old := prev[p.i]
			for sink, h := range cur {
				delta := hist{bounds: h.bounds, counts: make([]float64, len(h.counts))}
				o, had := old[sink]
				reset := had && o.total() > h.total() // the process restarted
				for i := range h.counts {
					if had && !reset && i < len(o.counts) {
						delta.counts[i] = h.counts[i] - o.counts[i]
					} else {
						delta.counts[i] = h.counts[i]
					}
				}
				agg := s.latency[sink]
				agg.add(delta)
				s.latency[sink] = agg
			}
			prev[p.i] = cur
		}
		d.sampleMu.Lock()
		d.samples = append(d.samples, s)
		d.sampleMu.Unlock()
	}
}

// lag returns, per group, the records of the topic not yet committed, the sum of the committed
// offsets, and the committed offset of each partition that lags.
func (d *driver) lag(ctx context.Context, adm *kadm.Client) (lag, committed map[string]int64, behind map[string]map[int32]int64, err error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, nil, nil, err
	}
	if ends.Error() != nil {
		return nil, nil, nil, ends.Error()
	}
	lag, committed, behind = map[string]int64{}, map[string]int64{}, map[string]map[int32]int64{}
	for _, g := range groups {
		behind[g] = map[int32]int64{}
		offs, err := adm.FetchOffsets(ctx, g)
		if err != nil {
			return nil, nil, nil, err
		}
		ends.Each(func(e kadm.ListedOffset) {
			at := int64(0)
			if o, ok := offs.Lookup(topic, e.Partition); ok && o.Err == nil && o.At >= 0 {
				at = o.At
			}
			lag[g] += max(e.Offset-at, 0)
			committed[g] += at
			if at < e.Offset {
				behind[g][e.Partition] = at
			}
		})
	}
	return lag, committed, behind, nil
}

// lagSeconds is, per group, the age of the oldest record produced and not yet committed: now
// less the production time of the record at the committed offset, the largest over the
// partitions that lag (behind, from lag).
func (d *driver) lagSeconds(behind map[string]map[int32]int64, now time.Time) map[string]float64 {
	out := map[string]float64{}
	for g, parts := range behind {
		var worst float64
		for part, at := range parts {
			if ts, ok := d.offsets[part].at(at); ok {
				worst = max(worst, now.Sub(time.UnixMilli(ts)).Seconds())
			}
		}
		out[g] = worst
	}
	return out
}

// scrape reads the end-to-end latency histograms of one process, per pipeline/sink.
func scrape(ctx context.Context, url string) (map[string]hist, error) {
	c, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(c, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]hist{}
	mf := mfs[latencyMetric]
	if mf == nil {
		return out, nil
	}
	for _, m := range mf.GetMetric() {
		out[label(m, "pipeline")+"/"+label(m, "sink")] = fromDTO(m.GetHistogram())
	}
	return out, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func fromDTO(h *dto.Histogram) hist {
	bs := h.GetBucket()
	sort.Slice(bs, func(i, j int) bool { return bs[i].GetUpperBound() < bs[j].GetUpperBound() })
	out := hist{}
	var prev float64
	for _, b := range bs {
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.counts = append(out.counts, float64(b.GetCumulativeCount())-prev)
		prev = float64(b.GetCumulativeCount())
	}
	if len(bs) == 0 || !math.IsInf(bs[len(bs)-1].GetUpperBound(), 1) {
		out.bounds = append(out.bounds, math.Inf(1))
		out.counts = append(out.counts, float64(h.GetSampleCount())-prev)
	}
	return out
}

func fmtSeconds(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v < 1:
		return strconv.FormatFloat(v*1000, 'f', 0, 64) + " ms"
	default:
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	}
}
