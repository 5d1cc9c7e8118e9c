package release

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// BuildInfoPkg is the package whose version and commit variables the
// linker stamps.
const BuildInfoPkg = "github.com/keyless-dev/keyless/internal/buildinfo"

// LDFlags are the linker flags of a release binary.
//
// -s -w drop the symbol table and DWARF: the binaries are about a third
// smaller, and nothing a user needs is lost, because the Go runtime keeps
// its own function table (pclntab), so panics still print function names
// and lines, and `go version -m`, debug/buildinfo and govulncheck's binary
// mode read the build information, which -s does not strip. What is lost
// is source-level debugging with delve of a release binary; build from the
// checkout for that. -buildid= leaves the Go build ID empty: it is derived
// from action IDs of the build cache, and an empty one removes any doubt
// that two caches give two IDs.
func LDFlags(p Plan) string {
	return fmt.Sprintf("-s -w -buildid= -X %s.version=%s -X %s.commit=%s", BuildInfoPkg, p.Version, BuildInfoPkg, p.Commit)
}

// scrubbedEnv are environment variables a release build sets itself or
// removes, because each would change the binary's bytes: the target, cgo
// and its compilers, the micro-architecture levels, experiments, workspace
// and module modes.
var scrubbedEnv = []string{
	"GOOS", "GOARCH", "GOARM", "GOAMD64", "GOARM64", "GO386", "GOMIPS", "GOMIPS64", "GOPPC64", "GORISCV64", "GOWASM",
	"GOEXPERIMENT", "GOFLAGS", "GOWORK", "GOENV", "GOFIPS140", "GODEBUG",
	"CGO_ENABLED", "CC", "CXX", "CGO_CFLAGS", "CGO_CPPFLAGS", "CGO_CXXFLAGS", "CGO_FFLAGS", "CGO_LDFLAGS",
}

// BuildEnv is the environment of `go build` for t: the caller's, minus
// everything in scrubbedEnv, plus the target and fixed settings. GOENV=off
// ignores the user's `go env -w` file, which could otherwise set GOFLAGS,
// GOAMD64 or GOEXPERIMENT behind the release's back; download settings
// (GOPROXY, GOPRIVATE, ...) still come from the environment.
func BuildEnv(t Target) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, s := range scrubbedEnv {
			if k == s {
				drop = true
				break
			}
		}
		if !drop {
			env = append(env, kv)
		}
	}
	env = append(env,
		"GOENV=off", "GOFLAGS=-mod=readonly", "GOWORK=off", "CGO_ENABLED=0",
		"GOOS="+t.GOOS, "GOARCH="+t.GOARCH,
		"GOAMD64=v1", "GOARM64=v8.0", // the baseline each architecture runs on everywhere
	)
	if t.GOARM != "" {
		env = append(env, "GOARM="+t.GOARM)
	}
	return env
}

// BuildBinaries builds keyless (Plan.Source's ./cmd/keyless) for every
// target of p.Platforms(), into p.Work/bin/<target>/keyless[.exe], and
// returns the path of each. The builds are static (CGO_ENABLED=0),
// -trimpath, -buildvcs=false, stamped with p.Version and p.Commit, so the
// same commit gives the same bytes from any directory and any build cache.
// Each binary's embedded build settings are checked afterwards, so a
// setting that slipped through the environment fails the release.
func BuildBinaries(ctx context.Context, p Plan) (map[Target]string, error) {
	if p.Work == "" {
		return nil, fmt.Errorf("building binaries: Plan.Work is empty; set it to a scratch directory")
	}
	targets := p.Platforms()
	bins := make(map[Target]string, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	// Two builds at a time: linking is single-threaded, compiling is not;
	// more in parallel only adds memory on a small CI machine.
	sem := make(chan struct{}, 2)
	for i, t := range targets {
		out := filepath.Join(p.Work, "bin", t.String(), t.Exe())
		bins[t] = out
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = buildOne(ctx, p, t, out)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return bins, nil
}

func buildOne(ctx context.Context, p Plan, t Target, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("building %s: %w", t, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+LDFlags(p), "-o", out, "./cmd/keyless")
	cmd.Dir = p.Source
	cmd.Env = BuildEnv(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: go build: %w\n%s", t, err, b)
	}
	return checkBinary(t, out)
}

// checkBinary reads back the build settings Go embedded in the binary and
// refuses one that is not what a release build asked for.
func checkBinary(t Target, path string) error {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("checking %s binary %s: %w", t, path, err)
	}
	want := map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": t.GOOS, "GOARCH": t.GOARCH}
	if t.GOARM != "" {
		want["GOARM"] = t.GOARM
	}
	got := map[string]string{}
	for _, s := range bi.Settings {
		got[s.Key] = s.Value
		if s.Key == "GOEXPERIMENT" || strings.HasPrefix(s.Key, "vcs") {
			return fmt.Errorf("checking %s binary: it was built with %s=%s; a release build must not be", t, s.Key, s.Value)
		}
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("checking %s binary: build setting %s is %q, want %q", t, k, got[k], v)
		}
	}
	return nil
}
