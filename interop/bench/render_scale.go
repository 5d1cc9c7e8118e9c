package bench

import (
	"fmt"
	"strings"
)

// Panel is one scaling family in the plot.
type Panel struct {
	Title  string
	XLabel string
	YLabel string
	Series []PanelSeries
}

// PanelSeries is one line of a panel.
type PanelSeries struct {
	Label string
	X, Y  []float64
}

// scaleLine is one family's line in the scaling summary.
type scaleLine struct {
	spec    ScaleSpec
	cells   string // sizes, cost smallest → largest, growth
	verdict string
}

// cost is a group's per-request figure for spec, converted for display,
// and its label.
func cost(spec ScaleSpec, g *Group) (float64, bool) {
	unit := spec.Cost
	if unit == "" {
		unit = "ns/op"
	}
	s := g.Stat(unit)
	if s == nil {
		return 0, false
	}
	v := s.Median()
	if unit == "ns/op" {
		v /= 1000
	}
	return v, true
}

func costLabel(spec ScaleSpec) string {
	if spec.Cost == "" || spec.Cost == "ns/op" {
		return "µs per op"
	}
	return spec.Cost
}

// scales writes the current section's scaling families.
func (r *renderer) scales(m *Manifest) {
	var gs []*Group
	if m != nil {
		for _, st := range m.Steps {
			if strings.HasPrefix(st.Name, "scale") {
				gs = append(gs, r.goBench(m, st.Name)...)
			}
		}
	}
	for _, spec := range Scales {
		if spec.Section != r.current {
			continue
		}
		target := "written down, not judged"
		if spec.Judged {
			target = fmt.Sprintf("largest size ≤ %.1f× the smallest's cost", MaxGrowth)
		}
		what := "scaling: " + spec.What
		r.printf("### Scaling: %s (Benchmark%s)\n\n", spec.What, spec.Base)
		ss, err := Scaling(gs, spec.Base, spec.SizeKey)
		if err != nil {
			r.errorf("%v", err)
			return
		}
		if ss == nil {
			if m == nil {
				r.printf("Not measured.\n\n")
			} else {
				r.printf("Not measured: the run of %s had no Benchmark%s results (run `scripts/bench -only %s` once the benchmark exists).\n\n", dateOf(m), spec.Base, r.current)
			}
			r.notMeasured(what, target)
			r.scaleLines = append(r.scaleLines, scaleLine{spec: spec, cells: "not measured | run `scripts/bench -only " + r.current + "` | " + target, verdict: ""})
			continue
		}
		// The other metrics; the cost's own unit is its column already.
		costUnit := spec.Cost
		if costUnit == "" {
			costUnit = "ns/op"
		}
		var units []string
		for _, s := range ss.Series {
			for _, g := range s.Groups {
				for _, u := range g.Units {
					if u != costUnit && !contains(units, u) {
						units = append(units, u)
					}
				}
			}
		}
		multi := len(ss.Series) > 1 || ss.Series[0].Label != ""
		if multi {
			for _, s := range ss.Series {
				if s.Label == "" {
					s.Label = spec.Main
					if s.Label == "" {
						s.Label = spec.Base
					}
				}
			}
		}
		head := []string{spec.SizeKey}
		if multi {
			head = append(head, "series")
		}
		head = append(head, costLabel(spec), "cost / smallest size's")
		head = append(head, units...)
		r.printf("| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---:|", len(head)))
		panel := Panel{Title: spec.What, XLabel: spec.SizeKey + " (log scale)", YLabel: costLabel(spec)}
		var growths []string
		ok := true
		sizesMeasured := 0
		for _, s := range ss.Series {
			ps := PanelSeries{Label: s.Label}
			var first float64
			for i, g := range s.Groups {
				c, has := cost(spec, g)
				if !has {
					r.errorf("Benchmark%s: %s has no %s", spec.Base, g.Name, costLabel(spec))
					return
				}
				if i == 0 {
					first = c
				}
				ps.X, ps.Y = append(ps.X, s.Sizes[i]), append(ps.Y, c)
				row := []string{num(s.Sizes[i])}
				if multi {
					row = append(row, s.Label)
				}
				row = append(row, num(c), ratio(c/first))
				for _, u := range units {
					row = append(row, statCell(g.Stat(u)))
				}
				r.printf("| %s |\n", strings.Join(row, " | "))
			}
			sizesMeasured = max(sizesMeasured, len(ps.Y))
			growth := ps.Y[len(ps.Y)-1] / first
			label := ""
			if multi {
				label = s.Label + ": "
			}
			growths = append(growths, fmt.Sprintf("%s%s → %s (%s)", label, num(first), num(ps.Y[len(ps.Y)-1]), ratio(growth)))
			ok = ok && growth <= MaxGrowth
			panel.Series = append(panel.Series, ps)
		}
		r.panels = append(r.panels, panel)
		sizes := num(ss.Series[0].Sizes[0])
		if n := len(ss.Series[0].Sizes); n > 1 {
			sizes += "–" + num(ss.Series[0].Sizes[n-1])
		}
		v := ""
		r.printf("\nSizes %s; %s from the smallest to the largest size: %s. ", sizes, costLabel(spec), strings.Join(growths, "; "))
		switch {
		case sizesMeasured < 2:
			r.printf("One size only, so nothing to compare (the large sizes run with KEYLESS_BENCH_LARGE=1).\n\n")
		case spec.Judged:
			v = verdict(ok)
			r.printf("Bound: at most %.1f×: %s.\n\n", MaxGrowth, v)
		default:
			r.printf("Written down, not judged.\n\n")
		}
		r.row(what, strings.Join(growths, "; ")+" "+costLabel(spec)+", "+spec.SizeKey+" "+sizes, target, v)
		r.scaleLines = append(r.scaleLines, scaleLine{spec: spec, cells: sizes + " | " + strings.Join(growths, "; ") + " | " + target, verdict: v})
	}
}

// scalingSummary is the Scaling section: every family's growth, and the plot.
func (r *renderer) scalingSummary() string {
	var b strings.Builder
	b.WriteString("## Scaling\n\n")
	b.WriteString("How the per-request cost grows with the size of the state, for each scaling benchmark (details in its section). " +
		"Where a constant or logarithmic cost is possible, issue 16 bounds the largest size's cost at 1.5 times the smallest's. " +
		"The large sizes run only with KEYLESS_BENCH_LARGE=1; each section says whether they were included.\n\n")
	b.WriteString("| what | sizes | per-request cost, smallest → largest size (growth) | bound | result | section |\n|---|---|---|---|---|---|\n")
	for _, l := range r.scaleLines {
		fmt.Fprintf(&b, "| %s (Benchmark%s, %s) | %s | %s | [%s](#%s) |\n", l.spec.What, l.spec.Base, costLabel(l.spec), l.cells, l.verdict, l.spec.Section, l.spec.Section)
	}
	b.WriteString("\n")
	if len(r.panels) > 0 {
		fmt.Fprintf(&b, "![Per-request cost against size, one panel per scaling benchmark, size on a log scale](%s/%s)\n\n", r.relDir, PlotFile)
		fmt.Fprintf(&b, "The plot (%s/%s) is drawn by scripts/bench from the same raw results as the tables.\n\n", r.relDir, PlotFile)
	} else {
		b.WriteString("No scaling benchmark has results yet, so there is no plot.\n\n")
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
