// Package bench measures keyless beside its peers and writes
// docs/benchmarks.md from the results: scripts/bench builds the binaries
// once and runs cmd/bench, which runs each section's measurements (Go
// benchmarks, hyperfine, /usr/bin/time, the peers' load generators),
// keeps what they print verbatim under docs/benchmarks/ with a manifest
// per section (the machine, the date, the commit, every command), and
// renders the document and its scaling plot from those files alone. A
// figure in the document is a number read from one of those files, so
// rendering again (scripts/bench -render) gives the same document.
//
// The raw files are Go's benchmark format wherever a measurement can
// print it (golang.org/x/perf/benchfmt reads them), and otherwise the
// tool's own output: hyperfine's --export-json, /usr/bin/time -v,
// GODEBUG=inittrace=1 and vendbench -json.
//
// It is a separate module, like every peer under interop/: its peers are
// AWS's helper, step-ca (through interop/stepca) and hyperfine, and it
// depends on plotting and benchmark-parsing libraries the main module
// must not.
package bench
