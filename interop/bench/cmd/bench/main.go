// Command bench measures keyless beside its peers and writes
// docs/benchmarks.md and its scaling plot from the results. Run it with
// scripts/bench, which builds the binaries it measures (-bin) first.
//
//	bench -bin DIR                   every section
//	bench -bin DIR -only cp,emulator some sections; the others keep their stored results
//	bench -render                    the document again from docs/benchmarks/
//
// KEYLESS_BENCH_LARGE=1 in the environment runs the Go benchmarks' large
// sizes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/keyless-dev/keyless/interop/bench"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// run is the command: its exit code is 0, 1 when a section or the
// rendering failed, or 2 for a usage error.
func run(args []string, stderr io.Writer) int {
	var ids []string
	for _, s := range bench.Sections {
		ids = append(ids, s.ID)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		root   = fs.String("root", "", "the keyless repository (default: found from the working directory)")
		bin    = fs.String("bin", "", "directory of the binaries scripts/bench builds: keyless, aws_signing_helper, nethttp, hello")
		only   = fs.String("only", "", "comma-separated sections to measure: "+strings.Join(ids, ", ")+" (default: all)")
		render = fs.Bool("render", false, "measure nothing: render docs/benchmarks.md and the plot from the stored results")
		quick  = fs.Bool("quick", false, "shortened durations and fewer runs: checks the pipeline; the document says so")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: scripts/bench [-only SECTIONS] [-quick] | scripts/bench -render\n\nExample:\n  scripts/bench -only cp,emulator\n\nFlags:\n")
		fs.PrintDefaults()
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "bench: error: "+format+"\n", args...)
		fmt.Fprintf(stderr, "bench: hint: scripts/bench -h lists the flags\n")
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected arguments %q", fs.Args())
	}
	if *root == "" {
		r, err := findRoot()
		if err != nil {
			return usage("%v; give -root", err)
		}
		*root = r
	}
	out := filepath.Join(*root, "docs", "benchmarks")
	doc := filepath.Join(*root, "docs", "benchmarks.md")
	failed := false
	if !*render {
		if *bin == "" {
			return usage("-bin is required to measure (scripts/bench builds the binaries and passes it); -render only renders")
		}
		sections := ids
		if *only != "" {
			sections = nil
			for _, id := range strings.Split(*only, ",") {
				id = strings.TrimSpace(id)
				if bench.SectionByID(id) == nil {
					return usage("-only: no section %q; the sections are %s", id, strings.Join(ids, ", "))
				}
				sections = append(sections, id)
			}
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			fmt.Fprintf(stderr, "bench: error: %v\n", err)
			return 1
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		r := &bench.Runner{Root: *root, Out: out, Bin: *bin, Quick: *quick, Large: os.Getenv("KEYLESS_BENCH_LARGE") == "1", Log: stderr}
		start := time.Now()
		for _, id := range sections {
			if err := r.Run(ctx, id); err != nil {
				fmt.Fprintf(stderr, "bench: error: section %s: %v (its stored results stay)\n", id, err)
				failed = true
			}
			if ctx.Err() != nil {
				return 1
			}
		}
		fmt.Fprintf(stderr, "bench: measured in %s\n", time.Since(start).Round(time.Second))
	}
	d, err := bench.RenderFiles(out, "benchmarks", doc)
	if err != nil {
		fmt.Fprintf(stderr, "bench: error: %v\n", err)
		return 1
	}
	if len(d.Panels) > 0 {
		fmt.Fprintf(stderr, "bench: wrote %s and %s\n", doc, filepath.Join(out, bench.PlotFile))
	} else {
		fmt.Fprintf(stderr, "bench: wrote %s (no scaling results, so no plot)\n", doc)
	}
	if failed {
		return 1
	}
	return 0
}

// findRoot walks up from the working directory to keyless's go.mod.
func findRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/keyless-dev/keyless\n") {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no keyless repository above the working directory")
		}
		d = parent
	}
}
