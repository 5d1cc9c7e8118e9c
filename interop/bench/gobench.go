package bench

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// Bench is one result line of Go's benchmark format.
type Bench struct {
	// Name is the full name without "Benchmark" and without the
	// -GOMAXPROCS suffix: CreateSessionLoopback/same-certificate.
	Name string
	// Base is the name's first part: CreateSessionLoopback.
	Base string
	// Parts are the sub-benchmark parts after Base, in order: a part
	// key=value has Key and Value, any other part only Value.
	Parts []Part
	Iters int
	// Metrics by unit as printed (ns/op, sessions/s, p99-ms, ...).
	Metrics map[string]float64
	// Units in the order printed.
	Units []string
	Line  int // in its file, from 1
}

// Part is one /-separated part of a sub-benchmark name.
type Part struct{ Key, Value string }

// Get returns the value of the part named key, and whether there is one.
func (b Bench) Get(key string) (string, bool) {
	for _, p := range b.Parts {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// ParseGoBench reads Go's benchmark format: configuration lines, result
// lines and anything else (PASS, ok, logs), which it ignores. A result
// line that does not parse is an error naming its line.
func ParseGoBench(file string, data []byte) ([]Bench, error) {
	r := benchfmt.NewReader(bytes.NewReader(data), file)
	var out []Bench
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, rec
		case *benchfmt.Result:
			_, line := rec.Pos()
			base, parts := rec.Name.Parts()
			b := Bench{Base: string(base), Iters: rec.Iters, Metrics: map[string]float64{}, Line: line}
			name := []string{b.Base}
			for _, p := range parts {
				s := string(p)
				if strings.HasPrefix(s, "-") { // -GOMAXPROCS
					continue
				}
				s = strings.TrimPrefix(s, "/")
				name = append(name, s)
				if k, v, ok := strings.Cut(s, "="); ok {
					b.Parts = append(b.Parts, Part{Key: k, Value: v})
				} else {
					b.Parts = append(b.Parts, Part{Value: s})
				}
			}
			b.Name = strings.Join(name, "/")
			for _, v := range rec.Values {
				unit, val := v.Unit, v.Value
				if v.OrigUnit != "" {
					unit, val = v.OrigUnit, v.OrigValue
				}
				if _, dup := b.Metrics[unit]; !dup {
					b.Units = append(b.Units, unit)
				}
				b.Metrics[unit] = val
			}
			out = append(out, b)
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Stat is one metric of one benchmark over its runs (-count).
type Stat struct {
	Values []float64 // in the order run
}

// Median is the middle value (the mean of the two middle ones for an
// even count).
func (s Stat) Median() float64 {
	if len(s.Values) == 0 {
		return 0
	}
	v := slices.Clone(s.Values)
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// Min and Max are the extremes.
func (s Stat) Min() float64 { return slices.Min(s.Values) }

// Max is the largest value.
func (s Stat) Max() float64 { return slices.Max(s.Values) }

// Group is one benchmark (by full name) over its runs.
type Group struct {
	Name    string
	Base    string
	Parts   []Part
	Units   []string
	Metrics map[string]*Stat
}

// Get returns the value of the part named key.
func (g *Group) Get(key string) (string, bool) { return Bench{Parts: g.Parts}.Get(key) }

// Stat returns the metric's runs, or nil.
func (g *Group) Stat(unit string) *Stat { return g.Metrics[unit] }

// GroupBenches gathers results by full name, in the order first seen.
func GroupBenches(bs []Bench) []*Group {
	var out []*Group
	by := map[string]*Group{}
	for _, b := range bs {
		g := by[b.Name]
		if g == nil {
			g = &Group{Name: b.Name, Base: b.Base, Parts: b.Parts, Metrics: map[string]*Stat{}}
			by[b.Name] = g
			out = append(out, g)
		}
		for _, u := range b.Units {
			s := g.Metrics[u]
			if s == nil {
				s = &Stat{}
				g.Metrics[u] = s
				g.Units = append(g.Units, u)
			}
			s.Values = append(s.Values, b.Metrics[u])
		}
	}
	return out
}

// Find returns the group named name, or nil.
func Find(gs []*Group, name string) *Group {
	for _, g := range gs {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// SizeSeries is a scaling benchmark's results: the groups of one base
// name, split into series by every part except the size key, each
// ordered by size.
type SizeSeries struct {
	Base    string
	SizeKey string // certs, anchors, revocations, jobs
	Series  []*Series
}

// Series is one line of a scaling plot: the same benchmark at each size.
type Series struct {
	Label  string // the other parts (op=sign/server=keyless), or ""
	Sizes  []float64
	Groups []*Group
}

// Scaling splits the groups of base into series over sizeKey (the part
// key=N whose N is numeric), by their parts other than key=N ones. With sizeKey "" it takes the first key whose
// values are all numbers. It returns nil when base has no results.
func Scaling(gs []*Group, base, sizeKey string) (*SizeSeries, error) {
	var mine []*Group
	for _, g := range gs {
		if g.Base == base {
			mine = append(mine, g)
		}
	}
	if len(mine) == 0 {
		return nil, nil
	}
	if sizeKey == "" {
		for _, p := range mine[0].Parts {
			if p.Key == "" {
				continue
			}
			numeric := true
			for _, g := range mine {
				v, ok := g.Get(p.Key)
				if _, err := strconv.ParseFloat(v, 64); !ok || err != nil {
					numeric = false
				}
			}
			if numeric {
				sizeKey = p.Key
				break
			}
		}
		if sizeKey == "" {
			return nil, fmt.Errorf("scaling benchmark Benchmark%s: no sub-benchmark key=N names a size", base)
		}
	}
	ss := &SizeSeries{Base: base, SizeKey: sizeKey}
	bySeries := map[string]*Series{}
	for _, g := range mine {
		v, ok := g.Get(sizeKey)
		if !ok {
			return nil, fmt.Errorf("scaling benchmark Benchmark%s: %s has no %s=N part", base, g.Name, sizeKey)
		}
		size, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("scaling benchmark Benchmark%s: %s: %s=%s is not a number", base, g.Name, sizeKey, v)
		}
		// The series is named by the parts that are not sizes: a part
		// key=N that grows with the size (anchors=N/roles=N) names no
		// series of its own.
		var label []string
		for _, p := range g.Parts {
			if _, err := strconv.ParseFloat(p.Value, 64); p.Key == sizeKey || p.Key != "" && err == nil {
				continue
			}
			if p.Key == "" {
				label = append(label, p.Value)
			} else {
				label = append(label, p.Key+"="+p.Value)
			}
		}
		l := strings.Join(label, "/")
		s := bySeries[l]
		if s == nil {
			s = &Series{Label: l}
			bySeries[l] = s
			ss.Series = append(ss.Series, s)
		}
		s.Sizes = append(s.Sizes, size)
		s.Groups = append(s.Groups, g)
	}
	for _, s := range ss.Series {
		idx := make([]int, len(s.Sizes))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return s.Sizes[idx[a]] < s.Sizes[idx[b]] })
		sizes, groups := make([]float64, len(idx)), make([]*Group, len(idx))
		for i, j := range idx {
			sizes[i], groups[i] = s.Sizes[j], s.Groups[j]
		}
		s.Sizes, s.Groups = sizes, groups
	}
	return ss, nil
}
