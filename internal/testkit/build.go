package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// KeylessPackage is the import path of the keyless command.
const KeylessPackage = "github.com/keyless-dev/keyless/cmd/keyless"

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]buildResult{}
)

type buildResult struct {
	path string
	err  error
}

// Keyless returns the path of a keyless binary built as it ships
// (CGO_ENABLED=0), once per test process. Tests that run keyless as a
// process use it rather than the test binary: a -race test binary starts
// ten times slower.
func Keyless(t testing.TB) string {
	t.Helper()
	return Build(t, "keyless", KeylessPackage, false)
}

// Build compiles the main package pkg (an import path resolvable from the
// test's module) into a binary called name, once per test process, with
// cgo on or off, and returns its path. A failure fails t; when cgo is
// asked for, a build failure means a missing C toolchain, which skips t
// unless interop peers are required. Main removes the binaries.
func Build(t testing.TB, name, pkg string, cgo bool) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := fmt.Sprintf("%s|%s|%v", name, pkg, cgo)
	r, ok := built[key]
	if !ok {
		r = build(name, pkg, cgo)
		built[key] = r
	}
	if r.err != nil {
		if cgo {
			Unavailable(t, "%v (it needs cgo and a C compiler)", r.err)
		}
		t.Fatal(r.err)
	}
	return r.path
}

func build(name, pkg string, cgo bool) buildResult {
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "keyless-testkit-")
		if err != nil {
			return buildResult{err: err}
		}
		buildDir = dir
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+map[bool]string{true: "1", false: "0"}[cgo])
	if b, err := cmd.CombinedOutput(); err != nil {
		return buildResult{err: fmt.Errorf("go build %s: %v\n%s", pkg, err, b)}
	}
	return buildResult{path: out}
}

// Runner is what TestMain hands to testscript.Main or runs itself:
// *testing.M has it.
type Runner interface{ Run() int }

// Main wraps m so that running it also removes the binaries Build made.
// Use it in TestMain: os.Exit(testkit.Main(m).Run()), or
// testscript.Main(testkit.Main(m), commands).
func Main(m Runner) Runner { return cleanupRunner{m} }

type cleanupRunner struct{ m Runner }

func (c cleanupRunner) Run() int {
	code := c.m.Run()
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir = ""
	}
	return code
}
