package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "results", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseGoBench: configuration lines and go test's chatter are left
// out, the -GOMAXPROCS suffix goes, key=value parts are split, every
// unit keeps the name it was printed with, and -count runs group by name.
func TestParseGoBench(t *testing.T) {
	bs, err := ParseGoBench("emulator.loopback.txt", readFixture(t, "emulator.loopback.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 4 {
		t.Fatalf("%d results, want 4", len(bs))
	}
	b := bs[0]
	if b.Name != "CreateSessionLoopback/same-certificate" || b.Base != "CreateSessionLoopback" || b.Iters != 21000 || b.Line != 7 {
		t.Errorf("first result %+v", b)
	}
	if diff := cmp.Diff([]string{"ns/op", "sessions/s", "B/op", "allocs/op"}, b.Units); diff != "" {
		t.Errorf("units (-want +got):\n%s", diff)
	}
	if b.Metrics["ns/op"] != 140000 || b.Metrics["sessions/s"] != 7143 {
		t.Errorf("metrics %v", b.Metrics)
	}
	gs := GroupBenches(bs)
	if len(gs) != 2 {
		t.Fatalf("%d groups, want 2", len(gs))
	}
	s := gs[0].Stat("sessions/s")
	if diff := cmp.Diff([]float64{7143, 6667, 7407}, s.Values); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	if s.Median() != 7143 || s.Min() != 6667 || s.Max() != 7407 {
		t.Errorf("median %v min %v max %v", s.Median(), s.Min(), s.Max())
	}

	ca, err := ParseGoBench("ca.cabench.txt", readFixture(t, "ca.cabench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Part{{"op", "sign"}, {"server", "keyless"}, {"clients", "1"}}
	if diff := cmp.Diff(want, ca[0].Parts); diff != "" {
		t.Errorf("cabench parts (-want +got):\n%s", diff)
	}
	if v, _ := ca[0].Get("server"); v != "keyless" || ca[0].Metrics["cpu-us/cert"] != 420 || ca[0].Metrics["rss-MB"] != 14.2 {
		t.Errorf("cabench line %+v", ca[0])
	}
}

// TestParseGoBenchRefuses: a result line that does not parse is an error
// naming its file and line, not a silently missing figure.
func TestParseGoBenchRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"no unit":       "BenchmarkX 10 100\n",
		"no iterations": "BenchmarkX ten 100 ns/op\n",
		"bad value":     "pkg: p\nBenchmarkX 10 1e ns/op\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseGoBench("f.txt", []byte(in))
			if err == nil || !strings.Contains(err.Error(), "f.txt:") {
				t.Errorf("got %v, want an error naming f.txt:LINE", err)
			}
		})
	}
}

func TestScaling(t *testing.T) {
	in := "BenchmarkScaleCASign/op=sign/certs=100000-2 1 30 ns/op\n" +
		"BenchmarkScaleCASign/op=sign/certs=10000-2 1 10 ns/op\n" +
		"BenchmarkScaleCASign/op=renew/certs=10000-2 1 20 ns/op\n" +
		"BenchmarkOther/n=1 1 5 ns/op\n"
	bs, err := ParseGoBench("s.txt", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	gs := GroupBenches(bs)
	for _, key := range []string{"certs", ""} { // named, and found
		ss, err := Scaling(gs, "ScaleCASign", key)
		if err != nil {
			t.Fatal(err)
		}
		if ss.SizeKey != "certs" || len(ss.Series) != 2 {
			t.Fatalf("key %q: %+v", key, ss)
		}
		sign := ss.Series[0]
		if sign.Label != "op=sign" || !cmp.Equal(sign.Sizes, []float64{10000, 100000}) || sign.Groups[0].Stat("ns/op").Median() != 10 {
			t.Errorf("key %q: sign series %+v", key, sign)
		}
	}
	if ss, err := Scaling(gs, "ScaleMissing", "n"); ss != nil || err != nil {
		t.Errorf("a benchmark with no results: %v, %v; want nil, nil", ss, err)
	}
	if _, err := Scaling(gs, "ScaleCASign", "jobs"); err == nil || !strings.Contains(err.Error(), "no jobs=N part") {
		t.Errorf("a missing size key: %v", err)
	}
	bad, _ := ParseGoBench("b.txt", []byte("BenchmarkScaleX/size=big 1 1 ns/op\n"))
	if _, err := Scaling(GroupBenches(bad), "ScaleX", "size"); err == nil || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("a size that is not a number: %v", err)
	}
	if _, err := Scaling(GroupBenches(bad), "ScaleX", ""); err == nil || !strings.Contains(err.Error(), "no sub-benchmark key=N") {
		t.Errorf("no numeric key to find: %v", err)
	}
}

func TestParseHyperfine(t *testing.T) {
	h, err := ParseHyperfine("cp.hyperfine.json", readFixture(t, "cp.hyperfine.json"))
	if err != nil {
		t.Fatal(err)
	}
	hit := h.Get("keyless-hit")
	if hit == nil || hit.Median != 0.0030 || hit.Mean != 0.0031 || len(hit.Times) != 3 {
		t.Errorf("keyless-hit %+v", hit)
	}
	if h.Get("nothing") != nil {
		t.Error("Get of a missing command is not nil")
	}
	for _, in := range []string{`{"results": []}`, `{`} {
		if _, err := ParseHyperfine("h.json", []byte(in)); err == nil || !strings.Contains(err.Error(), "h.json") {
			t.Errorf("%s: %v", in, err)
		}
	}
}

func TestParseTimeV(t *testing.T) {
	names, runs, err := ParseTimeV("cp.time.txt", readFixture(t, "cp.time.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 7 || names[0] != "keyless-hit" || names[6] != "true" {
		t.Errorf("names %v", names)
	}
	want := []TimeV{{MaxRSSKB: 10200, MinorFaults: 640}, {MaxRSSKB: 10300, MinorFaults: 650}}
	if diff := cmp.Diff(want, runs["keyless-hit"]); diff != "" {
		t.Errorf("keyless-hit (-want +got):\n%s", diff)
	}
	if _, _, err := ParseTimeV("t.txt", []byte("\tCommand being timed: \"x\"\n")); err == nil || !strings.Contains(err.Error(), "before any \"command: NAME\"") {
		t.Errorf("a run without a name: %v", err)
	}
	if _, _, err := ParseTimeV("t.txt", []byte("command: x\n\tCommand being timed: \"x\"\n\tMaximum resident set size (kbytes): lots\n")); err == nil || !strings.Contains(err.Error(), "t.txt:3") {
		t.Errorf("a figure that is not a number: %v", err)
	}
}

func TestParseInitTrace(t *testing.T) {
	inits, runs, err := ParseInitTrace("cp.inittrace.txt", readFixture(t, "cp.inittrace.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 || len(inits) != 4 {
		t.Fatalf("%d runs, %d packages", runs, len(inits))
	}
	if in := inits[0]; in.Package != "go.yaml.in/yaml/v3" || in.ClockMS.Median() != 0.11 || in.Allocs.Median() != 276 {
		t.Errorf("costliest %+v", in)
	}
	if _, _, err := ParseInitTrace("i.txt", []byte("init x @1 ms, lots ms clock, 0 bytes, 0 allocs\n")); err == nil || !strings.Contains(err.Error(), "i.txt:1") {
		t.Errorf("a malformed line: %v", err)
	}
}

func TestParseVendbench(t *testing.T) {
	v, err := ParseVendbench("agent.vendbench.json", readFixture(t, "agent.vendbench.json"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Agent.Throughput.PerSecond != 27740 || v.Helper.Latency.FromSchedule.P999 != 4605 || v.Serve.IdleMemory.RSS != 13.1 || v.Rate != 5000 {
		t.Errorf("%+v", v)
	}
	if _, err := ParseVendbench("v.json", []byte(`{"keyless_agent": {}}`)); err == nil || !strings.Contains(err.Error(), "want keyless_agent, keyless_serve and aws_helper_serve") {
		t.Errorf("a side missing: %v", err)
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{
		6524.3: "6,524", 15.27: "15.3", 0.02341: "0.0234", 1: "1", 100: "100", 1234567: "1,234,567", 99.95: "100", 2.5: "2.5", -1500: "-1,500",
	} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

func FuzzParseGoBench(f *testing.F) {
	f.Add([]byte("pkg: p\nBenchmarkX/a=1/b-2 10 100 ns/op 5 x/s\n"))
	f.Add([]byte("BenchmarkX 1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		bs, err := ParseGoBench("f", in)
		if err != nil {
			return
		}
		for _, g := range GroupBenches(bs) {
			if strings.HasPrefix(g.Name, "Benchmark") {
				t.Fatalf("name %q keeps the Benchmark prefix", g.Name)
			}
			for _, u := range g.Units {
				g.Stat(u).Median()
			}
		}
	})
}

func FuzzParseTimeV(f *testing.F) {
	f.Add([]byte("command: a\n\tCommand being timed: \"a\"\n\tMaximum resident set size (kbytes): 5\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		names, runs, err := ParseTimeV("f", in)
		if err != nil {
			return
		}
		for _, n := range names {
			if _, ok := runs[n]; !ok {
				t.Fatalf("name %q has no runs entry", n)
			}
		}
	})
}

func FuzzParseInitTrace(f *testing.F) {
	f.Add([]byte("run: 1\ninit a @1 ms, 2 ms clock, 3 bytes, 4 allocs\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		inits, _, err := ParseInitTrace("f", in)
		if err != nil {
			return
		}
		for i := 1; i < len(inits); i++ {
			if inits[i].ClockMS.Median() > inits[i-1].ClockMS.Median() {
				t.Fatal("not sorted by cost")
			}
		}
	})
}
