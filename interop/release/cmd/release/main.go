// Command release builds every keyless release artefact from the git
// checkout it runs in, into dist/: scripts/release runs it as
// `cd interop/release && go run ./cmd/release "$@"`.
//
//	release [--dist DIR] [--allow-dirty] [--force] [--only-targets linux-amd64,...] VERSION
//
// Exit status: 0 on success, 2 for a usage error (bad flag or VERSION, a
// dirty checkout, a dist holding foreign files), 1 when a step fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/keyless-dev/keyless/interop/release"
)

const usage = `usage: release [--dist DIR] [--allow-dirty] [--force] [--only-targets T1,T2] VERSION

Builds keyless VERSION (vMAJOR.MINOR.PATCH[-PRERELEASE]) from the git
checkout this runs in: binaries for every platform, archives, packages,
SBOMs, the Homebrew formula and SHA256SUMS, into DIR (default: dist/ at
the checkout's root). The same commit gives byte-identical files.

Example:
  scripts/release v1.2.3
  scripts/release --only-targets linux-amd64,linux-arm64 v1.3.0-rc.1

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake in how release was called: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// A flag mistake gets the usage line on stderr; --help gets it all
	// on stdout.
	helpAsked := slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "--h" || a == "-help" || a == "--help" })
	fs.Usage = func() {
		if helpAsked {
			return // the full usage goes to stdout below
		}
		line, _, _ := strings.Cut(usage, "\n")
		fmt.Fprintf(stderr, "%s\n(release --help explains the flags)\n", line)
	}
	dist := fs.String("dist", "", "output directory; a relative path is taken from the checkout's root (default <checkout>/dist)")
	allowDirty := fs.Bool("allow-dirty", false, "build from a checkout with uncommitted changes; the commit is stamped <hex>-dirty")
	force := fs.Bool("force", false, "replace DIR even if it holds files a release did not make")
	only := fs.String("only-targets", "", "comma-separated targets to build (default all): "+targetList())
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return 2 // flag already printed the error and the usage
	}
	err := release1(ctx, fs.Args(), *dist, *allowDirty, *force, *only, stdout, stderr)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "release: error: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func release1(ctx context.Context, args []string, dist string, allowDirty, force bool, only string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return usageError{fmt.Errorf("want exactly one argument, VERSION (e.g. v1.2.3), got %d: %q (release --help shows the usage)", len(args), args)}
	}
	if err := release.CheckVersion(args[0]); err != nil {
		return usageError{err}
	}
	var targets []release.Target
	if only != "" {
		t, err := release.ParseTargets(only)
		if err != nil {
			return usageError{fmt.Errorf("--only-targets: %w", err)}
		}
		targets = t
	}
	top, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return usageError{fmt.Errorf("finding the checkout: git rev-parse --show-toplevel: %v; run release inside the keyless git checkout", err)}
	}
	source := strings.TrimSpace(string(top))
	if dist != "" && !filepath.IsAbs(dist) {
		dist = filepath.Join(source, dist)
	}
	p, err := release.NewPlan(ctx, args[0], source, dist, allowDirty)
	if errors.Is(err, release.ErrBadVersion) || errors.Is(err, release.ErrDirty) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	p.Only = targets

	tmp, err := release.Stage(p.Dist, p.Source, force)
	if err != nil {
		if errors.Is(err, release.ErrForeignDist) {
			return usageError{err}
		}
		return err
	}
	defer os.RemoveAll(tmp) // gone after a successful Publish; the half-built dist after a failure
	work, err := os.MkdirTemp("", "keyless-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	final := p.Dist
	p.Dist, p.Work = tmp, work
	fmt.Fprintf(stderr, "release: keyless %s, commit %s, epoch %s, %d targets\n", p.Version, p.Commit, p.Epoch.Format("2006-01-02T15:04:05Z"), len(p.Platforms()))
	if err := build(ctx, p); err != nil {
		return err
	}
	if err := release.Publish(tmp, final); err != nil {
		return err
	}
	entries, err := os.ReadDir(final)
	if err != nil {
		return err
	}
	for _, e := range entries {
		fmt.Fprintln(stdout, filepath.Join(final, e.Name()))
	}
	return nil
}

// build writes every artefact of p into p.Dist, in the order each needs
// the one before: binaries, docs, archives, packages, SBOMs, formula, and
// SHA256SUMS last, over everything else.
func build(ctx context.Context, p release.Plan) error {
	bins, err := release.BuildBinaries(ctx, p)
	if err != nil {
		return err
	}
	docs := filepath.Join(p.Work, "docs")
	if err := os.MkdirAll(docs, 0o755); err != nil {
		return err
	}
	if err := release.GenerateDocs(ctx, p, docs); err != nil {
		return fmt.Errorf("man pages and completions: %w", err)
	}
	archiveSums := map[string]string{}
	for _, t := range p.Platforms() {
		path, err := release.WriteArchive(p, t, bins[t], p.Dist)
		if err != nil {
			return err
		}
		if archiveSums[filepath.Base(path)], err = release.FileSHA256(path); err != nil {
			return err
		}
	}
	if _, err := release.BuildPackages(ctx, p, bins, docs); err != nil {
		return fmt.Errorf("packages: %w", err)
	}
	for _, t := range p.Platforms() {
		if _, err := release.WriteSBOM(p, t, bins[t], p.Dist); err != nil {
			return err
		}
	}
	// The formula installs four archives; a release of fewer targets
	// has none.
	if !slices.ContainsFunc(release.FormulaTargets, func(t release.Target) bool { return !slices.Contains(p.Platforms(), t) }) {
		formula, err := release.RenderFormula(p, archiveSums)
		if err != nil {
			return fmt.Errorf("homebrew formula: %w", err)
		}
		if err := os.WriteFile(filepath.Join(p.Dist, "keyless.rb"), formula, 0o644); err != nil {
			return err
		}
	}
	if _, err := release.WriteSums(p.Dist); err != nil {
		return err
	}
	// What is published must verify as a user would check it.
	return release.Verify(p.Dist)
}

func targetList() string {
	names := make([]string, 0, len(release.Targets))
	for _, t := range release.Targets {
		names = append(names, t.String())
	}
	return strings.Join(names, ",")
}
