// Package metrics is a small registry of counters, gauges and histograms
// with labels, written in Prometheus's text exposition format 0.0.4. It
// stands in for client_golang, which would double the agent's binary and
// its start-up, for the dozen series the agent exports.
//
// It is domain code: it serves nothing; internal/agentapi serves what
// WriteText writes. Any keyless package may import it. Everything in it is
// safe for concurrent use. Registering a bad or duplicate name, or calling
// With with the wrong number of values, is a programming error and panics,
// as regexp.MustCompile does.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ContentType is the Content-Type of what WriteText writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// DefBuckets are the default histogram buckets, in seconds: from 5ms to
// 10s, the span of a CreateSession call (client_golang's defaults).
var DefBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Registry holds metric families by name.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: make(map[string]*family)} }

type kind string

const (
	counterKind   kind = "counter"
	gaugeKind     kind = "gauge"
	histogramKind kind = "histogram"
)

// family is one metric name and its series, keyed by their label values.
type family struct {
	name, help string
	kind       kind
	labels     []string
	order      []int     // label indexes sorted by name, for output
	buckets    []float64 // histograms: upper bounds, without +Inf
	mu         sync.RWMutex
	series     map[string]*series
}

type series struct {
	values []string
	bits   atomic.Uint64 // counter and gauge: math.Float64bits of the value
	hmu    sync.Mutex    // histogram
	counts []uint64      // per bucket, not cumulative; the last is +Inf
	sum    float64
}

func (r *Registry) register(name, help string, k kind, buckets []float64, labels []string) *family {
	if !validName(name, true) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	for i, l := range labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") || k == histogramKind && l == "le" {
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", name, l))
		}
		if slices.Contains(labels[:i], l) {
			panic(fmt.Sprintf("metrics: %s: label %q twice", name, l))
		}
	}
	f := &family{name: name, help: help, kind: k, labels: slices.Clone(labels), buckets: buckets, series: make(map[string]*series)}
	f.order = make([]int, len(labels))
	for i := range f.order {
		f.order[i] = i
	}
	slices.SortFunc(f.order, func(a, b int) int { return strings.Compare(labels[a], labels[b]) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[name]; dup {
		panic(fmt.Sprintf("metrics: %s registered twice", name))
	}
	r.families[name] = f
	if len(labels) == 0 {
		f.with(nil) // a series without labels shows from the start, at 0
	}
	return f
}

// validName: [a-zA-Z_:][a-zA-Z0-9_:]* for metrics, without ':' for labels.
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' || colon && c == ':'
		if !ok {
			return false
		}
	}
	return true
}

func (f *family) with(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s has labels %q; With got %d values", f.name, f.labels, len(values)))
	}
	key := strings.Join(values, "\xff")
	f.mu.RLock()
	s := f.series[key]
	f.mu.RUnlock()
	if s != nil {
		return s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s = f.series[key]; s == nil {
		s = &series{values: slices.Clone(values)}
		if f.kind == histogramKind {
			s.counts = make([]uint64, len(f.buckets)+1)
		}
		f.series[key] = s
	}
	return s
}

// Counter registers a counter: a value that only goes up.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{r.register(name, help, counterKind, nil, labels)}
}

// Gauge registers a gauge: a value that goes up and down.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{r.register(name, help, gaugeKind, nil, labels)}
}

// Histogram registers a histogram with the given upper bounds, increasing
// (nil means DefBuckets; +Inf is implied).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if buckets == nil {
		buckets = DefBuckets
	}
	buckets = slices.Clone(buckets)
	if n := len(buckets); n > 0 && math.IsInf(buckets[n-1], 1) {
		buckets = buckets[:n-1]
	}
	for i, b := range buckets {
		if math.IsNaN(b) || i > 0 && b <= buckets[i-1] {
			panic(fmt.Sprintf("metrics: %s: buckets %v do not increase", name, buckets))
		}
	}
	return &HistogramVec{r.register(name, help, histogramKind, buckets, labels)}
}

// CounterVec is a counter's series, one per set of label values.
type CounterVec struct{ f *family }

// With returns the counter for these label values, in the order the
// labels were registered.
func (v *CounterVec) With(values ...string) *Counter { return &Counter{v.f.with(values)} }

// Counter is one series of a counter.
type Counter struct{ s *series }

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Add adds n, which must not be negative.
func (c *Counter) Add(n float64) {
	if n < 0 {
		panic("metrics: a counter cannot go down")
	}
	c.s.add(n)
}

func (s *series) add(n float64) {
	for {
		old := s.bits.Load()
		if s.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+n)) {
			return
		}
	}
}

// GaugeVec is a gauge's series, one per set of label values.
type GaugeVec struct{ f *family }

// With returns the gauge for these label values.
func (v *GaugeVec) With(values ...string) *Gauge { return &Gauge{v.f.with(values)} }

// Gauge is one series of a gauge.
type Gauge struct{ s *series }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.s.bits.Store(math.Float64bits(v)) }

// Add adds n (which may be negative).
func (g *Gauge) Add(n float64) { g.s.add(n) }

// Inc adds one.
func (g *Gauge) Inc() { g.s.add(1) }

// Dec takes one away.
func (g *Gauge) Dec() { g.s.add(-1) }

// HistogramVec is a histogram's series, one per set of label values.
type HistogramVec struct{ f *family }

// With returns the histogram for these label values.
func (v *HistogramVec) With(values ...string) *Histogram {
	return &Histogram{s: v.f.with(values), buckets: v.f.buckets}
}

// Histogram is one series of a histogram.
type Histogram struct {
	s       *series
	buckets []float64
}

// Observe counts v (in seconds, for durations) in the first bucket whose
// upper bound is at least v.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.buckets, v)
	h.s.hmu.Lock()
	h.s.counts[i]++
	h.s.sum += v
	h.s.hmu.Unlock()
}

// WriteText writes every family in the text format: families sorted by
// name, each with its HELP and TYPE lines, its series sorted by label
// values, label pairs sorted by name. Families with no series yet are
// left out. Write errors are dropped: the reader went away. It suits
// agentapi.StartMetrics's write function.
func (r *Registry) WriteText(w io.Writer) { _, _ = r.WriteTo(w) }

// WriteTo writes what WriteText does, and says how it went.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	families := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		families = append(families, f)
	}
	r.mu.Unlock()
	slices.SortFunc(families, func(a, b *family) int { return strings.Compare(a.name, b.name) })

	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, f := range families {
		f.write(bw)
	}
	err := bw.Flush()
	return cw.n, err
}

func (f *family) write(w *bufio.Writer) {
	f.mu.RLock()
	all := make([]*series, 0, len(f.series))
	for _, s := range f.series {
		all = append(all, s)
	}
	f.mu.RUnlock()
	if len(all) == 0 {
		return
	}
	slices.SortFunc(all, func(a, b *series) int {
		for _, i := range f.order {
			if c := strings.Compare(a.values[i], b.values[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
	for _, s := range all {
		labels := f.labelText(s.values)
		if f.kind != histogramKind {
			sample(w, f.name, labels, "", math.Float64frombits(s.bits.Load()))
			continue
		}
		s.hmu.Lock()
		counts, sum := slices.Clone(s.counts), s.sum
		s.hmu.Unlock()
		var cum uint64
		for i, n := range counts {
			cum += n
			le := math.Inf(1)
			if i < len(f.buckets) {
				le = f.buckets[i]
			}
			sample(w, f.name+"_bucket", labels, `le="`+formatFloat(le)+`"`, float64(cum))
		}
		sample(w, f.name+"_sum", labels, "", sum)
		sample(w, f.name+"_count", labels, "", float64(cum))
	}
}

// labelText is `a="x",b="y"`, sorted by label name, values escaped.
func (f *family) labelText(values []string) string {
	var b strings.Builder
	for n, i := range f.order {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.labels[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[i]))
		b.WriteByte('"')
	}
	return b.String()
}

func sample(w *bufio.Writer, name, labels, extra string, v float64) {
	w.WriteString(name)
	if labels != "" || extra != "" {
		w.WriteByte('{')
		w.WriteString(labels)
		if labels != "" && extra != "" {
			w.WriteByte(',')
		}
		w.WriteString(extra)
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

// formatFloat writes numbers as client_golang does.
func formatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// The text format escapes backslash and newline in HELP, and also the
// double quote in label values. (By hand: strings.Replacers at package
// level are built at the start of every keyless command.)
func escapeHelp(s string) string { return escape(s, false) }

func escapeLabel(s string) string { return escape(s, true) }

func escape(s string, quote bool) string {
	special := "\\\n"
	if quote {
		special += `"`
	}
	if !strings.ContainsAny(s, special) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '"' && quote:
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
