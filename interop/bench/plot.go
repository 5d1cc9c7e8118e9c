package bench

import (
	"bytes"
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotPNG draws the panels side by side (two a row), each with the size
// on a log scale and the per-request cost from zero, and returns the PNG.
func PlotPNG(panels []Panel) ([]byte, error) {
	if len(panels) == 0 {
		return nil, fmt.Errorf("no panels to plot")
	}
	cols := min(2, len(panels))
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.Title
		p.X.Label.Text = pn.XLabel
		p.Y.Label.Text = pn.YLabel
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = groupedTicks{plot.LogTicks{Prec: -1}}
		p.Y.Tick.Marker = groupedTicks{plot.DefaultTicks{}}
		p.Y.Min = 0
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		ymax := 0.0
		xmin, xmax := math.Inf(1), math.Inf(-1)
		for j, s := range pn.Series {
			pts := make(plotter.XYs, len(s.X))
			for k := range s.X {
				pts[k].X, pts[k].Y = s.X[k], s.Y[k]
				ymax = max(ymax, s.Y[k])
				xmin, xmax = min(xmin, s.X[k]), max(xmax, s.X[k])
			}
			l, sc, err := plotter.NewLinePoints(pts)
			if err != nil {
				return nil, fmt.Errorf("panel %q: %w", pn.Title, err)
			}
			l.Color, sc.Color = plotutil.Color(j), plotutil.Color(j)
			sc.Shape = plotutil.Shape(j)
			p.Add(l, sc)
			if s.Label != "" {
				p.Legend.Add(s.Label, l, sc)
			}
		}
		// Room above the highest point; a log axis needs a positive range.
		p.Y.Max = ymax * 1.2
		if xmin == xmax {
			xmin, xmax = xmin/10, xmax*10
		}
		p.X.Min, p.X.Max = xmin/1.5, xmax*1.5
		grid[i/cols][i%cols] = p
	}
	w, h := vg.Length(cols)*5*vg.Inch, vg.Length(rows)*3.6*vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// groupedTicks labels another ticker's major ticks as the tables write
// numbers: 10,000, 2.5.
type groupedTicks struct{ plot.Ticker }

func (g groupedTicks) Ticks(min, max float64) []plot.Tick {
	ts := g.Ticker.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = num(ts[i].Value)
		}
	}
	return ts
}
