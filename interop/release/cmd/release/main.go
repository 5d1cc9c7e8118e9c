// Command release builds every keyless release artefact from the git
// checkout it runs in, into dist/: scripts/release runs it as
// `cd interop/release && go run ./cmd/release "$@"`.
//
//	release [--dist DIR] [--allow-dirty] [--force] [--only-targets linux-amd64,...] [--image-context DIR] VERSION
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

const usage = `usage: release [--dist DIR] [--allow-dirty] [--force] [--only-targets T1,T2] [--image-context DIR] VERSION

Builds keyless VERSION (vMAJOR.MINOR.PATCH[-PRERELEASE]) from the commit
checked out in the git checkout this runs in: binaries for every
platform, archives, packages, SBOMs, the Homebrew formula and SHA256SUMS,
into DIR (default: dist/ at the checkout's root). The sources are an
export of the commit (git archive), so files git ignores never reach a
release; --allow-dirty builds the working tree instead. The same commit
gives byte-identical files.

Example:
  scripts/release v1.2.3
  scripts/release --only-targets linux-amd64,linux-arm64 v1.3.0-rc.1
  scripts/release --image-context build/image v1.2.3 && docker build -t keyless:1.2.3 build/image

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
	imageCtx := fs.String("image-context", "", "also lay out the container image's docker build context in this directory (must not exist or be empty; needs linux-amd64 among the targets; a relative path is taken from the checkout's root); not part of the dist")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return 2 // flag already printed the error and the usage
	}
	err := release1(ctx, fs.Args(), options{dist: *dist, allowDirty: *allowDirty, force: *force, only: *only, imageContext: *imageCtx}, stdout, stderr)
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

// options are release's flags.
type options struct {
	dist         string
	allowDirty   bool
	force        bool
	only         string
	imageContext string
}

func release1(ctx context.Context, args []string, o options, stdout, stderr io.Writer) error {
	dist, allowDirty, force, only := o.dist, o.allowDirty, o.force, o.only
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
	imageDir := o.imageContext
	if imageDir != "" {
		if !filepath.IsAbs(imageDir) {
			imageDir = filepath.Join(source, imageDir)
		}
		if err := checkImageContext(imageDir, targets); err != nil {
			return usageError{err}
		}
	}
	p, err := release.NewPlan(ctx, args[0], source, dist, allowDirty)
	if errors.Is(err, release.ErrBadVersion) || errors.Is(err, release.ErrDirty) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	p.Only = targets
	if !p.AllowDirty {
		ignored, err := release.IgnoredToolSources(ctx, p.Source)
		if err != nil {
			return err
		}
		if len(ignored) > 0 {
			if len(ignored) > 5 {
				ignored = append(ignored[:5], fmt.Sprintf("and %d more", len(ignored)-5))
			}
			return usageError{fmt.Errorf("%w: %s holds Go files git ignores in packages the release tool is built from (its man pages, completions and units would come from them): %s; remove them, or pass --allow-dirty to build the working tree and stamp the commit %s-dirty",
				release.ErrDirty, p.Source, strings.Join(ignored, ", "), p.Commit[:12])}
		}
	}

	if imageDir != "" {
		if d, i := filepath.Clean(p.Dist), filepath.Clean(imageDir); i == d || strings.HasPrefix(i, d+string(filepath.Separator)) {
			return usageError{fmt.Errorf("--image-context %s is inside the dist %s, which a release replaces; pick a directory outside it, e.g. build/image", o.imageContext, p.Dist)}
		}
	}

	tmp, err := release.Stage(p.Dist, p.Source, force)
	if err != nil {
		if errors.Is(err, release.ErrForeignDist) || errors.Is(err, release.ErrProtectedDist) {
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

	// Everything is built from an export of the commit, not the working
	// tree: a file git ignores (.git/info/exclude, core.excludesFile) or
	// the builder's core.autocrlf would otherwise reach a release that
	// claims to be the commit. --allow-dirty builds the working tree, and
	// stamps it -dirty.
	if !p.AllowDirty {
		export := filepath.Join(work, "src")
		if err := release.Export(ctx, p.Source, p.Commit, export); err != nil {
			return err
		}
		p.Source = export
	}

	final := p.Dist
	p.Dist, p.Work = tmp, work
	fmt.Fprintf(stderr, "release: keyless %s, commit %s, epoch %s, %d targets\n", p.Version, p.Commit, p.Epoch.Format("2006-01-02T15:04:05Z"), len(p.Platforms()))
	bins, err := build(ctx, p)
	if err != nil {
		return err
	}
	if imageDir != "" {
		if err := release.ImageContext(p, bins[linuxAmd64], imageDir); err != nil {
			return err
		}
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
	if imageDir != "" {
		fmt.Fprintln(stdout, imageDir)
	}
	return nil
}

var linuxAmd64 = release.Target{GOOS: "linux", GOARCH: "amd64"}

// checkImageContext refuses, before anything is built, an --image-context
// the build could not fill: one without linux-amd64 among the targets
// (nil: all), or a directory that exists with something in it.
func checkImageContext(dir string, targets []release.Target) error {
	if targets != nil && !slices.Contains(targets, linuxAmd64) {
		return fmt.Errorf("--image-context needs the linux-amd64 binary, and --only-targets leaves it out; add linux-amd64 to --only-targets")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--image-context %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("--image-context %s is not empty (it holds %s); remove it or pick a new directory, so nothing stale lands in the image", dir, entries[0].Name())
	}
	return nil
}

// build writes every artefact of p into p.Dist, in the order each needs
// the one before: binaries, docs, archives, packages, SBOMs, formula, and
// SHA256SUMS last, over everything else.
func build(ctx context.Context, p release.Plan) (map[release.Target]string, error) {
	bins, err := release.BuildBinaries(ctx, p)
	if err != nil {
		return nil, err
	}
	docs := filepath.Join(p.Work, "docs")
	if err := os.MkdirAll(docs, 0o755); err != nil {
		return nil, err
	}
	if err := release.GenerateDocs(ctx, p, docs); err != nil {
		return nil, fmt.Errorf("man pages and completions: %w", err)
	}
	archiveSums := map[string]string{}
	for _, t := range p.Platforms() {
		path, err := release.WriteArchive(p, t, bins[t], p.Dist)
		if err != nil {
			return nil, err
		}
		if archiveSums[filepath.Base(path)], err = release.FileSHA256(path); err != nil {
			return nil, err
		}
	}
	if _, err := release.BuildPackages(ctx, p, bins, docs); err != nil {
		return nil, fmt.Errorf("packages: %w", err)
	}
	for _, t := range p.Platforms() {
		if _, err := release.WriteSBOM(p, t, bins[t], p.Dist); err != nil {
			return nil, err
		}
	}
	// The formula installs four archives; a release of fewer targets
	// has none.
	if !slices.ContainsFunc(release.FormulaTargets, func(t release.Target) bool { return !slices.Contains(p.Platforms(), t) }) {
		formula, err := release.RenderFormula(p, archiveSums)
		if err != nil {
			return nil, fmt.Errorf("homebrew formula: %w", err)
		}
		if err := os.WriteFile(filepath.Join(p.Dist, "keyless.rb"), formula, 0o644); err != nil {
			return nil, err
		}
	}
	if _, err := release.WriteSums(p.Dist); err != nil {
		return nil, err
	}
	// What is published must verify as a user would check it.
	return bins, release.Verify(p.Dist)
}

func targetList() string {
	names := make([]string, 0, len(release.Targets))
	for _, t := range release.Targets {
		names = append(names, t.String())
	}
	return strings.Join(names, ",")
}
