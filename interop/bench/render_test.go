package bench

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.md from testdata/results")

func renderFixtures(t *testing.T) *Doc {
	t.Helper()
	res, err := ReadResults(filepath.Join("testdata", "results"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Render(res, "benchmarks")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestRenderGolden: the document rendered from the fixtures is
// testdata/golden.md (go test -update rewrites it; read the diff).
func TestRenderGolden(t *testing.T) {
	doc := renderFixtures(t)
	golden := filepath.Join("testdata", "golden.md")
	if *update {
		if err := os.WriteFile(golden, doc.Markdown, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(doc.Markdown)); diff != "" {
		t.Errorf("rendered document (-golden +got):\n%s", diff)
	}
}

// TestRenderSections: every section is in the document, in order, with
// its command and its date or "Not measured".
func TestRenderSections(t *testing.T) {
	md := string(renderFixtures(t).Markdown)
	last := 0
	for _, s := range Sections {
		i := strings.Index(md, "<a id=\""+s.ID+"\"></a>\n\n## "+s.Title+"\n")
		if i < last {
			t.Fatalf("section %s missing or out of order", s.ID)
		}
		last = i
		body := md[i:]
		if next := strings.Index(body[1:], "<a id="); next > 0 {
			body = body[:next+1]
		}
		if !strings.Contains(body, "<!-- doc-test: measurement, run by hand -->\n```sh\nscripts/bench -only "+s.ID+"\n```") {
			t.Errorf("section %s: no scripts/bench -only %s block with its directive", s.ID, s.ID)
		}
		measured := strings.Contains(body, "\nMeasured 2026-11-27 at ")
		notMeasured := strings.Contains(body, "**Not measured**: no results in docs/benchmarks/ (run `scripts/bench -only "+s.ID+"`)")
		if measured == notMeasured {
			t.Errorf("section %s: measured %v, not measured %v: want exactly one", s.ID, measured, notMeasured)
		}
	}
}

// TestVerdicts: the targets judged on the fixtures' figures, both ways.
func TestVerdicts(t *testing.T) {
	doc := renderFixtures(t)
	want := map[string]string{
		"`credential-process`, cache hit":                                 "PASS",     // 3.0 / 2.5 ms = 1.2 ≤ 1.3
		"AWS's helper over a cache hit":                                   "PASS",     // 16 / 3 = 5.3 ≥ 5
		"CA process CPU per certificate, sign":                            "PASS",     // 420 and 440 µs, 0.23× step-ca
		"CA process CPU per certificate, renew":                           "**MISS**", // 480 µs > 450
		"emulator CreateSession, loopback, same certificate":              "PASS",     // median 7,143 ≥ 7,000
		"scaling: CreateSession with N trust anchors, roles and profiles": "**MISS**", // 230 / 140 µs = 1.64 > 1.5
		"scaling: CA sign with N certificates in the store":               "PASS",     // 0.95 / 0.9
		"scaling: ca list --expiring with N revocations":                  "PASS",
		"scaling: CRL generation with N revocations":                      "", // not judged
		"scaling: store restart with N certificates":                      "",
		"`keyless agent`, vends from cache":                               "**MISS**",
		"`keyless agent`, p99 at 5,000 vends/s":                           "**MISS**",
		"`keyless agent`, idle RSS":                                       "PASS",
		"`keyless dev --once`, whole chain":                               "PASS",
		"CA idle RSS":                                                     "PASS",
	}
	got := map[string]string{}
	for _, r := range doc.Rows {
		if _, ok := want[r.What]; ok {
			got[r.What] = r.Verdict
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	if len(doc.Panels) != 5 {
		t.Errorf("%d panels, want 5 (every scaling family with results)", len(doc.Panels))
	}
	if p := doc.Panels[0]; len(p.Series) != 1 || len(p.Series[0].X) != 3 {
		t.Errorf("the emulator's panel: %+v, want one series of 3 sizes (anchors=N/roles=N is one size)", p)
	}
}

// TestJudgeBoundaries: a figure exactly at its target meets it.
func TestJudgeBoundaries(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "results"), dir)
	// The hit at exactly 1.3 times the baseline, the helper exactly 5 times the hit.
	h := `{"results": [
 {"command": "keyless-hit", "median": 0.0026, "times": [0.0026]},
 {"command": "nethttp-baseline", "median": 0.002, "times": [0.002]},
 {"command": "aws-helper", "median": 0.013, "times": [0.013]}]}`
	if err := os.WriteFile(filepath.Join(dir, "cp.hyperfine.json"), []byte(h), 0o644); err != nil {
		t.Fatal(err)
	}
	// keyless's CPU per certificate at exactly 450 µs and a quarter of step-ca's.
	ca := "BenchmarkCAProcess/op=sign/server=keyless/clients=16 1 1 ns/op 450 cpu-us/cert\n" +
		"BenchmarkCAProcess/op=sign/server=step-ca/clients=16 1 1 ns/op 1800 cpu-us/cert\n" +
		"BenchmarkCAProcess/op=renew/server=keyless/clients=16 1 1 ns/op 450 cpu-us/cert\n" +
		"BenchmarkCAProcess/op=renew/server=step-ca/clients=16 1 1 ns/op 1799 cpu-us/cert\n"
	if err := os.WriteFile(filepath.Join(dir, "ca.cabench.txt"), []byte(ca), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Render(res, "benchmarks")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"`credential-process`, cache hit":       "PASS",
		"AWS's helper over a cache hit":         "PASS",
		"CA process CPU per certificate, sign":  "PASS",
		"CA process CPU per certificate, renew": "**MISS**", // 450 > 0.25 × 1,799
	}
	for _, r := range doc.Rows {
		if w, ok := want[r.What]; ok && r.Verdict != w {
			t.Errorf("%s: %s, want %s", r.What, r.Verdict, w)
		}
	}
}

// TestRenderNothingMeasured: with no results every section and summary
// row says how to measure it, and no figure appears: a document never
// shows a number that is not from a result file.
func TestRenderNothingMeasured(t *testing.T) {
	res, err := ReadResults(filepath.Join(t.TempDir(), "none"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Render(res, "benchmarks")
	if err != nil {
		t.Fatal(err)
	}
	md := string(doc.Markdown)
	for _, s := range Sections {
		if !strings.Contains(md, "**Not measured**: no results in docs/benchmarks/ (run `scripts/bench -only "+s.ID+"`)") {
			t.Errorf("section %s does not say it was not measured", s.ID)
		}
	}
	for _, r := range doc.Rows {
		if !strings.HasPrefix(r.Figure, "not measured: `scripts/bench -only "+r.Section+"`") || r.Verdict != "" {
			t.Errorf("row %q: figure %q, verdict %q", r.What, r.Figure, r.Verdict)
		}
	}
	if len(doc.Panels) != 0 || !strings.Contains(md, "there is no plot") {
		t.Error("a plot without results")
	}
	// The only numbers are the template's: targets, issue numbers, versions, sizes named in prose.
	figure := regexp.MustCompile(`\d+(?:[.,]\d+)*\s*(?:ms|µs|MiB|MB|/s|sessions|certificates|vends)\b`)
	for _, m := range figure.FindAllString(md, -1) {
		switch m {
		case "450 µs", "20 MB", "20 MiB", "7,000 sessions", "1 ms", "6 certificates": // targets, and 10^6 in the prose
		default:
			t.Errorf("a figure %q in a document with no results", m)
		}
	}
}

// TestRenderPartial: a section that ran without one of its benchmarks
// (not merged yet) says so with the run's date, and the rest renders.
func TestRenderPartial(t *testing.T) {
	md := string(renderFixtures(t).Markdown)
	if !strings.Contains(md, "Not measured: the run of 2026-11-27 had no BenchmarkScaleAgentVend results (run `scripts/bench -only agent` once the benchmark exists).") {
		t.Error("the agent's missing scaling benchmark is not reported")
	}
	if !strings.Contains(md, "Warning from the run: no benchmark BenchmarkScaleAgentVend in the repository's tests: not measured") {
		t.Error("the run's warning is not shown")
	}
	if !strings.Contains(md, "**A quick run**") {
		t.Error("the quick run of dev is not marked")
	}
}

// TestRenderRefuses: a raw file that does not parse is an error, not a
// section quietly left out.
func TestRenderRefuses(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "results"), dir)
	if err := os.WriteFile(filepath.Join(dir, "store.store.txt"), []byte("BenchmarkSign/clients=16 10 fast ns/op\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Render(res, "benchmarks"); err == nil || !strings.Contains(err.Error(), "store: store.store.txt:1") {
		t.Errorf("got %v, want an error naming store.store.txt:1", err)
	}
}

func TestReadResultsRefuses(t *testing.T) {
	for name, c := range map[string]struct{ manifest, err string }{
		"other section": {`{"section": "ca", "steps": []}`, `section "ca", want "store"`},
		"raw elsewhere": {`{"section": "store", "steps": [{"name": "x", "raw": "../x.txt", "kind": "gobench"}]}`, `raw file "../x.txt" must be a file name`},
		"no raw":        {`{"section": "store", "steps": [{"name": "x", "kind": "gobench"}]}`, `raw file "" must be a file name`},
		"not JSON":      {`{`, "store.json"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "store.json"), []byte(c.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadResults(dir); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("got %v, want %q", err, c.err)
			}
		})
	}
}

// TestRenderFiles: the document and a decodable PNG are written; with
// nothing to plot a stale PNG is removed.
func TestRenderFiles(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "results"), dir)
	docPath := filepath.Join(t.TempDir(), "benchmarks.md")
	if _, err := RenderFiles(dir, "benchmarks", docPath); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, PlotFile))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the plot is not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 600 || r.Dy() < 600 {
		t.Errorf("plot is %v, want at least 600×600 for 5 panels", r)
	}
	md, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(md, []byte("![Per-request cost against size")) {
		t.Error("the document does not embed the plot")
	}
	// Nothing to plot: the old PNG goes.
	for _, f := range []string{"emulator.json", "ca-scale.json"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := RenderFiles(dir, "benchmarks", docPath); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PlotFile)); !os.IsNotExist(err) {
		t.Errorf("a stale plot stays: %v", err)
	}
}

// TestCheckedInDocument: docs/benchmarks.md is what the renderer makes
// of docs/benchmarks/ (after a change to the renderer, run
// scripts/bench -render).
func TestCheckedInDocument(t *testing.T) {
	root := filepath.Join("..", "..")
	res, err := ReadResults(filepath.Join(root, "docs", "benchmarks"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Render(res, "benchmarks")
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join(root, "docs", "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, doc.Markdown) {
		t.Errorf("docs/benchmarks.md is not what scripts/bench -render makes of docs/benchmarks/: run scripts/bench -render (never edit it by hand)")
	}
	_, statErr := os.Stat(filepath.Join(root, "docs", "benchmarks", PlotFile))
	if hasPlot := statErr == nil; hasPlot != (len(doc.Panels) > 0) {
		t.Errorf("docs/benchmarks/%s exists: %v; panels to plot: %d: run scripts/bench -render", PlotFile, hasPlot, len(doc.Panels))
	}
}

func TestPlotPNG(t *testing.T) {
	b, err := PlotPNG([]Panel{{Title: "t", XLabel: "n", YLabel: "µs per op", Series: []PanelSeries{{X: []float64{1}, Y: []float64{5}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := PlotPNG(nil); err == nil {
		t.Error("no panels: no error")
	}
}

func TestFindBenchmarks(t *testing.T) {
	root := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module github.com/keyless-dev/keyless\n")
	write("internal/ca/scale_test.go", "package ca\n\nfunc BenchmarkScaleCASign(b *testing.B) {}\nfunc BenchmarkScaleCRL(b *testing.B) {}\n")
	write("internal/store/s_test.go", "package store\n\nfunc BenchmarkSign(b *testing.B) {}\n")
	write("internal/sigv4/s_test.go", "package sigv4\n\nfunc BenchmarkSign(b *testing.B) {}\n")
	write("interop/awshelper/go.mod", "module m\n")
	write("interop/awshelper/cmd/vendbench/v_test.go", "package main\n\nfunc BenchmarkScaleAgentVend(b *testing.B) {}\n")
	write("internal/x/testdata/t_test.go", "package x\n\nfunc BenchmarkScaleCRL(b *testing.B) {}\n")

	got, err := findBenchmarks(root, []string{"ScaleCASign", "ScaleCRL", "ScaleAgentVend"}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []benchPackage{
		{dir: "", pkg: "./internal/ca/", funcs: []string{"ScaleCASign", "ScaleCRL"}},
		{dir: "interop/awshelper", pkg: "./cmd/vendbench/", funcs: []string{"ScaleAgentVend"}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(benchPackage{})); diff != "" {
		t.Errorf("found (-want +got):\n%s", diff)
	}
	got, err = findBenchmarks(root, []string{"Sign"}, "internal/store")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].pkg != "./internal/store/" {
		t.Errorf("pinned to internal/store: %+v", got)
	}
}

// TestGoBenchesTable: every section measured by Go benchmarks and every
// scaling family names a section, and every family's benchmark is run by
// a row of GoBenches in its section.
func TestGoBenchesTable(t *testing.T) {
	for _, g := range GoBenches {
		if SectionByID(g.Section) == nil {
			t.Errorf("GoBenches: %s: no section %q", g.Name, g.Section)
		}
	}
	for _, s := range Scales {
		found := false
		for _, g := range GoBenches {
			found = found || g.Section == s.Section && strings.HasPrefix(g.Name, "scale") && contains(g.Funcs, s.Base)
		}
		if !found {
			t.Errorf("Scales: Benchmark%s is run by no GoBenches row named scale... in section %s", s.Base, s.Section)
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestScriptBuildsTheBinaries: scripts/bench builds every binary the
// runner starts, under the name it starts it by, and is executable.
func TestScriptBuildsTheBinaries(t *testing.T) {
	path := filepath.Join("..", "..", "scripts", "bench")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("scripts/bench is missing or not executable: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{BinKeyless, BinHelper, BinNetHTTP, BinHello} {
		if !bytes.Contains(b, []byte(`-o "$tmp/`+bin+`"`)) {
			t.Errorf("scripts/bench does not build $tmp/%s", bin)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0 go build -o \"$tmp/keyless\" ./cmd/keyless", "CGO_ENABLED=1 go build -o \"$tmp/aws_signing_helper\"", "CGO_ENABLED=0 go build -o \"$tmp/nethttp\""} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("scripts/bench lacks %q (keyless and the baseline static, AWS's helper with cgo as AWS ships it)", want)
		}
	}
}

// TestScalingJudgement: one size is not judged (nothing to compare), and
// a family with several series names the one without a sub-name.
func TestScalingJudgement(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "results"), dir)
	scale := "BenchmarkScaleEmulator/anchors=1/roles=1/profiles=1-2 10 50000 ns/op 100 cpu-us/session\n" +
		"BenchmarkScaleEmulator/refused/anchors=1/roles=1/profiles=1-2 10 50000 ns/op 300 cpu-us/session\n" +
		"BenchmarkScaleEmulator/anchors=100/roles=100/profiles=100-2 10 50000 ns/op 110 cpu-us/session\n" +
		"BenchmarkScaleEmulator/refused/anchors=100/roles=100/profiles=100-2 10 50000 ns/op 290 cpu-us/session\n"
	store := "BenchmarkScaleCASign/certs=10000-2 10 900000 ns/op 900 cpu-us/cert\n"
	for name, content := range map[string]string{"emulator.scale.txt": scale, "ca-scale.scale.txt": store} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Render(res, "benchmarks")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Row{}
	for _, r := range doc.Rows {
		got[r.What] = r
	}
	if r := got["scaling: CreateSession with N trust anchors, roles and profiles"]; r.Verdict != "PASS" || !strings.Contains(r.Figure, "accepted: 100 → 110 (1.10×); refused: 300 → 290 (0.97×)") {
		t.Errorf("two series: %+v", r)
	}
	if r := got["scaling: CA sign with N certificates in the store"]; r.Verdict != "" || !strings.Contains(r.Figure, "certs 10,000") || strings.Contains(r.Figure, "–") {
		t.Errorf("one size: %+v, want no verdict", r)
	}
	if !strings.Contains(string(doc.Markdown), "One size only, so nothing to compare") {
		t.Error("one size is not explained")
	}
}
