package metrics_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/metrics"
)

func text(r *metrics.Registry) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

// TestWriteText checks the exact exposition: families sorted by name,
// HELP escaped, label pairs sorted by name, series sorted by label
// values, label values escaped, cumulative buckets with le last, and
// numbers as client_golang writes them.
func TestWriteText(t *testing.T) {
	r := metrics.NewRegistry()
	vends := r.Counter("keyless_vends_total", "Requests by role and decision.", "role", "decision")
	hits := r.Counter("keyless_cache_hits_total", "Answers from the cache.")
	notAfter := r.Gauge("keyless_not_after_seconds", "When the certificate expires.\nIn Unix seconds, C:\\ style.")
	latency := r.Histogram("keyless_session_seconds", "CreateSession latency.", []float64{0.1, 0.5, 1}, "role")
	r.Counter("keyless_unused_total", "Never touched, so left out.", "reason")

	vends.With("arn:role/b", "granted").Inc()
	vends.With("arn:role/a", "granted").Add(2)
	vends.With("arn:role/a", "denied").Inc()
	vends.With(`we"ird\role`+"\n", "error").Inc()
	hits.With().Add(1234567)
	notAfter.With().Set(1.7e9)
	for _, v := range []float64{0.05, 0.1, 0.3, 2} {
		latency.With("r").Observe(v)
	}
	latency.With("q").Observe(0.75)

	want := `# HELP keyless_cache_hits_total Answers from the cache.
# TYPE keyless_cache_hits_total counter
keyless_cache_hits_total 1.234567e+06
# HELP keyless_not_after_seconds When the certificate expires.\nIn Unix seconds, C:\\ style.
# TYPE keyless_not_after_seconds gauge
keyless_not_after_seconds 1.7e+09
# HELP keyless_session_seconds CreateSession latency.
# TYPE keyless_session_seconds histogram
keyless_session_seconds_bucket{role="q",le="0.1"} 0
keyless_session_seconds_bucket{role="q",le="0.5"} 0
keyless_session_seconds_bucket{role="q",le="1"} 1
keyless_session_seconds_bucket{role="q",le="+Inf"} 1
keyless_session_seconds_sum{role="q"} 0.75
keyless_session_seconds_count{role="q"} 1
keyless_session_seconds_bucket{role="r",le="0.1"} 2
keyless_session_seconds_bucket{role="r",le="0.5"} 3
keyless_session_seconds_bucket{role="r",le="1"} 3
keyless_session_seconds_bucket{role="r",le="+Inf"} 4
keyless_session_seconds_sum{role="r"} 2.45
keyless_session_seconds_count{role="r"} 4
# HELP keyless_vends_total Requests by role and decision.
# TYPE keyless_vends_total counter
keyless_vends_total{decision="denied",role="arn:role/a"} 1
keyless_vends_total{decision="error",role="we\"ird\\role\n"} 1
keyless_vends_total{decision="granted",role="arn:role/a"} 2
keyless_vends_total{decision="granted",role="arn:role/b"} 1
`
	if diff := cmp.Diff(want, text(r)); diff != "" {
		t.Errorf("WriteText (-want +got):\n%s", diff)
	}
}

// TestUnlabelledSeriesStartAtZero: a metric without labels shows from the
// start; one with labels only once a series exists.
func TestUnlabelledSeriesStartAtZero(t *testing.T) {
	r := metrics.NewRegistry()
	r.Counter("a_total", "A.")
	r.Gauge("b", "B.", "x")
	r.Histogram("c_seconds", "C.", []float64{1, math.Inf(1)})
	want := `# HELP a_total A.
# TYPE a_total counter
a_total 0
# HELP c_seconds C.
# TYPE c_seconds histogram
c_seconds_bucket{le="1"} 0
c_seconds_bucket{le="+Inf"} 0
c_seconds_sum 0
c_seconds_count 0
`
	if diff := cmp.Diff(want, text(r)); diff != "" {
		t.Errorf("WriteText (-want +got):\n%s", diff)
	}
}

func TestGauge(t *testing.T) {
	r := metrics.NewRegistry()
	g := r.Gauge("g", "G.", "k")
	g.With("x").Set(3)
	g.With("x").Dec()
	g.With("x").Add(-0.5)
	g.With("y").Inc()
	g.With("z").Set(math.NaN())
	g.With("w").Set(math.Inf(-1))
	want := "# HELP g G.\n# TYPE g gauge\n" +
		"g{k=\"w\"} -Inf\ng{k=\"x\"} 1.5\ng{k=\"y\"} 1\ng{k=\"z\"} NaN\n"
	if diff := cmp.Diff(want, text(r)); diff != "" {
		t.Errorf("WriteText (-want +got):\n%s", diff)
	}
}

func TestDefaultBuckets(t *testing.T) {
	r := metrics.NewRegistry()
	r.Histogram("h_seconds", "H.", nil).With().Observe(0.02)
	out := text(r)
	for _, line := range []string{`h_seconds_bucket{le="0.005"} 0`, `h_seconds_bucket{le="0.025"} 1`, `h_seconds_bucket{le="10"} 1`, `h_seconds_bucket{le="+Inf"} 1`} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("no %q in\n%s", line, out)
		}
	}
}

// TestMisuse: bad names, duplicates, wrong label counts and negative
// counter steps are programming errors and panic.
func TestMisuse(t *testing.T) {
	for name, f := range map[string]func(r *metrics.Registry){
		"metric name with a dash":  func(r *metrics.Registry) { r.Counter("a-b", "") },
		"metric name with a digit": func(r *metrics.Registry) { r.Counter("1a", "") },
		"empty metric name":        func(r *metrics.Registry) { r.Gauge("", "") },
		"label with a colon":       func(r *metrics.Registry) { r.Counter("a", "", "b:c") },
		"reserved label":           func(r *metrics.Registry) { r.Counter("a", "", "__b") },
		"le on a histogram":        func(r *metrics.Registry) { r.Histogram("a", "", nil, "le") },
		"label twice":              func(r *metrics.Registry) { r.Counter("a", "", "x", "x") },
		"registered twice":         func(r *metrics.Registry) { r.Counter("a", ""); r.Gauge("a", "") },
		"buckets not increasing":   func(r *metrics.Registry) { r.Histogram("a", "", []float64{1, 1}) },
		"too few values":           func(r *metrics.Registry) { r.Counter("a", "", "x", "y").With("1") },
		"too many values":          func(r *metrics.Registry) { r.Counter("a", "").With("1") },
		"counter going down":       func(r *metrics.Registry) { r.Counter("a", "").With().Add(-1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(metrics.NewRegistry())
		})
	}
	// A name with a colon is fine for a metric (recording rules use it).
	metrics.NewRegistry().Counter("job:a_total", "")
}

// TestConcurrentUse: updates from many goroutines while another writes
// the text all count (run with -race).
func TestConcurrentUse(t *testing.T) {
	r := metrics.NewRegistry()
	c := r.Counter("c_total", "C.", "k")
	g := r.Gauge("g", "G.")
	h := r.Histogram("h", "H.", []float64{1}, "k")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := fmt.Sprint(i % 4)
			for range 1000 {
				c.With(k).Inc()
				g.With().Inc()
				h.With(k).Observe(0.5)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			text(r)
		}
	}()
	wg.Wait()
	<-done
	out := text(r)
	for _, line := range []string{`c_total{k="0"} 4000`, `c_total{k="3"} 4000`, `g 16000`, `h_count{k="2"} 4000`, `h_bucket{k="1",le="1"} 4000`, `h_sum{k="1"} 2000`} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("no %q in\n%s", line, out)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("gone") }

func TestWriteToReportsErrors(t *testing.T) {
	r := metrics.NewRegistry()
	r.Counter("a_total", "A.")
	var b strings.Builder
	n, err := r.WriteTo(&b)
	if err != nil || n != int64(b.Len()) || n == 0 {
		t.Errorf("WriteTo = %d, %v; wrote %d bytes", n, err, b.Len())
	}
	if _, err := r.WriteTo(failingWriter{}); err == nil {
		t.Error("WriteTo to a failing writer: no error")
	}
	r.WriteText(failingWriter{}) // drops the error
	if metrics.ContentType != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("ContentType %q", metrics.ContentType)
	}
}
