package release

// Binaries for the package tests, built here until the release-build
// helper's BuildBinaries is merged; then testBinaries can call it
// instead (the rest of the tests only use the map it returns).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// testBinaries builds keyless for every target of PackageArchs into dir,
// as a release does: static, -trimpath, version and commit stamped.
func testBinaries(ctx context.Context, p Plan, dir string) (map[Target]string, error) {
	bins := map[Target]string{}
	errs := make([]error, len(PackageArchs))
	var wg sync.WaitGroup
	for i, a := range PackageArchs {
		out := filepath.Join(dir, a.Target.String(), "keyless")
		bins[a.Target] = out
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out,
				"-ldflags", "-X github.com/keyless-dev/keyless/internal/buildinfo.version="+p.Version+
					" -X github.com/keyless-dev/keyless/internal/buildinfo.commit="+p.Commit,
				"./cmd/keyless")
			cmd.Dir = p.Source
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+a.Target.GOOS, "GOARCH="+a.Target.GOARCH, "GOARM="+a.Target.GOARM)
			if b, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build for %s: %v\n%s", a.Target, err, b)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return bins, nil
}
