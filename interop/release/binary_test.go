//go:build linux

package release_test

import (
	"context"
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
// does, with BuildBinaries for that target alone.
func buildLinuxAmd64(t *testing.T, p release.Plan, dir string) string {
	t.Helper()
	p.Work, p.Only = dir, []release.Target{{GOOS: "linux", GOARCH: "amd64"}}
	bins, err := release.BuildBinaries(context.Background(), p)
	if err != nil {
		t.Fatalf("building keyless for linux/amd64: %v", err)
	}
	return bins[p.Only[0]]
}
