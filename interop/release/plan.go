// Package release builds keyless's release artefacts: reproducible static
// binaries for every supported platform, archives, SBOMs, packages, the
// Homebrew formula and SHA256SUMS, into one dist directory. The command
// interop/release/cmd/release (scripts/release) drives it; nothing in the
// main module imports it.
//
// Reproducibility is the contract: two builds of the same commit, from
// different checkout directories and with different build caches, give
// byte-identical files. Every timestamp comes from Plan.Epoch and every
// serial from Plan.Commit.
package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Target is one platform a release is built for.
type Target struct{ GOOS, GOARCH, GOARM string } // GOARM "7" for linux/arm

// String names the target as the artefacts and --only-targets do:
// "linux-amd64", "linux-armv7", "darwin-arm64", "windows-amd64".
func (t Target) String() string { return t.GOOS + "-" + t.Arch() }

// Arch is the architecture as artefact names spell it: amd64, arm64, armv7.
func (t Target) Arch() string {
	if t.GOARCH == "arm" && t.GOARM != "" {
		return "armv" + t.GOARM
	}
	return t.GOARCH
}

// Exe is the binary's file name on the target: keyless or keyless.exe.
func (t Target) Exe() string {
	if t.GOOS == "windows" {
		return "keyless.exe"
	}
	return "keyless"
}

// Targets are the platforms every release ships, in a fixed order.
var Targets = []Target{
	{GOOS: "linux", GOARCH: "amd64"},
	{GOOS: "linux", GOARCH: "arm64"},
	{GOOS: "linux", GOARCH: "arm", GOARM: "7"},
	{GOOS: "darwin", GOARCH: "arm64"},
	{GOOS: "darwin", GOARCH: "amd64"},
	{GOOS: "windows", GOARCH: "amd64"},
}

// ParseTargets reads a comma-separated list of target names
// ("linux-amd64,windows-amd64") into Targets entries, in Targets' order.
func ParseTargets(list string) ([]Target, error) {
	want := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := targetByName(name); !ok {
			return nil, fmt.Errorf("unknown target %q; the targets are %s", name, targetNames())
		}
		want[name] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("no targets named; the targets are %s", targetNames())
	}
	var out []Target
	for _, t := range Targets {
		if want[t.String()] {
			out = append(out, t)
		}
	}
	return out, nil
}

func targetByName(name string) (Target, bool) {
	for _, t := range Targets {
		if t.String() == name {
			return t, true
		}
	}
	return Target{}, false
}

func targetNames() string {
	names := make([]string, len(Targets))
	for i, t := range Targets {
		names[i] = t.String()
	}
	return strings.Join(names, ",")
}

// Plan is one release: what is built, from where, stamped how, and where
// the artefacts go. NewPlan fills it from a checkout.
type Plan struct {
	Version string    // "v1.2.3" (leading v), validated
	Commit  string    // full 40-hex commit of the checkout ("<hex>-dirty" with AllowDirty on a dirty tree)
	Epoch   time.Time // SOURCE_DATE_EPOCH: the commit's committer time unless the env var is set
	Source  string    // the checkout (repo root); cmd/release then points it at an export of Commit (Export) unless AllowDirty
	Dist    string    // output directory (default <Source>/dist)

	// AllowDirty builds from a checkout with uncommitted changes; the
	// commit is then stamped "<hex>-dirty" so the binary never claims to
	// be a commit it is not.
	AllowDirty bool
	// Only restricts the build to these targets (nil: all of Targets).
	Only []Target
	// Work is a scratch directory for binaries and generated docs that
	// are not artefacts themselves; the caller creates and removes it.
	Work string
}

// Platforms are the targets this plan builds: Only, or all of Targets.
func (p Plan) Platforms() []Target {
	if len(p.Only) > 0 {
		return p.Only
	}
	return Targets
}

// VersionNumber is the version without its leading v ("1.2.3-rc.1"), as
// artefact names use it.
func (p Plan) VersionNumber() string { return strings.TrimPrefix(p.Version, "v") }

// ErrBadVersion means a version is not vMAJOR.MINOR.PATCH[-PRERELEASE].
var ErrBadVersion = errors.New("bad version")

// ErrDirty means the checkout has uncommitted changes and AllowDirty is off.
var ErrDirty = errors.New("checkout has uncommitted changes")

// semver 2.0.0 without build metadata: no leading zeros in numbers or
// numeric pre-release identifiers.
var versionRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)` +
	`(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?$`)

// CheckVersion reports whether v is a release version, vMAJOR.MINOR.PATCH
// with an optional -PRERELEASE (v1.2.3, v1.3.0-rc.1). The error names the
// argument and says how to fix it; it wraps ErrBadVersion.
func CheckVersion(v string) error {
	if versionRE.MatchString(v) {
		return nil
	}
	hint := "want vMAJOR.MINOR.PATCH with an optional -PRERELEASE, e.g. v1.2.3 or v1.3.0-rc.1"
	switch {
	case v == "":
		return fmt.Errorf("%w: VERSION is empty; %s", ErrBadVersion, hint)
	case !strings.HasPrefix(v, "v") && versionRE.MatchString("v"+v):
		return fmt.Errorf("%w: VERSION %q has no leading v; use v%s", ErrBadVersion, v, v)
	case strings.Contains(v, "+"):
		return fmt.Errorf("%w: VERSION %q has build metadata (+...), which releases do not use; %s", ErrBadVersion, v, hint)
	}
	return fmt.Errorf("%w: VERSION %q: %s (no leading zeros)", ErrBadVersion, v, hint)
}

// NewPlan validates version and reads the commit and its time from the git
// checkout at source (the repository root). SOURCE_DATE_EPOCH, when set,
// overrides the commit time. A checkout with uncommitted changes (anything
// `git status --porcelain` lists, apart from dist itself) is refused with
// ErrDirty unless allowDirty, and then its commit is stamped "<hex>-dirty".
// dist defaults to <source>/dist.
func NewPlan(ctx context.Context, version, source, dist string, allowDirty bool) (Plan, error) {
	if err := CheckVersion(version); err != nil {
		return Plan{}, err
	}
	src, err := filepath.Abs(source)
	if err != nil {
		return Plan{}, fmt.Errorf("source %q: %w", source, err)
	}
	if dist == "" {
		dist = filepath.Join(src, "dist")
	}
	if dist, err = filepath.Abs(dist); err != nil {
		return Plan{}, fmt.Errorf("dist %q: %w", dist, err)
	}
	p := Plan{Version: version, Source: src, Dist: dist, AllowDirty: allowDirty}

	commit, err := git(ctx, src, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return Plan{}, err
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(commit) {
		return Plan{}, fmt.Errorf("git rev-parse HEAD in %s gave %q, not a 40-hex commit", src, commit)
	}
	p.Commit = commit

	if env, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok && env != "" {
		sec, err := strconv.ParseInt(env, 10, 64)
		if err != nil || sec < 315532800 { // zip's MS-DOS times start in 1980
			return Plan{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970 (at least 315532800, 1980-01-01), e.g. $(git log -1 --format=%%ct)", env)
		}
		p.Epoch = time.Unix(sec, 0).UTC()
	} else {
		ct, err := git(ctx, src, "log", "-1", "--format=%ct", commit)
		if err != nil {
			return Plan{}, err
		}
		sec, err := strconv.ParseInt(ct, 10, 64)
		if err != nil {
			return Plan{}, fmt.Errorf("git log -1 --format=%%ct in %s gave %q: %w", src, ct, err)
		}
		p.Epoch = time.Unix(sec, 0).UTC()
	}

	status, err := git(ctx, src, append([]string{"status", "--porcelain", "--untracked-files=all", "--", "."}, excludeDist(src, dist)...)...)
	if err != nil {
		return Plan{}, err
	}
	if status != "" {
		if !allowDirty {
			lines := strings.Split(status, "\n")
			if len(lines) > 5 {
				lines = append(lines[:5], fmt.Sprintf("... and %d more", len(lines)-5))
			}
			return Plan{}, fmt.Errorf("%w in %s:\n%s\ncommit or stash them (a release is built from a commit), or pass --allow-dirty to stamp the commit %s-dirty",
				ErrDirty, src, strings.Join(lines, "\n"), commit[:12])
		}
		p.Commit += "-dirty"
	}
	return p, nil
}

// excludeDist keeps dist (and the release's temporary siblings of it) out
// of the dirty check when it lies inside the checkout.
// Stage refuses a dist that holds tracked files, so excluding it cannot
// hide a change to the sources. Symlinks are resolved first, so a dist
// reached through one is excluded too.
func excludeDist(src, dist string) []string {
	if r, err := resolve(src); err == nil {
		src = r
	}
	if r, err := resolve(dist); err == nil {
		dist = r
	}
	rel, err := filepath.Rel(src, dist)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil
	}
	rel = filepath.ToSlash(rel)
	return []string{":(exclude)" + rel, ":(exclude,glob)" + rel + ".tmp-*/**", ":(exclude,glob)" + rel + ".old-*/**"}
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %w: %s (the release is built from a git checkout; is %s one?)",
			strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()), dir)
	}
	return strings.TrimRight(string(out), "\n"), nil
}
