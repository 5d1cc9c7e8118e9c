//go:build linux

package release_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/interop/release"
)

// imageTestPlan is the release the image and formula tests use: a version
// and commit that show whether the binary was stamped.
func imageTestPlan(t *testing.T) release.Plan {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return release.Plan{
		Version: "v0.17.0-imagetest",
		Commit:  "17a17b17c17d17e17f1717a17b17c17d17e17f17",
		Epoch:   time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Source:  src,
	}
}

// buildLinuxAmd64 builds p's linux/amd64 binary into dir as the release
// does: static, -trimpath, version and commit stamped. Once plan.go's
// build lands, this can call it for linux-amd64 alone instead.
func buildLinuxAmd64(t *testing.T, p release.Plan, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "keyless")
	const pkg = "github.com/keyless-dev/keyless/internal/buildinfo"
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin,
		"-ldflags", "-X "+pkg+".version="+p.Version+" -X "+pkg+".commit="+p.Commit,
		"./cmd/keyless")
	cmd.Dir = p.Source
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building keyless for linux/amd64: %v\n%s", err, out)
	}
	return bin
}
