package e2e

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
}

var faultColors = []color.Color{color.RGBA{200, 0, 0, 255}, color.RGBA{0, 0, 200, 255}, color.RGBA{0, 140, 0, 255}}

// WritePNG draws records/s, end-to-end latency per sink and consumer lag over the run, with the
// faults marked, to path.
func (r *Report) WritePNG(path string) error {
	if len(r.samples) < 2 {
		return fmt.Errorf("plot: %d samples, too few to draw", len(r.samples))
	}
	sec := func(i int) float64 { return r.samples[i].at.Sub(r.start).Seconds() }

	// Records/s: produced, and committed by each group, per second.
	rate := newPlot("records/s (3 s averages)", "records/s")
	lines := map[string]plotter.XYs{}
	const smooth = 3 // rates over 3 samples: commits come in steps
	for i := smooth; i < len(r.samples); i++ {
		a, b := r.samples[i-smooth], r.samples[i]
		dt := b.at.Sub(a.at).Seconds()
		lines["produced"] = append(lines["produced"], plotter.XY{X: sec(i), Y: float64(b.produced-a.produced) / dt})
		for _, g := range groups {
			if a.committed != nil && b.committed != nil {
				lines["committed "+g] = append(lines["committed "+g], plotter.XY{X: sec(i), Y: float64(b.committed[g]-a.committed[g]) / dt})
			}
		}
	}
	addLines(rate, lines, []string{"produced", "committed " + groupMain, "committed " + groupStats}, false)

	// Latency: p50, p95 and p99 of each sink over 5-second windows, log scale.
	lat := newPlot("end-to-end latency per sink (5 s windows)", "seconds (log)")
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	sinks := map[string]bool{}
	for _, s := range r.samples {
		for k := range s.latency {
			sinks[k] = true
		}
	}
	latLines := map[string]plotter.XYs{}
	var order []string
	names := sortedKeys(sinks)
	for _, sink := range names {
		if r.Latency[sink].N < int64(r.Produced/100) {
			continue // the alerts: too few to draw
		}
		for _, q := range []float64{0.5, 0.95, 0.99} {
			order = append(order, fmt.Sprintf("%s p%.0f", sink, q*100))
		}
		for i := 5; i < len(r.samples); i += 5 {
			var h hist
			for j := i - 4; j <= i; j++ {
				if x, ok := r.samples[j].latency[sink]; ok {
					h.add(x)
				}
			}
			if h.total() == 0 {
				continue
			}
			for _, q := range []float64{0.5, 0.95, 0.99} {
				v := h.quantile(q)
				if math.IsNaN(v) || v <= 0 {
					continue
				}
				k := fmt.Sprintf("%s p%.0f", sink, q*100)
				latLines[k] = append(latLines[k], plotter.XY{X: sec(i), Y: v})
			}
		}
	}
	addLines(lat, latLines, order, true)

	// Lag in records and in seconds per group.
	lagR := newPlot("consumer lag (records)", "records")
	lagS := newPlot("consumer lag (age of the oldest record not committed)", "seconds")
	rl, sl := map[string]plotter.XYs{}, map[string]plotter.XYs{}
	for i, s := range r.samples {
		for _, g := range groups {
			if s.lag != nil {
				rl[g] = append(rl[g], plotter.XY{X: sec(i), Y: float64(s.lag[g])})
			}
			if v, ok := s.lagSec[g]; ok {
				sl[g] = append(sl[g], plotter.XY{X: sec(i), Y: v})
			}
		}
	}
	addLines(lagR, rl, groups, false)
	addLines(lagS, sl, groups, false)
	lagS.X.Label.Text = "seconds since the feed started"

	plots := [][]*plot.Plot{{rate}, {lat}, {lagR}, {lagS}}
	end := sec(len(r.samples) - 1)
	for _, row := range plots {
		markFaults(row[0], r.Faults, row[0] == rate)
		row[0].X.Min, row[0].X.Max = 0, end
	}
	const w, h = 9 * vg.Inch, 12 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(64))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10), PadY: vg.Points(8)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plainTicks are gonum's default ticks labelled without trailing zeros (50000, not 50000.00).
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', -1, 64)
		}
	}
	return ts
}

func newPlot(title, ylabel string) *plot.Plot {
	p := plot.New()
	p.X.Tick.Marker, p.Y.Tick.Marker = plainTicks{}, plainTicks{}
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Add(plotter.NewGrid())
	return p
}

func addLines(p *plot.Plot, lines map[string]plotter.XYs, order []string, dashByQuantile bool) {
	for i, name := range order {
		xys := lines[name]
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			continue
		}
		l.Width = vg.Points(1)
		if dashByQuantile {
			l.Color = palette[(i/3)%len(palette)]
			switch i % 3 {
			case 0:
				l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			case 2:
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(2)}
			}
		} else {
			l.Color = palette[i%len(palette)]
		}
		p.Add(l)
		p.Legend.Add(name, l)
	}
}

// markFaults draws a shaded band from each fault's start to its end.
func markFaults(p *plot.Plot, faults []FaultEvent, legend bool) {
	ymin, ymax := p.Y.Min, p.Y.Max
	if ymin <= 0 && p.Y.Scale != nil {
		if _, ok := p.Y.Scale.(plot.LogScale); ok {
			ymin = math.Max(ymin, 1e-3)
		}
	}
	for i, f := range faults {
		c := faultColors[i%len(faultColors)]
		poly, err := plotter.NewPolygon(plotter.XYs{{X: f.Start, Y: ymin}, {X: f.End, Y: ymin}, {X: f.End, Y: ymax}, {X: f.Start, Y: ymax}})
		if err != nil {
			continue
		}
		r, g, b, _ := c.RGBA()
		poly.Color = color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 36}
		poly.LineStyle.Width = 0
		poly.LineStyle.Color = color.Transparent
		p.Add(poly)
		if legend {
			p.Legend.Add(fmt.Sprintf("%s (%.0f-%.0f s)", f.Name, f.Start, f.End), poly)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
